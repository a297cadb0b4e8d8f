package pipelinesvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{ErrNotRunning, codes.Unavailable},
		{fmt.Errorf("commit: %w", ErrAborted), codes.Aborted},
		{fmt.Errorf("rule too_hot: %w", ErrHalted), codes.FailedPrecondition},
		{fmt.Errorf("from_version: %w", ErrInvalid), codes.InvalidArgument},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("catalog unreachable"), codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := status.Code(Status("op", tc.err)); got != tc.want {
				t.Errorf("Status(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// pausable is the smallest Controller: a paused flag.
type pausable struct {
	mu     sync.Mutex
	paused bool
}

func (p *pausable) Status() *pipelinev1.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := pipelinev1.State_STATE_RUNNING
	if p.paused {
		st = pipelinev1.State_STATE_PAUSED
	}
	return &pipelinev1.Status{Service: "hop", State: st}
}

func (p *pausable) Pause(context.Context) error  { p.set(true); return nil }
func (p *pausable) Resume(context.Context) error { p.set(false); return nil }
func (p *pausable) set(v bool)                   { p.mu.Lock(); p.paused = v; p.mu.Unlock() }
func (p *pausable) TriggerCommit(context.Context) (Committed, error) {
	return Committed{}, nil
}

func TestPauseReasonInStatus(t *testing.T) {
	ctx := context.Background()
	s := New(&pausable{}, slog.New(slog.DiscardHandler))
	before := time.Now()
	res, err := s.Pause(ctx, &pipelinev1.PauseRequest{Reason: "line 3 maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	st := res.GetStatus()
	since := st.GetPausedSince().AsTime()
	if st.GetPauseReason() != "line 3 maintenance" || since.Before(before.Add(-time.Millisecond)) || since.After(time.Now()) {
		t.Fatalf("after Pause: reason %q since %v, want the reason and a time within the call", st.GetPauseReason(), since)
	}
	// A second Pause takes the new reason and keeps the first time.
	if _, err := s.Pause(ctx, &pipelinev1.PauseRequest{Reason: "still"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
	if got.GetStatus().GetPauseReason() != "still" || !got.GetStatus().GetPausedSince().AsTime().Equal(since) {
		t.Errorf("after a second Pause: reason %q since %v, want \"still\" since %v", got.GetStatus().GetPauseReason(), got.GetStatus().GetPausedSince().AsTime(), since)
	}
	r, err := s.Resume(ctx, &pipelinev1.ResumeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetStatus().GetPauseReason() != "" || r.GetStatus().GetPausedSince() != nil {
		t.Errorf("after Resume: reason %q since %v, want neither", r.GetStatus().GetPauseReason(), r.GetStatus().GetPausedSince())
	}
	// A reason past the limit is refused, and the hop is not paused.
	_, err = s.Pause(ctx, &pipelinev1.PauseRequest{Reason: strings.Repeat("x", MaxPauseReason+1)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Pause with a %d-byte reason: %v, want InvalidArgument", MaxPauseReason+1, err)
	}
	if got, _ := s.GetStatus(ctx, &pipelinev1.GetStatusRequest{}); got.GetStatus().GetState() != pipelinev1.State_STATE_RUNNING {
		t.Errorf("after a refused Pause: state %v, want running", got.GetStatus().GetState())
	}
}
