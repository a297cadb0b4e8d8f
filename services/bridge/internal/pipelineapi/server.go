// Package pipelineapi serves the bridge's plantlake.pipeline.v1
// PipelineService through the service kit's one adapter
// (servicekit/pipelinesvc): the bridge's controls, and its status in the
// protocol's messages.
package pipelineapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"
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

// controller is the bridge as servicekit/pipelinesvc drives it.
type controller struct{ engine Engine }

// NewServer returns the PipelineService of engine: the service kit's one
// adapter, over the bridge's controls and status.
func NewServer(engine Engine, log *slog.Logger) *pipelinesvc.Server {
	return pipelinesvc.New(controller{engine}, log)
}

// Status reports the bridge's state and counters.
func (c controller) Status() *pipelinev1.Status { return statusOf(c.engine) }

// Pause stops the bridge taking readings; Mosquitto keeps them meanwhile.
func (c controller) Pause(context.Context) error {
	c.engine.Pause()
	return nil
}

// Resume undoes Pause.
func (c controller) Resume(context.Context) error {
	c.engine.Resume()
	return nil
}

// TriggerCommit flushes the Kafka producer (ignoring linger.ms) and returns
// once librdkafka holds nothing unsent, or fails with DeadlineExceeded.
func (c controller) TriggerCommit(ctx context.Context) (pipelinesvc.Committed, error) {
	before := c.engine.Status().Produced
	remaining, err := c.engine.Flush(ctx)
	switch {
	case errors.Is(err, bridge.ErrNotRunning):
		return pipelinesvc.Committed{}, fmt.Errorf("the bridge: %w", pipelinesvc.ErrNotRunning)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return pipelinesvc.Committed{}, fmt.Errorf("flush: %d records still unsent when the call ended: %w", remaining, context.DeadlineExceeded)
	case err != nil:
		return pipelinesvc.Committed{}, fmt.Errorf("flush: %w", err)
	}
	return pipelinesvc.Committed{Rows: int64(c.engine.Status().Produced - before)}, nil
}

func statusOf(engine Engine) *pipelinev1.Status {
	st := engine.Status()
	out := &pipelinev1.Status{
		Service:  ServiceName,
		State:    state(st, engine.Healthy()),
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

// WatchHealth keeps the gRPC health service NOT_SERVING while MQTT or
// Kafka is down (see pipelinesvc.WatchHealth), until ctx ends.
func WatchHealth(ctx context.Context, engine Engine, interval time.Duration, set func(serving bool)) {
	pipelinesvc.WatchHealth(ctx, interval, engine.Healthy, set)
}
