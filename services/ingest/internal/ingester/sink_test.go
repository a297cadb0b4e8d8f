package ingester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

var catalogBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ingester-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	catalogBin, _, err = stack.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// catalogClient starts a catalog (no Kafka) with a fresh warehouse.
func catalogClient(t *testing.T) (catalogv1.CatalogServiceClient, string) {
	t.Helper()
	dir := t.TempDir()
	warehouse := filepath.Join(dir, "warehouse")
	cat, err := devstack.StartCatalog(context.Background(), devstack.CatalogConfig{Bin: catalogBin, Warehouse: warehouse, LogPath: filepath.Join(dir, "catalog.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("catalog log:\n%s", cat.LogTail(20))
		}
		cat.Kill()
	})
	conn, err := grpc.NewClient(cat.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return catalogv1.NewCatalogServiceClient(conn), warehouse
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// batch builds one batch of n rows of topic/partition starting at offset first.
func batch(topic string, partition int32, first int64, n int) []tablesink.File {
	r := NewRows()
	defer r.Close()
	for i := range n {
		r.b.Append(&rawtable.Row{Topic: topic, Partition: partition, Offset: first + int64(i),
			Payload: fmt.Appendf(nil, "payload %d", first+int64(i)), Headers: []rawtable.Header{{Key: rawtable.BridgeTimestampHeader, Value: []byte("1700000000000")}},
			IngestTime: time.Now()})
	}
	return r.Flush()
}

// Open opens the raw table as ingest does.
func Open(ctx context.Context, client catalogv1.CatalogServiceClient, log *slog.Logger) (tablesink.Single, error) {
	t, err := tablesink.Open(ctx, client, Table, log)
	return tablesink.Single{T: t}, err
}

func TestOpenCreatesTheTableOnce(t *testing.T) {
	client, warehouse := catalogClient(t)
	ctx := context.Background()
	first, err := Open(ctx, client, discard)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	second, err := Open(ctx, client, discard)
	if err != nil {
		t.Fatalf("second Open (table exists): %v", err)
	}
	if first.T.Location() != second.T.Location() {
		t.Errorf("locations differ: %s, %s", first.T.Location(), second.T.Location())
	}
	want := filepath.Join(warehouse, "raw", "plant_sensor_readings")
	if got := strings.TrimSuffix(strings.TrimPrefix(first.T.Location(), "file://"), "/"); got != want {
		t.Errorf("location %s, want under %s", first.T.Location(), want)
	}
}

func TestCommitPositionsAndConflicts(t *testing.T) {
	client, _ := catalogClient(t)
	ctx := context.Background()
	sink, err := Open(ctx, client, discard)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rawtable.AppID("t", 0), rawtable.AppID("t", 1)
	start, err := sink.Positions(ctx, []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if len(start.Versions) != 0 || start.ReadVersion != 0 {
		t.Fatalf("new table positions = %+v, want none at version 0", start)
	}

	commit := func(readVersion int64, read []string, txns []pipeline.Txn, partition int32, first int64) (pipeline.Committed, error) {
		c := pipeline.Commit[[]tablesink.File]{ReadVersion: readVersion, Cut: pipeline.Cut{ReadAppIDs: read, Txns: txns}, Data: batch("t", partition, first, 10), Rows: 10}
		defer tablesink.Release(c.Data)
		return sink.Commit(ctx, c)
	}
	steps := []struct {
		name        string
		readVersion int64
		read        []string
		txn         pipeline.Txn
		partition   int32
		wantAborted bool
	}{
		// The owner of partition 0 commits offsets 0..9.
		{"owner of partition 0", 0, []string{a}, pipeline.Txn{AppID: a, Version: 9}, 0, false},
		// A worker that read partition 0 at version 0 too (a zombie) loses.
		{"zombie of partition 0", 0, []string{a}, pipeline.Txn{AppID: a, Version: 9}, 0, true},
		// The owner of partition 1, which read at version 0, does not conflict.
		{"owner of partition 1", 0, []string{b}, pipeline.Txn{AppID: b, Version: 9}, 1, false},
		// Reading both partitions at version 0 conflicts with either commit.
		{"reader of both", 0, []string{a, b}, pipeline.Txn{AppID: b, Version: 19}, 1, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := commit(st.readVersion, st.read, []pipeline.Txn{st.txn}, st.partition, st.txn.Version-9)
			if got := errors.Is(err, pipeline.ErrAborted); got != st.wantAborted {
				t.Fatalf("commit error = %v, want aborted: %v", err, st.wantAborted)
			}
			if err == nil && (res.Files != 1 || res.Bytes <= 0) {
				t.Errorf("committed %+v, want one non-empty file", res)
			}
		})
	}
	pos, err := sink.Positions(ctx, []string{a, b, rawtable.AppID("t", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if pos.Versions[a] != 9 || pos.Versions[b] != 9 || len(pos.Versions) != 2 || pos.ReadVersion != 2 {
		t.Errorf("positions = %+v, want a=9 b=9 at version 2", pos)
	}
	rows, version, err := stack.ReadRaw(ctx, sink.T.Location())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20 || version != 2 {
		t.Errorf("table has %d rows at version %d, want 20 at 2", len(rows), version)
	}
}

func TestOpenLocation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		loc     string
		wantErr bool
	}{
		{"file://" + dir + "/", false},
		{dir, false},
		{"s3://bucket/raw/plant_sensor_readings/", false},
		{"abfss://c@a.dfs.core.windows.net/raw/", false},
		{"ftp://host/raw/", true},
	}
	for _, tc := range tests {
		t.Run(tc.loc, func(t *testing.T) {
			_, err := tablesink.OpenLocation(context.Background(), tc.loc)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, tablesink.ErrUnsupportedLocation)) {
				t.Errorf("openLocation(%q) = %v, want error: %v", tc.loc, err, tc.wantErr)
			}
		})
	}
}
