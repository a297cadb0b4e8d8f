// Package s3store is a storage.Store on Amazon S3 or an S3-compatible
// object store, addressed as s3://bucket/prefix.
//
// Commits rely on conditional writes: PutIfAbsent is a PutObject with
// If-None-Match: *, which S3 refuses with 412 Precondition Failed when the
// key exists (storage.ErrExists) and with 409 ConditionalRequestConflict
// while another conditional write of the key is in flight (retried). An
// S3-compatible store that ignores If-None-Match cannot hold Delta tables
// safely; devstack's tests prove that the test server honours it.
//
// Large files (WriteFile of more than Config.MultipartThreshold bytes) go
// up in parts with the SDK's transfer manager. Credentials come from the
// SDK's default chain (environment, shared config and credentials files,
// web identity, container and instance roles).
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/plantlake/plantlake/delta/storage"
)

// DefaultMultipartThreshold is the size above which WriteFile uploads in
// parts: S3's smallest part is 5 MiB, and below 16 MiB one PUT is faster.
const DefaultMultipartThreshold = 16 << 20

// Config says which bucket and how to reach it.
type Config struct {
	// Bucket is the bucket's name.
	Bucket string
	// Prefix is the store's root inside the bucket ("" for the whole bucket).
	Prefix string
	// Region is the bucket's region; empty takes the SDK's (AWS_REGION,
	// shared config), and us-east-1 when that is empty too.
	Region string
	// Endpoint is the URL of an S3-compatible store, e.g.
	// http://127.0.0.1:9000; empty takes AWS_ENDPOINT_URL_S3 or
	// AWS_ENDPOINT_URL if set, else AWS's own endpoints.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint. nil means on exactly when an endpoint is set (what
	// S3-compatible stores on an address need), off for AWS.
	PathStyle *bool
	// MultipartThreshold is the size above which WriteFile uploads in parts;
	// 0 means DefaultMultipartThreshold.
	MultipartThreshold int64
	// PutIfAbsentAttempts bounds the tries of one PutIfAbsent on transient
	// errors (409 ConditionalRequestConflict, 5xx, network); default 6.
	PutIfAbsentAttempts int
	// WholeReadLimit is the size up to which Open fetches the whole object
	// in one GET and serves ReadAt from memory, instead of one ranged GET
	// per ReadAt; 0 means DefaultWholeReadLimit, negative turns it off.
	WholeReadLimit int64
}

// DefaultWholeReadLimit is the default Config.WholeReadLimit: a Parquet
// reader makes several small reads of a file (footer, then column chunks),
// and below this size one GET costs less than their round trips.
const DefaultWholeReadLimit = 8 << 20

// Store is a storage.Store on one S3 bucket, rooted at a prefix. It is safe
// for concurrent use.
type Store struct {
	client    *s3.Client
	transfer  *tm.Client
	bucket    string
	prefix    string // "" or a clean path without trailing slash
	threshold int64
	attempts  int
	wholeRead int64
}

var (
	_ storage.Store      = (*Store)(nil)
	_ storage.NameLister = (*Store)(nil)
)

// ParseURI reads s3://bucket/prefix?region=R&endpoint=URL&path_style=true
// into a Config. Query settings override the environment's.
func ParseURI(uri string) (Config, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Config{}, fmt.Errorf("s3store: parse %q: %w", uri, err)
	}
	if u.Scheme != "s3" && u.Scheme != "s3a" {
		return Config{}, fmt.Errorf("s3store: %q: scheme %q is not s3", uri, u.Scheme)
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("s3store: %q: no bucket", uri)
	}
	cfg := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	q := u.Query()
	for k := range q {
		switch k {
		case "region", "endpoint", "path_style":
		default:
			return Config{}, fmt.Errorf("s3store: %q: unknown setting %q (want region, endpoint, path_style)", uri, k)
		}
	}
	cfg.Region = q.Get("region")
	cfg.Endpoint = q.Get("endpoint")
	if v := q.Get("path_style"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("s3store: %q: path_style: %w", uri, err)
		}
		cfg.PathStyle = &b
	}
	return cfg, nil
}

// Open opens the store named by an s3:// URI (see ParseURI).
func Open(ctx context.Context, uri string) (*Store, error) {
	cfg, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg)
}

