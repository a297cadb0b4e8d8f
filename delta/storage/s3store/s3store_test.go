package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/s3store"
	"github.com/plantlake/plantlake/delta/storage/storagetest"
	"github.com/plantlake/plantlake/devstack"
)

// testCredentials points the SDK's default chain at moto's fake account.
func testCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}

// newStore opens s3://bucket/prefix on the moto server, creating the bucket.
func newStore(t *testing.T, server *devstack.ObjectServer, bucket, prefix string) *s3store.Store {
	t.Helper()
	uri := fmt.Sprintf("s3://%s/%s?endpoint=%s", bucket, prefix, server.Endpoint())
	st, err := s3store.Open(context.Background(), uri)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConformance runs the storage contract's suite on moto, with a
// multipart threshold low enough that the large file goes up in parts.
func TestConformance(t *testing.T) {
	testCredentials(t)
	server := devstack.Moto(t)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Store {
		st, err := s3store.New(context.Background(), s3store.Config{
			Bucket: "conformance", Prefix: fmt.Sprintf("run-%d/warehouse", n.Add(1)),
			Endpoint: server.Endpoint(), MultipartThreshold: 5 << 20,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}, storagetest.Options{LargeFile: 12 << 20})
}

// TestMultipartUpload checks that a file above the threshold really goes
// up as a multipart upload: its ETag has S3's "-<parts>" suffix.
func TestMultipartUpload(t *testing.T) {
	testCredentials(t)
	server := devstack.Moto(t)
	ctx := context.Background()
	st, err := s3store.New(ctx, s3store.Config{Bucket: "mpu", Endpoint: server.Endpoint(), MultipartThreshold: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 11<<20)
	if err := st.WriteFile(ctx, "t/part-0.parquet", data); err != nil {
		t.Fatal(err)
	}
	head, err := st.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("mpu"), Key: aws.String("t/part-0.parquet")})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.Contains(etag, "-") {
		t.Errorf("ETag %s has no part count: not a multipart upload", etag)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(data)) {
		t.Errorf("size %d, want %d", aws.ToInt64(head.ContentLength), len(data))
	}
}

func TestParseURI(t *testing.T) {
	tru, fal := true, false
	cases := []struct {
		uri  string
		want s3store.Config
	}{
		{"s3://b", s3store.Config{Bucket: "b"}},
		{"s3://b/wh/prod/", s3store.Config{Bucket: "b", Prefix: "wh/prod"}},
		{"s3a://b/wh?region=eu-west-1", s3store.Config{Bucket: "b", Prefix: "wh", Region: "eu-west-1"}},
		{"s3://b/wh?endpoint=http://127.0.0.1:9000&path_style=false", s3store.Config{Bucket: "b", Prefix: "wh", Endpoint: "http://127.0.0.1:9000", PathStyle: &fal}},
		{"s3://b?path_style=1", s3store.Config{Bucket: "b", PathStyle: &tru}},
	}
	for _, c := range cases {
		got, err := s3store.ParseURI(c.uri)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", c.uri, got, err, c.want)
		}
	}
	for _, bad := range []string{"s3:///nobucket", "gs://b/x", "s3://b/x?colour=red", "s3://b/../x", "s3://b?path_style=maybe"} {
		_, err := s3store.ParseURI(bad)
		if err == nil {
			_, err = s3store.Open(context.Background(), bad)
		}
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := s3store.Open(context.Background(), "s3://b/../x"); !errors.Is(err, storage.ErrInvalidPath) {
		t.Errorf("prefix with .. = %v, want ErrInvalidPath", err)
	}
}
