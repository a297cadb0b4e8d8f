// Package control serves plantlake.pipeline.v1.PipelineService for ingest:
// thin gRPC handlers over the ingester engine.
package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/ingester"
	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// Engine is the part of the ingester the control API drives.
type Engine interface {
	Status() ingester.Status
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	TriggerCommit(ctx context.Context) (rawtable.Committed, int, error)
}

// Server implements pipelinev1.PipelineServiceServer.
type Server struct {
	pipelinev1.UnimplementedPipelineServiceServer
	engine  Engine
	started time.Time
}

// NewServer returns the control API of engine; started is the process start time.
func NewServer(engine Engine, started time.Time) *Server {
	return &Server{engine: engine, started: started}
}

// GetStatus reports the engine's state, per-partition positions and counters.
func (s *Server) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: s.status()}, nil
}

// Pause stops fetching; the batch in flight is committed when it reaches its age.
func (s *Server) Pause(ctx context.Context, _ *pipelinev1.PauseRequest) (*pipelinev1.PauseResponse, error) {
	if err := s.engine.Pause(ctx); err != nil {
		return nil, toStatus("pause", err)
	}
	return &pipelinev1.PauseResponse{Status: s.status()}, nil
}

// Resume starts fetching again.
func (s *Server) Resume(ctx context.Context, _ *pipelinev1.ResumeRequest) (*pipelinev1.ResumeResponse, error) {
	if err := s.engine.Resume(ctx); err != nil {
		return nil, toStatus("resume", err)
	}
	return &pipelinev1.ResumeResponse{Status: s.status()}, nil
}

// TriggerCommit closes the batch now and returns the commit it made.
func (s *Server) TriggerCommit(ctx context.Context, _ *pipelinev1.TriggerCommitRequest) (*pipelinev1.TriggerCommitResponse, error) {
	res, rows, err := s.engine.TriggerCommit(ctx)
	if err != nil {
		return nil, toStatus("commit", err)
	}
	return &pipelinev1.TriggerCommitResponse{Committed: rows > 0, Version: res.Version, Rows: int64(rows)}, nil
}

// toStatus maps engine errors to gRPC status codes, in this one place.
func toStatus(op string, err error) error {
	switch {
	case errors.Is(err, ingester.ErrNotRunning):
		return status.Errorf(codes.Unavailable, "%s: %v", op, err)
	case errors.Is(err, rawtable.ErrAborted):
		return status.Errorf(codes.Aborted, "%s: %v (the batch was dropped and is read again)", op, err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: %v", op, err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", op, err)
	}
	return status.Errorf(codes.Unavailable, "%s: %v", op, err)
}

func (s *Server) status() *pipelinev1.Status {
	st := s.engine.Status()
	out := &pipelinev1.Status{
		Service:  "ingest",
		State:    stateOf(st),
		Position: fmt.Sprintf("%s@v%d", rawtable.Name, st.TableVersion),
		Lag:      st.Lag,
		Counts: &pipelinev1.Counts{
			Received: st.Received,
			Written:  st.RowsCommitted,
			Failed:   st.RowsDropped,
			Commits:  st.Commits,
		},
		Rates: &pipelinev1.Rates{
			ReceivedPerSecond: st.ReceivedPerSecond,
			WrittenPerSecond:  st.CommittedPerSecond,
			FailedPerSecond:   st.DroppedPerSecond,
		},
		LastError: st.LastError,
		StartTime: timestamppb.New(s.started),
	}
	if !st.LastErrorTime.IsZero() {
		out.LastErrorTime = timestamppb.New(st.LastErrorTime)
	}
	if !st.NewestDataTime.IsZero() {
		out.NewestDataAge = durationpb.New(time.Since(st.NewestDataTime))
	}
	detail := &pipelinev1.IngestStatus{Table: rawtable.Name, BufferedRows: int64(st.BatchRows)}
	if st.LastCommit.Version >= 0 {
		detail.LastCommitVersion = st.LastCommit.Version
		detail.LastCommitTime = timestamppb.New(st.LastCommit.Time)
	}
	for _, p := range st.Partitions {
		detail.Partitions = append(detail.Partitions, &pipelinev1.PartitionStatus{
			Topic:           p.Topic,
			Partition:       p.Partition,
			OffsetInTable:   p.OffsetInTable,
			EndOffset:       p.EndOffset,
			Lag:             p.Lag,
			RowsLastCommit:  int64(p.LastCommitRows),
			FilesLastCommit: int64(p.LastCommitFiles),
		})
	}
	out.Detail = &pipelinev1.Status_Ingest{Ingest: detail}
	return out
}

// stateOf maps the engine state; a recent error while running is DEGRADED.
func stateOf(st ingester.Status) pipelinev1.State {
	switch st.State {
	case ingester.StateStarting:
		return pipelinev1.State_STATE_STARTING
	case ingester.StatePaused:
		return pipelinev1.State_STATE_PAUSED
	case ingester.StateStopping, ingester.StateStopped:
		return pipelinev1.State_STATE_STOPPING
	}
	if !st.LastErrorTime.IsZero() && st.LastErrorTime.After(st.LastCommit.Time) {
		return pipelinev1.State_STATE_DEGRADED
	}
	return pipelinev1.State_STATE_RUNNING
}
