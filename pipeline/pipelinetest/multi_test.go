// Package pipelinetest runs the pipeline module's pieces together against a
// real catalog process: a runner following a table (tablesource) into
// several target tables (tablesink.Multi), through crashes between the
// targets' commits.
package pipelinetest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

const (
	appID  = "copy/src.numbers"
	schema = `{"type":"struct","fields":[` +
		`{"name":"id","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"src_version","type":"long","nullable":true,"metadata":{}}]}`
)

var arrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "src_version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
}, nil)

func table(name string) tablesink.Table {
	return tablesink.Table{Name: name, SchemaJSON: schema}
}

// record builds a record of (id, version) rows.
func record(ids []int64, version []int64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrowSchema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
	b.Field(1).(*array.Int64Builder).AppendValues(version, nil)
	return b.NewRecordBatch()
}

// split is the hop: even ids go to the first target, odd ids to the second,
// each row with the source version it came from. It is deterministic, as
// DESIGN asks of a hop with several targets.
type split struct {
	ids  [2][]int64
	vers [2][]int64
	rows int
}

func (s *split) Append(_ context.Context, version int64, rec arrow.RecordBatch) error {
	col := rec.Column(0).(*array.Int64)
	for i := range col.Len() {
		id := col.Value(i)
		k := int(id % 2)
		s.ids[k] = append(s.ids[k], id)
		s.vers[k] = append(s.vers[k], version)
		s.rows++
	}
	return nil
}
func (s *split) Rows() int                    { return s.rows }
func (s *split) Bytes() int                   { return s.rows * 16 }
func (s *split) Newest() time.Time            { return time.Time{} }
func (s *split) Discard()                     { *s = split{} }
func (s *split) Release(o []tablesink.Output) { tablesink.ReleaseOutputs(o) }
func (s *split) Flush() []tablesink.Output {
	out := make([]tablesink.Output, 2)
	for k := range 2 {
		if len(s.ids[k]) > 0 {
			out[k] = tablesink.Output{Files: []tablesink.File{{Record: record(s.ids[k], s.vers[k])}}, Rows: len(s.ids[k])}
		}
	}
	*s = split{}
	return out
}

// failingClient makes the catalog refuse (Unavailable) every commit to
// table once armed: a crash between two targets' commits, as the runner
// sees it.
type failingClient struct {
	catalogv1.CatalogServiceClient
	table string
	armed atomic.Bool
}

func (c *failingClient) Commit(ctx context.Context, in *catalogv1.CommitRequest, opts ...grpc.CallOption) (*catalogv1.CommitResponse, error) {
	if c.armed.Load() && in.GetTable() == c.table {
		return nil, status.Error(codes.Unavailable, "injected: the process died before this commit")
	}
	return c.CatalogServiceClient.Commit(ctx, in, opts...)
}

// readIDs returns every (id, src_version) row of a table, sorted.
func readIDs(t *testing.T, client catalogv1.CatalogServiceClient, name string) [][2]int64 {
	t.Helper()
	f, err := tablesource.New(tablesource.Config{Table: name}, client, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := f.Next(ctx, -1, time.Second)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	var out [][2]int64
	err = b.Read(ctx, nil, func(_ int64, rec arrow.RecordBatch) error {
		ids, vers := rec.Column(0).(*array.Int64), rec.Column(1).(*array.Int64)
		for i := range ids.Len() {
			out = append(out, [2]int64{ids.Value(i), vers.Value(i)})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	slices.SortFunc(out, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	return out
}

// run follows src.numbers into the targets until caught up.
func run(t *testing.T, client catalogv1.CatalogServiceClient, maxRows int64, timeout time.Duration) error {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	var targets []*tablesink.Target
	for _, name := range []string{"dst.even", "dst.odd"} {
		tg, err := tablesink.Open(ctx, client, table(name), log)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	sink := tablesink.NewMulti(targets...)
	f, err := tablesource.New(tablesource.Config{Table: "src.numbers", MaxRows: maxRows}, client, log)
	if err != nil {
		t.Fatal(err)
	}
	rows := &split{}
	src, err := tablesource.NewSource(f, tablesource.SourceConfig{AppID: appID, Limit: sink.Limit, RunOnce: true, Wait: 200 * time.Millisecond}, rows, log)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.New(pipeline.Config{Name: "copy", Target: "dst", BatchMaxRows: 1 << 20, BatchMaxBytes: 1 << 30,
		BatchMaxAge: 50 * time.Millisecond, RunOnce: true}, src, pipeline.Batch[[]tablesink.Output](rows), sink, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.Run(rctx)
}

// TestMultiTargetCrashBetweenCommits: the second target's commit fails
// (the process "died" between the two commits) at several points; each
// restart gives each target exactly the rows it misses, never one twice.
func TestMultiTargetCrashBetweenCommits(t *testing.T) {
	cat := devstack.Catalog(t, devstack.CatalogConfig{Warehouse: filepath.Join(t.TempDir(), "warehouse"),
		Args: []string{"--auto-maintenance=false"}})
	real := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	ctx := context.Background()
	src, err := tablesink.Open(ctx, real, table("src.numbers"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var want [2][][2]int64
	next, version := int64(0), int64(0)
	write := func(n int) {
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = next
			next++
		}
		rec := record(ids, make([]int64, n))
		defer rec.Release()
		res, err := src.Commit(ctx, tablesink.Write{ReadVersion: version, Files: []tablesink.File{{Record: rec}}, Rows: n})
		if err != nil {
			t.Fatal(err)
		}
		version = res.Version
		for _, id := range ids {
			want[id%2] = append(want[id%2], [2]int64{id, version})
		}
	}

	client := &failingClient{CatalogServiceClient: real, table: "dst.odd"}
	for round := range 4 {
		// Versions with rows for both targets, one target only (a
		// txn-only commit for the other) and none.
		write(5)
		write(1)
		write(3)
		client.armed.Store(true)
		// The runner retries the failing target until the deadline: the
		// first target is ahead of the second now.
		if err := run(t, client, 4, 3*time.Second); err != nil {
			t.Fatalf("round %d: run with dst.odd failing: %v", round, err)
		}
		even, odd := readIDs(t, real, "dst.even"), readIDs(t, real, "dst.odd")
		if len(even) != len(want[0]) || len(odd) >= len(want[1]) {
			t.Fatalf("round %d: after the crashes dst.even has %d of %d rows, dst.odd %d of %d; want even complete, odd behind",
				round, len(even), len(want[0]), len(odd), len(want[1]))
		}
		// New versions arrive before the restart: the restarted runner's
		// first batch must stop at dst.even's position (Multi.Limit), or
		// dst.even would get the versions it holds again.
		write(2)
		write(4)
		client.armed.Store(false)
		if err := run(t, client, 0, time.Minute); err != nil {
			t.Fatalf("round %d: recovery run: %v", round, err)
		}
		for k, name := range []string{"dst.even", "dst.odd"} {
			if got := readIDs(t, real, name); !slices.Equal(got, want[k]) {
				t.Fatalf("round %d: %s holds %v, want %v", round, name, got, want[k])
			}
		}
	}
	for _, name := range []string{"dst.even", "dst.odd"} {
		tv, err := real.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: name, AppId: appID})
		if err != nil || tv.GetVersion() != version {
			t.Errorf("%s: txn %s = %d (%v), want %d", name, appID, tv.GetVersion(), err, version)
		}
	}
	fmt.Fprintln(testWriter{t}, "source versions:", version)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
