package pipelinetest

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestExclusive: a function run with Runner.Exclusive sees no commit of the
// runner while it runs, although the source has new versions meanwhile;
// afterwards the runner commits them, every row once.
func TestExclusive(t *testing.T) {
	cat := devstack.Catalog(t, devstack.CatalogConfig{Warehouse: filepath.Join(t.TempDir(), "warehouse"),
		Args: []string{"--auto-maintenance=false"}})
	client := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	src, err := tablesink.Open(ctx, client, table("src.numbers"), log)
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

	var targets []*tablesink.Target
	for _, name := range []string{"dst.even", "dst.odd"} {
		tg, err := tablesink.Open(ctx, client, table(name), log)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	sink := tablesink.NewMulti(targets...)
	f, err := tablesource.New(tablesource.Config{Table: "src.numbers", PollInterval: 20 * time.Millisecond}, client, log)
	if err != nil {
		t.Fatal(err)
	}
	rows := &split{}
	source, err := tablesource.NewSource(f, tablesource.SourceConfig{AppID: appID, Limit: sink.Limit, Wait: 20 * time.Millisecond}, rows, log)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pipeline.New(pipeline.Config{Name: "copy", Target: "dst", BatchMaxRows: 1 << 20, BatchMaxBytes: 1 << 30,
		BatchMaxAge: 20 * time.Millisecond}, source, pipeline.Batch[[]tablesink.Output](rows), sink, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()
	caughtUp := func(when string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); source.Status().Position != version; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: runner at source version %d, want %d", when, source.Status().Position, version)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tableVersion := func(name string) int64 {
		resp, err := client.GetTable(ctx, &catalogv1.GetTableRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetTable().GetVersion()
	}

	for round := range 3 {
		write(4)
		write(3)
		err := r.Exclusive(ctx, func(context.Context) error {
			before := []int64{tableVersion("dst.even"), tableVersion("dst.odd")}
			write(5) // the runner would pick this up within 20 ms
			time.Sleep(300 * time.Millisecond)
			if after := []int64{tableVersion("dst.even"), tableVersion("dst.odd")}; !slices.Equal(before, after) {
				t.Errorf("round %d: the targets went from versions %v to %v during Exclusive", round, before, after)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: Exclusive: %v", round, err)
		}
		caughtUp("after Exclusive")
		for k, name := range []string{"dst.even", "dst.odd"} {
			if got := readIDs(t, client, name); !slices.Equal(got, want[k]) {
				t.Fatalf("round %d: %s holds %v, want %v", round, name, got, want[k])
			}
		}
	}
}
