package control

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/ingester"
	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{ingester.ErrNotRunning, codes.Unavailable},
		{fmt.Errorf("commit: %w", rawtable.ErrAborted), codes.Aborted},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("catalog unreachable"), codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := status.Code(toStatus("op", tc.err)); got != tc.want {
				t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStateOf(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		st   ingester.Status
		want pipelinev1.State
	}{
		{"starting", ingester.Status{State: ingester.StateStarting}, pipelinev1.State_STATE_STARTING},
		{"running", ingester.Status{State: ingester.StateRunning}, pipelinev1.State_STATE_RUNNING},
		{"paused", ingester.Status{State: ingester.StatePaused}, pipelinev1.State_STATE_PAUSED},
		{"stopping", ingester.Status{State: ingester.StateStopping}, pipelinev1.State_STATE_STOPPING},
		{"error since the last commit", ingester.Status{State: ingester.StateRunning, LastErrorTime: now,
			LastCommit: ingester.CommitInfo{Time: now.Add(-time.Second)}}, pipelinev1.State_STATE_DEGRADED},
		{"committed since the last error", ingester.Status{State: ingester.StateRunning, LastErrorTime: now.Add(-time.Second),
			LastCommit: ingester.CommitInfo{Time: now}}, pipelinev1.State_STATE_RUNNING},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateOf(tc.st); got != tc.want {
				t.Errorf("stateOf = %v, want %v", got, tc.want)
			}
		})
	}
}