// New returns a Store for cfg, with credentials from the SDK's default
// chain. It does not contact the store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3store: no bucket")
	}
	prefix, err := storage.CleanPath(strings.Trim(cfg.Prefix, "/"))
	if err != nil {
		return nil, fmt.Errorf("s3store: prefix %q: %w", cfg.Prefix, err)
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	}
	pathStyle := cfg.Endpoint != ""
	if cfg.PathStyle != nil {
		pathStyle = *cfg.PathStyle
	}
	var loadOpts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		// S3-compatible stores often send no checksums; that is not worth
		// a log line per request.
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	s := &Store{
		client: client, bucket: cfg.Bucket, prefix: prefix,
		threshold: cfg.MultipartThreshold, attempts: cfg.PutIfAbsentAttempts, wholeRead: cfg.WholeReadLimit,
	}
	if s.wholeRead == 0 {
		s.wholeRead = DefaultWholeReadLimit
	}
	if s.threshold <= 0 {
		s.threshold = DefaultMultipartThreshold
	}
	if s.attempts <= 0 {
		s.attempts = 6
	}
	s.transfer = tm.New(client, func(o *tm.Options) {
		o.MultipartUploadThreshold = s.threshold
		o.PartSizeBytes = max(s.threshold/2, 5<<20)
	})
	return s, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// Client returns the S3 client the store uses.
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// URI returns s3://bucket/prefix.
func (s *Store) URI() string { return "s3://" + storage.Join(s.bucket, s.prefix) }

// key returns the object key of a store path.
func (s *Store) key(p string) (string, error) {
	p, err := storage.CleanPath(p)
	if err != nil {
		return "", err
	}
	return storage.Join(s.prefix, p), nil
}

// dirPrefix returns the key prefix under which dir's children live.
func (s *Store) dirPrefix(dir string) (string, error) {
	k, err := s.key(dir)
	if err != nil || k == "" {
		return "", err
	}
	return k + "/", nil
}

// notFound reports whether err is S3's answer for a missing key.
func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || httpStatus(err) == http.StatusNotFound
}

// httpStatus returns the HTTP status of an S3 error response, or 0.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// wrap adds the operation and path to err, keeping storage.ErrNotExist
// recognisable.
func wrap(op, p string, err error) error {
	if notFound(err) {
		return fmt.Errorf("s3store: %s %s: %w", op, p, storage.ErrNotExist)
	}
	return fmt.Errorf("s3store: %s %s: %w", op, p, err)
}

// ReadFile implements storage.Store.
func (s *Store) ReadFile(ctx context.Context, p string) ([]byte, error) {
	k, err := s.key(p)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, wrap("read", p, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, wrap("read", p, err)
	}
	return b, nil
}

// object is an open object: each ReadAt is one ranged GET.
type object struct {
	s    *Store
	ctx  context.Context
	key  string
	path string
	size int64
	etag *string
}

func (o *object) Size() int64  { return o.size }
func (o *object) Close() error { return nil }

// ReadAt implements io.ReaderAt with a ranged GetObject, pinned to the
// version opened (If-Match on its ETag).
func (o *object) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3store: read %s: negative offset %d", o.path, off)
	}
	if len(b) == 0 {
		return 0, nil
	}
	if off >= o.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(b)), o.size) - 1
	rng := fmt.Sprintf("bytes=%d-%d", off, end)
	out, err := o.s.client.GetObject(o.ctx, &s3.GetObjectInput{Bucket: &o.s.bucket, Key: &o.key, Range: &rng, IfMatch: o.etag})
	if err != nil {
		return 0, wrap("read range of", o.path, err)
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, b[:end-off+1])
	if err != nil {
		return n, wrap("read range of", o.path, err)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// Open implements storage.Store. The file reads the object's version that
// was current at Open; reads fail if it is replaced meanwhile.
func (s *Store) Open(ctx context.Context, p string) (storage.File, error) {
	k, err := s.key(p)
	if err != nil {
		return nil, err
	}
	if k == "" {
		return nil, fmt.Errorf("s3store: open the root: %w", storage.ErrInvalidPath)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, wrap("open", p, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if size <= s.wholeRead {
		got, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k, IfMatch: out.ETag})
		if err != nil {
			return nil, wrap("open", p, err)
		}
		defer got.Body.Close()
		b, err := io.ReadAll(got.Body)
		if err != nil {
			return nil, wrap("open", p, err)
		}
		return storage.BytesFile(b), nil
	}
	return &object{s: s, ctx: context.WithoutCancel(ctx), key: k, path: p, size: size, etag: out.ETag}, nil
}

// WriteFile implements storage.Store: one PutObject, or a multipart upload
// above the threshold. S3 replaces an object atomically either way.
func (s *Store) WriteFile(ctx context.Context, p string, data []byte) error {
	k, err := s.key(p)
	if err != nil {
		return err
	}
	if k == "" {
		return fmt.Errorf("s3store: write the root: %w", storage.ErrInvalidPath)
	}
	if int64(len(data)) > s.threshold {
		_, err = s.transfer.UploadObject(ctx, &tm.UploadObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data)})
	} else {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		})
	}
	if err != nil {
		return wrap("write", p, err)
	}
	return nil
}

