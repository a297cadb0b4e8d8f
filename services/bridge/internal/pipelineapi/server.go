// Package pipelineapi serves the bridge's plantlake.pipeline.v1
// PipelineService: thin adapters that call the bridge and translate its
// status into the protocol's messages.
package pipelineapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/services/bridge/internal/bridge"
)

// ServiceName is the name the bridge reports in Status.service.
const ServiceName = "bridge"

// Engine is what the API needs from the bridge; *bridge.Bridge implements
// it. Pause and Resume are idempotent; Flush returns how many records were
// still unsent when ctx ended.
type Engine interface {
	Status() bridge.Status
	Healthy() bool
	Pause()
	Resume()
	Flush(ctx context.Context) (int, error)
}

// Server implements pipelinev1.PipelineServiceServer over an Engine.
type Server struct {
	pipelinev1.UnimplementedPipelineServiceServer
	engine Engine
	log    *slog.Logger
}

// NewServer returns the API for engine.
func NewServer(engine Engine, log *slog.Logger) *Server {
	return &Server{engine: engine, log: log}
}

// GetStatus reports the bridge's state and counters.
func (s *Server) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: s.status()}, nil
}

// Pause stops the bridge taking readings; Mosquitto keeps them meanwhile.
func (s *Server) Pause(_ context.Context, req *pipelinev1.PauseRequest) (*pipelinev1.PauseResponse, error) {
	s.log.Info("pause requested", "reason", req.GetReason())
	s.engine.Pause()
	return &pipelinev1.PauseResponse{Status: s.status()}, nil
}

// Resume undoes Pause.
func (s *Server) Resume(context.Context, *pipelinev1.ResumeRequest) (*pipelinev1.ResumeResponse, error) {
	s.log.Info("resume requested")
	s.engine.Resume()
	return &pipelinev1.ResumeResponse{Status: s.status()}, nil
}

// TriggerCommit flushes the Kafka producer (ignoring linger.ms) and returns
// once librdkafka holds nothing unsent, or fails with DeadlineExceeded.
func (s *Server) TriggerCommit(ctx context.Context, _ *pipelinev1.TriggerCommitRequest) (*pipelinev1.TriggerCommitResponse, error) {
	before := s.engine.Status().Produced
	remaining, err := s.engine.Flush(ctx)
	switch {
	case errors.Is(err, bridge.ErrNotRunning):
		return nil, status.Error(codes.Unavailable, "the bridge is not running")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, status.Errorf(codes.DeadlineExceeded, "flush: %d records still unsent when the call ended", remaining)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "flush: %v", err)
	}
	rows := int64(s.engine.Status().Produced - before)
	return &pipelinev1.TriggerCommitResponse{Committed: rows > 0, Rows: rows}, nil
}

func (s *Server) status() *pipelinev1.Status {
	st := s.engine.Status()
	out := &pipelinev1.Status{
		Service:  ServiceName,
		State:    state(st, s.engine.Healthy()),
		Position: fmt.Sprintf("acked %d of %d received", st.Acked, st.Received),
		Lag:      int64(st.InFlight + st.Queued),
		Counts: &pipelinev1.Counts{
			Received: int64(st.Received),
			Written:  int64(st.Produced),
			Failed:   int64(st.Failed),
			Commits:  int64(st.Flushes),
		},
		Rates: &pipelinev1.Rates{
			ReceivedPerSecond: st.Rates.Received,
			WrittenPerSecond:  st.Rates.Produced,
			FailedPerSecond:   st.Rates.Failed,
		},
		LastError: st.LastError,
		StartTime: timestamppb.New(st.StartedAt),
		Detail: &pipelinev1.Status_Bridge{Bridge: &pipelinev1.BridgeStatus{
			Connected:         st.MQTTConnected,
			Subscriptions:     st.Subscriptions,
			InFlight:          int64(st.InFlight),
			Received:          int64(st.Received),
			Produced:          int64(st.Produced),
			Acked:             int64(st.Acked),
			Failed:            int64(st.Failed),
			Oversized:         int64(st.Oversized),
			ReceivedPerSecond: st.Rates.Received,
			AckedPerSecond:    st.Rates.Acked,
			ClientId:          st.ClientID,
			Reconnects:        int64(st.Reconnects),
		}},
	}
	if !st.LastErrorAt.IsZero() {
		out.LastErrorTime = timestamppb.New(st.LastErrorAt)
	}
	if !st.NewestDelivery.IsZero() {
		out.NewestDataAge = durationpb.New(time.Since(st.NewestDelivery))
	}
	return out
}

// state derives the life-cycle state: starting until first healthy,
// degraded while MQTT or Kafka is away afterwards.
func state(st bridge.Status, healthy bool) pipelinev1.State {
	switch {
	case st.Stopping:
		return pipelinev1.State_STATE_STOPPING
	case st.Paused:
		return pipelinev1.State_STATE_PAUSED
	case healthy:
		return pipelinev1.State_STATE_RUNNING
	case st.Received == 0 && st.NewestDelivery.IsZero():
		return pipelinev1.State_STATE_STARTING
	default:
		return pipelinev1.State_STATE_DEGRADED
	}
}

// WatchHealth calls set with the engine's health every interval (and at
// once) until ctx ends, so the gRPC health service says NOT_SERVING while
// MQTT or Kafka is down.
func WatchHealth(ctx context.Context, engine Engine, interval time.Duration, set func(serving bool)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return // the service kit has turned health off for the shutdown
		}
		set(engine.Healthy())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
