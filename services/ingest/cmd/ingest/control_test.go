package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// TestControlAPI drives a running ingest through PipelineService: status
// while records wait in the batch, TriggerCommit, Pause and Resume, and
// checks the Prometheus metrics.
func TestControlAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.ProduceTo(ctx, stack.TopicRaw, 0, 1000, 0); err != nil {
		t.Fatal(err)
	}
	// Batches that never close by themselves: only TriggerCommit commits.
	p, api, metricsAddr := e.pipelineServing("--batch-max-age", "15m", "--batch-max-rows", "1000000")

	status := func() *pipelinev1.Status {
		t.Helper()
		resp, err := api.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
		if err != nil {
			t.Fatalf("GetStatus: %v", err)
		}
		return resp.GetStatus()
	}
	waitBuffered := func(n int64) *pipelinev1.Status {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := status()
			if st.GetIngest().GetBufferedRows() == n {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("buffered rows %d, want %d; status %v", st.GetIngest().GetBufferedRows(), n, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	trigger := func(wantRows int64) int64 {
		t.Helper()
		resp, err := api.TriggerCommit(ctx, &pipelinev1.TriggerCommitRequest{})
		if err != nil {
			t.Fatalf("TriggerCommit: %v", err)
		}
		if !resp.GetCommitted() || resp.GetRows() != wantRows || resp.GetVersion() < 1 {
			t.Fatalf("TriggerCommit = %v, want %d rows committed", resp, wantRows)
		}
		return resp.GetVersion()
	}

	st := waitBuffered(1000)
	if st.GetState() != pipelinev1.State_STATE_RUNNING || st.GetService() != "ingest" || len(st.GetIngest().GetPartitions()) != 8 {
		t.Fatalf("status before the first commit: %v", st)
	}
	v1 := trigger(1000)
	st = status()
	var inTable, lastRows int64
	for _, ps := range st.GetIngest().GetPartitions() {
		if ps.GetTopic() == stack.TopicRaw {
			inTable += ps.GetOffsetInTable() + 1
			lastRows += ps.GetRowsLastCommit()
		}
		if ps.GetLag() != 0 {
			t.Errorf("partition %s/%d lag %d after the commit", ps.GetTopic(), ps.GetPartition(), ps.GetLag())
		}
	}
	if inTable != 1000 || lastRows != 1000 || st.GetIngest().GetLastCommitVersion() != v1 || st.GetCounts().GetWritten() != 1000 {
		t.Errorf("after committing 1000 rows at v%d: offsets cover %d, last commit rows %d, status %v", v1, inTable, lastRows, st)
	}

	if _, err := api.Pause(ctx, &pipelinev1.PauseRequest{Reason: "test"}); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if st := status(); st.GetState() != pipelinev1.State_STATE_PAUSED {
		t.Fatalf("state after Pause: %v", st.GetState())
	}
	if err := pr.ProduceTo(ctx, stack.TopicRaw, 1000, 1500, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := status().GetIngest().GetBufferedRows(); n != 0 {
		t.Fatalf("paused ingest buffered %d rows", n)
	}
	if _, err := api.Resume(ctx, &pipelinev1.ResumeRequest{}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	waitBuffered(500)
	if v2 := trigger(500); v2 <= v1 {
		t.Errorf("second commit at version %d, first at %d", v2, v1)
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^plantlake_ingest_rows_committed_total (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no plantlake_ingest_rows_committed_total in /metrics:\n%s", body)
	}
	if n, _ := strconv.Atoi(string(m[1])); n != 1500 {
		t.Errorf("plantlake_ingest_rows_committed_total = %d, want 1500", n)
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	e.check(pr.Positions)
}
