package main

import (
	"context"
	"testing"
	"time"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// TestStatusAfterIdleCommit checks that a batch committed by age is
// acknowledged while no more records come: the status shows the offsets in
// the table and no lag, instead of waiting for the next batch to close.
func TestStatusAfterIdleCommit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p, api, _ := e.pipelineServing("--batch-max-age", "200ms")

	if err := pr.ProduceTo(ctx, stack.TopicRaw, 0, 300, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := api.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
		if err != nil {
			t.Fatalf("GetStatus: %v", err)
		}
		st := resp.GetStatus()
		var inTable, lag int64
		for _, ps := range st.GetIngest().GetPartitions() {
			if ps.GetTopic() == stack.TopicRaw {
				inTable += ps.GetOffsetInTable() + 1
				lag += ps.GetLag()
			}
		}
		if inTable == 300 && lag == 0 && st.GetCounts().GetWritten() == 300 && st.GetIngest().GetLastCommitVersion() >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after 300 records: offsets in table cover %d, lag %d; status %v", inTable, lag, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	e.check(pr.Positions)
}