// PutIfAbsent implements storage.Store with PutObject If-None-Match: *.
//
// The SDK's own retries are off for this call, so that this loop knows
// whether an earlier attempt may have landed: after a network error or a
// 5xx the put may have succeeded on the server, and a later 412 may be our
// own object. Then the object is read back, and identical bytes count as
// our success (a Delta commit carries a timestamp and the writer's actions,
// so another writer's commit is never byte-identical by chance).
func (s *Store) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	k, err := s.key(p)
	if err != nil {
		return err
	}
	if k == "" {
		return fmt.Errorf("s3store: put the root: %w", storage.ErrInvalidPath)
	}
	ambiguous := false
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*"),
		}, func(o *s3.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) })
		if err == nil {
			return nil
		}
		status := httpStatus(err)
		if status == http.StatusPreconditionFailed {
			if ambiguous && s.sameContent(ctx, k, data) {
				return nil
			}
			return fmt.Errorf("s3store: put %s: %w", p, storage.ErrExists)
		}
		retryable := status == http.StatusConflict || status >= 500 || status == 0 && !isClientError(err)
		if !retryable || attempt >= s.attempts || ctx.Err() != nil {
			return fmt.Errorf("s3store: put %s (attempt %d): %w", p, attempt, err)
		}
		if status != http.StatusConflict {
			ambiguous = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("s3store: put %s: %w", p, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// isClientError reports whether err happened before a request could be
// sent (bad input, credentials), so a retry cannot help and nothing landed.
func isClientError(err error) bool {
	var oe *smithy.OperationError
	if !errors.As(err, &oe) {
		return true
	}
	var re *smithyhttp.RequestSendError
	return !errors.As(err, &re)
}

// sameContent reports whether key holds exactly data.
func (s *Store) sameContent(ctx context.Context, key string, data []byte) bool {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return false
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return err == nil && bytes.Equal(b, data)
}

// List implements storage.Store. Common prefixes are directories; an empty
// object whose key ends in "/" (a folder marker some tools write) is left
// out. A dir with nothing under it is storage.ErrNotExist, except the root.
func (s *Store) List(ctx context.Context, dir string) ([]storage.FileInfo, error) {
	pre, err := s.dirPrefix(dir)
	if err != nil {
		return nil, err
	}
	var out []storage.FileInfo
	pager := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: &pre, Delimiter: aws.String("/"),
	})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, wrap("list", dir, err)
		}
		for _, cp := range page.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), pre), "/")
			if name != "" {
				out = append(out, storage.FileInfo{Path: storage.Join(dir, name), IsDir: true})
			}
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), pre)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			out = append(out, storage.FileInfo{
				Path: storage.Join(dir, name), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	if len(out) == 0 && dir != "" {
		return nil, fmt.Errorf("s3store: list %s: %w", dir, storage.ErrNotExist)
	}
	slices.SortFunc(out, func(a, b storage.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// ListNames implements storage.NameLister.
func (s *Store) ListNames(ctx context.Context, dir string) ([]string, error) {
	infos, err := s.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	return storage.Names(infos), nil
}

// Stat implements storage.Store. A path with objects under it is a
// directory.
func (s *Store) Stat(ctx context.Context, p string) (storage.FileInfo, error) {
	k, err := s.key(p)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if p == "" {
		return storage.FileInfo{Path: p, IsDir: true}, nil
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err == nil {
		return storage.FileInfo{Path: p, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
	}
	if !notFound(err) {
		return storage.FileInfo{}, wrap("stat", p, err)
	}
	pre := k + "/"
	list, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &pre, MaxKeys: aws.Int32(1)})
	if err != nil {
		return storage.FileInfo{}, wrap("stat", p, err)
	}
	if len(list.Contents) == 0 {
		return storage.FileInfo{}, fmt.Errorf("s3store: stat %s: %w", p, storage.ErrNotExist)
	}
	return storage.FileInfo{Path: p, IsDir: true}, nil
}

// Delete implements storage.Store. S3 deletes missing keys without
// complaint, so a HEAD first makes a missing file storage.ErrNotExist.
func (s *Store) Delete(ctx context.Context, p string) error {
	k, err := s.key(p)
	if err != nil {
		return err
	}
	if p == "" {
		return fmt.Errorf("s3store: delete the root: %w", storage.ErrInvalidPath)
	}
	if _, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k}); err != nil {
		return wrap("delete", p, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil {
		return wrap("delete", p, err)
	}
	return nil
}

// CreateBucket creates the store's bucket if it does not exist, for tests
// and first-time setup against S3-compatible stores.
func (s *Store) CreateBucket(ctx context.Context) error {
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("s3store: create bucket %s: %w", s.bucket, err)
	}
	return nil
}
