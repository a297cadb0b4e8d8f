package pipelinetest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// traceparentOf is the W3C trace context a row of id carries: trace id+1,
// span id+1, sampled unless id is unsampledID.
func traceparentOf(id int64) string {
	flags := "01"
	if id == unsampledID {
		flags = "00"
	}
	return fmt.Sprintf("00-%032x-%016x-%s", id+1, id+1, flags)
}

const unsampledID = 3

// tracedSplit is split whose rows are all readings the bridge traced (but
// unsampledID's): it hands each sampled one to the runner (tablesource.Traced).
type tracedSplit struct {
	split
	link func(trace.Link)
}

func (s *tracedSplit) SetLink(link func(trace.Link)) { s.link = link }

func (s *tracedSplit) Append(ctx context.Context, version int64, rec arrow.RecordBatch) error {
	col := rec.Column(0).(*array.Int64)
	for i := range col.Len() {
		if l, ok := pipeline.LinkFromTraceparent(traceparentOf(col.Value(i))); ok {
			s.link(l)
		}
	}
	return s.split.Append(ctx, version, rec)
}

// TestRecordSpans: for the sampled rows of a batch, up to MaxLinks, the
// runner starts a span in each row's trace (a child of the row's span)
// linked to the batch's commit span, which links back; an unsampled row
// gets none, and the spans end once the commit is in the table.
func TestRecordSpans(t *testing.T) {
	cat := devstack.Catalog(t, devstack.CatalogConfig{Warehouse: filepath.Join(t.TempDir(), "warehouse"),
		Args: []string{"--auto-maintenance=false"}})
	client := catalogv1.NewCatalogServiceClient(cat.Conn(t))
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	src, err := tablesink.Open(ctx, client, table("src.numbers"), log)
	if err != nil {
		t.Fatal(err)
	}
	const n, maxLinks = 10, 6
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	rec := record(ids, make([]int64, n))
	defer rec.Release()
	if _, err := src.Commit(ctx, tablesink.Write{ReadVersion: 0, Files: []tablesink.File{{Record: rec}}, Rows: n}); err != nil {
		t.Fatal(err)
	}
	var targets []*tablesink.Target
	for _, name := range []string{"dst.even", "dst.odd"} {
		tg, err := tablesink.Open(ctx, client, table(name), log)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, tg)
	}
	f, err := tablesource.New(tablesource.Config{Table: "src.numbers"}, client, log)
	if err != nil {
		t.Fatal(err)
	}
	rows := &tracedSplit{}
	s, err := tablesource.NewSource(f, tablesource.SourceConfig{AppID: appID, RunOnce: true, Wait: 200 * time.Millisecond}, rows, log)
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	r, err := pipeline.New(pipeline.Config{Name: "copy", Target: "dst", BatchMaxRows: 1 << 20, BatchMaxBytes: 1 << 30,
		BatchMaxAge: time.Second, RunOnce: true, MaxLinks: maxLinks}, s, pipeline.Batch[[]tablesink.Output](rows),
		tablesink.NewMulti(targets...), log, nil, tp.Tracer("test"))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.Run(rctx); err != nil {
		t.Fatal(err)
	}

	var commit sdktrace.ReadOnlySpan
	var records []sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		switch sp.Name() {
		case "copy.commit":
			if commit != nil {
				t.Fatalf("two commit spans: the %d rows were one batch", n)
			}
			commit = sp
		case "copy.record":
			records = append(records, sp)
		}
	}
	if commit == nil {
		t.Fatal("no commit span")
	}
	if len(records) != maxLinks || len(commit.Links()) != maxLinks {
		t.Fatalf("%d record spans, commit span with %d links; want %d each (the cap)", len(records), len(commit.Links()), maxLinks)
	}
	seen := map[string]bool{}
	for i, sp := range records {
		parent := sp.Parent()
		if !parent.IsRemote() || parent.TraceID() != sp.SpanContext().TraceID() || parent.TraceID() != commit.Links()[i].SpanContext.TraceID() {
			t.Errorf("record span %d: parent %v, trace %v; want a child of the row's span, as the commit's link %d",
				i, parent, sp.SpanContext().TraceID(), i)
		}
		want := traceparentOf(int64(i))
		if i >= unsampledID {
			want = traceparentOf(int64(i + 1)) // the unsampled row has none
		}
		if got := fmt.Sprintf("00-%s-%s-01", parent.TraceID(), parent.SpanID()); got != want {
			t.Errorf("record span %d is in the trace of %s, want %s", i, got, want)
		}
		seen[parent.TraceID().String()] = true
		if l := sp.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != commit.SpanContext().SpanID() {
			t.Errorf("record span %d links %v, want the commit span %v", i, l, commit.SpanContext().SpanID())
		}
		if sp.StartTime().After(commit.StartTime()) || sp.EndTime().Before(commit.EndTime().Add(-time.Second)) {
			t.Errorf("record span %d runs %v..%v, want from before the commit (%v) until it ended (%v)",
				i, sp.StartTime(), sp.EndTime(), commit.StartTime(), commit.EndTime())
		}
	}
	if len(seen) != maxLinks {
		t.Errorf("record spans in %d traces, want %d", len(seen), maxLinks)
	}
}
