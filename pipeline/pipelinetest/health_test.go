package pipelinetest

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestHealthyAgainWhileIdle: a hop whose source table does not exist yet
// is unhealthy with the reason in its status; once the table exists it is
// healthy again although no row ever arrives (the compose stack found a
// merge that stayed NOT_SERVING because it started before bronze existed).
func TestHealthyAgainWhileIdle(t *testing.T) {
	cat := devstack.Catalog(t, devstack.CatalogConfig{Warehouse: filepath.Join(t.TempDir(), "warehouse"),
		Args: []string{"--auto-maintenance=false"}})
	client := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	dst, err := tablesink.Open(ctx, client, table("dst.copy"), log)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tablesource.New(tablesource.Config{Table: "src.later", PollInterval: 100 * time.Millisecond}, client, log)
	if err != nil {
		t.Fatal(err)
	}
	rows := &split{}
	src, err := tablesource.NewSource(f, tablesource.SourceConfig{AppID: appID, Wait: 100 * time.Millisecond}, rows, log)
	if err != nil {
		t.Fatal(err)
	}
	sink := tablesink.NewMulti(dst, dst)
	r, err := pipeline.New(pipeline.Config{Name: "copy", Target: "dst.copy", BatchMaxRows: 1000, BatchMaxBytes: 1 << 20,
		BatchMaxAge: 50 * time.Millisecond}, src, pipeline.Batch[[]tablesink.Output](rows), sink, log, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("after 20 s: not %s; status %+v", what, r.Status())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("unhealthy with the missing table in last_error", func() bool {
		return !r.Healthy() && strings.Contains(r.Status().LastError, "src.later")
	})
	if _, err := tablesink.Open(ctx, client, table("src.later"), log); err != nil {
		t.Fatal(err)
	}
	waitFor("healthy again while the source stays empty", r.Healthy)
}
