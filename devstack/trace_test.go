package devstack_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

// catalogCommit is the catalog's span of a Commit call (otelgrpc's name).
const catalogCommit = "plantlake.catalog.v1.CatalogService/Commit"

// ingestTraceCap is ingest's --max-trace-links in TestTraceAcrossEveryHop:
// lower than the readings published, so the cap is exercised.
const ingestTraceCap = 3

// TestTraceAcrossEveryHop runs the whole stack as processes exporting to a
// real Jaeger, with the bridge sampling every reading, and finds through
// Jaeger's query API a reading's trace with the bridge's span and one span
// each of ingest, deserialize and merge, started in that order; each hop's
// span links to its batch's commit span, in whose trace the catalog's Commit
// span starts after the hop's span (the catalog's span is not in the
// reading's trace). Ingest, capped at ingestTraceCap traced readings per
// batch, traces no more than that.
func TestTraceAcrossEveryHop(t *testing.T) {
	start := time.Now()
	j := devstack.Jaeger(t)
	s := devstack.NewStack(t, devstack.StackConfig{
		Env: append(j.Env(), "OTEL_BSP_SCHEDULE_DELAY=100"),
		Args: map[string][]string{
			"bridge": {"--trace-sample-ratio", "1"},
			"ingest": {"--max-trace-links", fmt.Sprint(ingestTraceCap)},
		},
	})
	t.Logf("jaeger and stack started in %v", time.Since(start).Round(time.Millisecond))

	const n = 8
	base := time.Now().Unix() - 60
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"sensor_id":"press01","measurement":"temperature","value":%d.5,"unit":"C","ts":%d}`, i, base+int64(i)))
	}
	cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", portOf(s.Mosquitto.Addr()), "-q", "1",
		"-i", "trace-test", "-t", "plant/line1/press01/temperature", "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last error
	for {
		found, err := findReadingTrace(ctx, j)
		if err == nil {
			t.Logf("reading trace %s after %v:\n%s", found.reading.TraceID, time.Since(start).Round(time.Millisecond), found)
			break
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("no complete reading trace in Jaeger: %v", last)
		case <-time.After(500 * time.Millisecond):
		}
	}

	// The cap: ingest traced at most ingestTraceCap readings per batch.
	records, err := j.Traces(ctx, "ingest", "ingest.record", 100)
	if err != nil {
		t.Fatal(err)
	}
	perBatch := map[string]int{} // ingest.commit span id → ingest.record spans linking to it
	for _, tr := range records {
		for _, sp := range tr.Spans {
			if tr.Service(&sp) == "ingest" && sp.OperationName == "ingest.record" {
				for _, l := range sp.Links() {
					perBatch[l.SpanID]++
				}
			}
		}
	}
	for id, k := range perBatch {
		if k > ingestTraceCap {
			t.Errorf("ingest batch %s traced %d readings, want at most %d", id, k, ingestTraceCap)
		}
	}
	if len(perBatch) == 0 {
		t.Error("no ingest.record span links to a batch")
	}
	t.Logf("ingest traced %d of %d readings in %d batches (cap %d per batch): %v", len(records), n, len(perBatch), ingestTraceCap, perBatch)
}

// readingTrace is a reading's trace and, per hop, its span and the linked
// catalog Commit span.
type readingTrace struct {
	reading *devstack.JaegerTrace
	bridge  *devstack.JaegerSpan
	hops    [3]*devstack.JaegerSpan
	commits [3]*devstack.JaegerSpan
}

// hops are the table-writing hops, in the order a reading passes them.
var hops = [3]string{"ingest", "deserialize", "merge"}

func (r *readingTrace) String() string {
	var b strings.Builder
	t0 := r.bridge.StartTime
	fmt.Fprintf(&b, "  bridge      %-22s +%6.1f ms\n", r.bridge.OperationName, 0.0)
	for i, h := range hops {
		fmt.Fprintf(&b, "  %-11s %-22s +%6.1f ms   catalog Commit (linked) +%6.1f ms\n", h, r.hops[i].OperationName,
			float64(r.hops[i].StartTime-t0)/1000, float64(r.commits[i].StartTime-t0)/1000)
	}
	return b.String()
}

// findReadingTrace looks through merge's recent reading spans for a trace
// that is complete and in order.
func findReadingTrace(ctx context.Context, j *devstack.JaegerServer) (*readingTrace, error) {
	traces, err := j.Traces(ctx, "merge", "merge.record", 20)
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, errors.New("no merge.record span yet")
	}
	var errs []error
	for i := range traces {
		r, err := checkReadingTrace(ctx, j, &traces[i])
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("trace %s: %w", traces[i].TraceID, err))
	}
	return nil, errors.Join(errs...)
}

// checkReadingTrace checks one reading's trace (see TestTraceAcrossEveryHop).
func checkReadingTrace(ctx context.Context, j *devstack.JaegerServer, tr *devstack.JaegerTrace) (*readingTrace, error) {
	r := &readingTrace{reading: tr}
	for i := range tr.Spans {
		sp := &tr.Spans[i]
		switch svc := tr.Service(sp); {
		case svc == "bridge" && sp.OperationName == "bridge forward":
			r.bridge = sp
		case svc == "catalog":
			return nil, fmt.Errorf("the catalog's span %s %s is in the reading's trace", sp.OperationName, sp.SpanID)
		default:
			for h, name := range hops {
				if svc == name && sp.OperationName == name+".record" {
					if r.hops[h] != nil {
						return nil, fmt.Errorf("two %s spans", sp.OperationName)
					}
					r.hops[h] = sp
				}
			}
		}
	}
	if r.bridge == nil {
		return nil, errors.New("no bridge forward span")
	}
	prev := r.bridge
	for h, name := range hops {
		sp := r.hops[h]
		if sp == nil {
			return nil, fmt.Errorf("no %s.record span", name)
		}
		if sp.Parent() != r.bridge.SpanID {
			return nil, fmt.Errorf("%s.record's parent is %q, want the bridge's span %s", name, sp.Parent(), r.bridge.SpanID)
		}
		if sp.StartTime <= prev.StartTime {
			return nil, fmt.Errorf("%s.record starts at %d, not after %s at %d", name, sp.StartTime, prev.OperationName, prev.StartTime)
		}
		prev = sp
		links := sp.Links()
		if len(links) != 1 {
			return nil, fmt.Errorf("%s.record has links %v, want one to its batch's commit span", name, links)
		}
		batch, err := j.Trace(ctx, links[0].TraceID)
		if err != nil {
			return nil, err
		}
		if batch == nil {
			return nil, fmt.Errorf("%s.record links to trace %s, which Jaeger does not have (yet)", name, links[0].TraceID)
		}
		commit := batch.Span(links[0].SpanID)
		if commit == nil || commit.OperationName != name+".commit" || batch.Service(commit) != name {
			return nil, fmt.Errorf("%s.record links to span %s, not to a %s.commit span", name, links[0].SpanID, name)
		}
		for i := range batch.Spans {
			c := &batch.Spans[i]
			if batch.Service(c) == "catalog" && c.OperationName == catalogCommit && descends(batch, c, commit.SpanID) {
				r.commits[h] = c
				break
			}
		}
		if r.commits[h] == nil {
			return nil, fmt.Errorf("%s's batch trace %s has no catalog %s span under %s.commit (yet)", name, batch.TraceID, catalogCommit, name)
		}
		if r.commits[h].StartTime < sp.StartTime {
			return nil, fmt.Errorf("the catalog's commit of %s's batch starts before %s.record", name, name)
		}
	}
	return r, nil
}

// descends reports whether span s of tr has ancestor in its parent chain.
func descends(tr *devstack.JaegerTrace, s *devstack.JaegerSpan, ancestor string) bool {
	for range len(tr.Spans) {
		p := s.Parent()
		if p == "" {
			return false
		}
		if p == ancestor {
			return true
		}
		if s = tr.Span(p); s == nil {
			return false
		}
	}
	return false
}
