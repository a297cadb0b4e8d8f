package pipelineapi

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/services/bridge/internal/bridge"
)

func TestState(t *testing.T) {
	tests := []struct {
		name    string
		st      bridge.Status
		healthy bool
		want    pipelinev1.State
	}{
		{"fresh and not yet connected", bridge.Status{}, false, pipelinev1.State_STATE_STARTING},
		{"healthy", bridge.Status{Received: 5}, true, pipelinev1.State_STATE_RUNNING},
		{"lost a broker after working", bridge.Status{Received: 5, NewestDelivery: time.Now()}, false, pipelinev1.State_STATE_DEGRADED},
		{"paused wins over health", bridge.Status{Paused: true}, true, pipelinev1.State_STATE_PAUSED},
		{"stopping wins over all", bridge.Status{Paused: true, Stopping: true}, true, pipelinev1.State_STATE_STOPPING},
	}
	for _, tc := range tests {
		if got := state(tc.st, tc.healthy); got != tc.want {
			t.Errorf("%s: state = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestServerOverIdleBridge drives the API over a real bridge that has not
// been started: no broker is needed for pause, resume and status, and a
// flush must say the bridge is unavailable.
func TestServerOverIdleBridge(t *testing.T) {
	cfg := bridge.DefaultConfig()
	cfg.ClientID = "api-test"
	cfg.ShareGroup = "g"
	b, err := bridge.New(cfg, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(b, slog.New(slog.DiscardHandler))
	ctx := context.Background()

	st, err := s.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	bs := st.GetStatus().GetBridge()
	if st.GetStatus().GetService() != "bridge" || st.GetStatus().GetState() != pipelinev1.State_STATE_STARTING ||
		bs.GetClientId() != "api-test" || len(bs.GetSubscriptions()) != 1 || bs.GetSubscriptions()[0] != "$share/g/plant/#" {
		t.Errorf("status of an idle bridge: %v", st.GetStatus())
	}

	pr, err := s.Pause(ctx, &pipelinev1.PauseRequest{Reason: "test"})
	if err != nil || pr.GetStatus().GetState() != pipelinev1.State_STATE_PAUSED || !b.Status().Paused {
		t.Errorf("Pause: %v, %v", pr.GetStatus().GetState(), err)
	}
	if _, err := s.Pause(ctx, &pipelinev1.PauseRequest{}); err != nil {
		t.Errorf("second Pause: %v", err)
	}
	rr, err := s.Resume(ctx, &pipelinev1.ResumeRequest{})
	if err != nil || rr.GetStatus().GetState() == pipelinev1.State_STATE_PAUSED || b.Status().Paused {
		t.Errorf("Resume: %v, %v", rr.GetStatus().GetState(), err)
	}

	_, err = s.TriggerCommit(ctx, &pipelinev1.TriggerCommitRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("TriggerCommit on an idle bridge: %v, want Unavailable", err)
	}
}

func TestWatchHealth(t *testing.T) {
	cfg := bridge.DefaultConfig()
	cfg.ClientID = "health-test"
	b, err := bridge.New(cfg, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan bool, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchHealth(ctx, b, time.Millisecond, func(serving bool) {
			select {
			case calls <- serving:
			default:
			}
		})
	}()
	if serving := <-calls; serving {
		t.Error("an unconnected bridge reported SERVING")
	}
	cancel()
	<-done
}
