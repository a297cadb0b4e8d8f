// Package pipelinesvc serves plantlake.pipeline.v1.PipelineService for every
// hop (bridge, ingest, deserialize, merge): thin gRPC handlers over a
// [Controller], with the one mapping of control errors to status codes.
//
// It lives in the service kit, not in the pipeline module, so that the
// bridge can use it without linking any Delta code.
package pipelinesvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// Errors a Controller returns (wrapped) for the API to map to status codes.
var (
	// ErrNotRunning: the hop is not (or no longer) processing; Unavailable.
	ErrNotRunning = errors.New("not running")
	// ErrAborted: the commit lost a race with another writer; the batch
	// was dropped and is read again. Aborted (retryable).
	ErrAborted = errors.New("commit aborted by a concurrent writer")
	// ErrHalted: the hop stopped on a fail rule or a fatal error and waits
	// for Resume or a restart. FailedPrecondition.
	ErrHalted = errors.New("halted")
	// ErrInvalid: the request's arguments are wrong. InvalidArgument.
	ErrInvalid = errors.New("invalid argument")
)

// Committed is what a triggered commit wrote.
type Committed struct {
	// Version is the table version written (0 for a hop without tables,
	// the bridge); Rows how many rows or records the commit carried.
	Version int64
	Rows    int64
}

// Controller is what a hop offers its control API. Every method may be
// called from any goroutine.
type Controller interface {
	// Status returns the hop's current status.
	Status() *pipelinev1.Status
	// Pause stops taking input until Resume; what is in flight still
	// completes. It is idempotent.
	Pause(ctx context.Context) error
	// Resume undoes Pause (and clears a halt, where the hop has one).
	Resume(ctx context.Context) error
	// TriggerCommit closes the batch being built now and commits it (the
	// bridge: flushes its producer). A zero Committed means there was
	// nothing to commit.
	TriggerCommit(ctx context.Context) (Committed, error)
}

// Server implements pipelinev1.PipelineServiceServer over a Controller.
type Server struct {
	pipelinev1.UnimplementedPipelineServiceServer
	c   Controller
	log *slog.Logger

	// mu guards the pause the API asked for: its reason and time, shown in
	// the status while the hop is paused.
	mu          sync.Mutex
	paused      bool
	pauseReason string
	pausedSince time.Time
}

// MaxPauseReason is the most bytes a Pause reason may have: it is kept for
// the status and written to the log.
const MaxPauseReason = 1024

// New returns the control API of c.
func New(c Controller, log *slog.Logger) *Server { return &Server{c: c, log: log} }

// GetStatus reports the hop's state, position, lag and counters.
func (s *Server) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: s.status()}, nil
}

// status is the controller's status with the reason and time of the pause
// while the hop is paused.
func (s *Server) status() *pipelinev1.Status {
	st := s.c.Status()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused && st.GetState() == pipelinev1.State_STATE_PAUSED {
		st.PauseReason = s.pauseReason
		st.PausedSince = timestamppb.New(s.pausedSince)
	}
	return st
}

// Pause stops taking input. A second Pause keeps the time of the first and
// takes the new reason.
func (s *Server) Pause(ctx context.Context, req *pipelinev1.PauseRequest) (*pipelinev1.PauseResponse, error) {
	reason := req.GetReason()
	if len(reason) > MaxPauseReason {
		return nil, Status("pause", fmt.Errorf("%w: reason: %d bytes, at most %d", ErrInvalid, len(reason), MaxPauseReason))
	}
	s.log.Info("pause requested", "reason", reason)
	if err := s.c.Pause(ctx); err != nil {
		return nil, Status("pause", err)
	}
	s.mu.Lock()
	if !s.paused {
		s.paused, s.pausedSince = true, time.Now()
	}
	s.pauseReason = reason
	s.mu.Unlock()
	return &pipelinev1.PauseResponse{Status: s.status()}, nil
}

// Resume starts taking input again.
func (s *Server) Resume(ctx context.Context, _ *pipelinev1.ResumeRequest) (*pipelinev1.ResumeResponse, error) {
	s.log.Info("resume requested")
	if err := s.c.Resume(ctx); err != nil {
		return nil, Status("resume", err)
	}
	s.mu.Lock()
	s.paused, s.pauseReason, s.pausedSince = false, "", time.Time{}
	s.mu.Unlock()
	return &pipelinev1.ResumeResponse{Status: s.status()}, nil
}

// TriggerCommit commits the batch being built now and says what it wrote.
func (s *Server) TriggerCommit(ctx context.Context, _ *pipelinev1.TriggerCommitRequest) (*pipelinev1.TriggerCommitResponse, error) {
	res, err := s.c.TriggerCommit(ctx)
	if err != nil {
		return nil, Status("commit", err)
	}
	return &pipelinev1.TriggerCommitResponse{Committed: res.Rows > 0, Version: res.Version, Rows: res.Rows}, nil
}

// Status maps a control error to a gRPC status, in this one place for every
// hop; op names the call in the message.
func Status(op string, err error) error {
	code := codes.Unavailable
	hint := ""
	switch {
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotRunning):
		code = codes.Unavailable
	case errors.Is(err, ErrAborted):
		code, hint = codes.Aborted, " (the batch was dropped and is read again)"
	case errors.Is(err, ErrHalted):
		code, hint = codes.FailedPrecondition, " (fix the cause, then Resume)"
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Errorf(code, "%s: %v%s", op, err, hint)
}

// WatchHealth calls set with healthy() every interval (and at once) until
// ctx ends, so that the gRPC health service says NOT_SERVING while a hop's
// dependencies (MQTT, Kafka, the catalog) do not answer or it is halted.
// Run it as one of the service kit's loops, which owns its goroutine.
func WatchHealth(ctx context.Context, interval time.Duration, healthy func() bool, set func(serving bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return // the service kit has turned health off for the shutdown
		}
		set(healthy())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
