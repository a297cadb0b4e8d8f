package pipeline

import (
	"testing"
	"time"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Name: "ingest", BatchMaxRows: 1, BatchMaxBytes: 1, BatchMaxAge: time.Second}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr bool
	}{
		{"valid", func(*Config) {}, false},
		{"no name", func(c *Config) { c.Name = "" }, true},
		{"zero rows", func(c *Config) { c.BatchMaxRows = 0 }, true},
		{"zero bytes", func(c *Config) { c.BatchMaxBytes = 0 }, true},
		{"age 15m", func(c *Config) { c.BatchMaxAge = 15 * time.Minute }, false},
		{"age over 15m", func(c *Config) { c.BatchMaxAge = 15*time.Minute + 1 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestRateWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var w rateWindow
	steps := []struct {
		at                        time.Duration
		received, rows, dropped   int64
		wantRecv, wantRows, wantD float64
	}{
		{0, 0, 0, 0, 0, 0, 0},
		{10 * time.Second, 1000, 500, 10, 100, 50, 1},
		{30 * time.Second, 3000, 2500, 10, 100, 2500.0 / 30, 10.0 / 30},
		// Samples older than a minute leave the window: the rate is since the 30s one.
		{80 * time.Second, 9000, 7500, 10, 6000.0 / 50, 5000.0 / 50, 0},
	}
	for _, st := range steps {
		r, c, d := w.update(t0.Add(st.at), totals{received: st.received, rows: st.rows, rowsDropped: st.dropped})
		if r != st.wantRecv || c != st.wantRows || d != st.wantD {
			t.Errorf("at %s: rates %.2f %.2f %.2f, want %.2f %.2f %.2f", st.at, r, c, d, st.wantRecv, st.wantRows, st.wantD)
		}
	}
}

func TestProtoState(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		st   Status
		want pipelinev1.State
	}{
		{"starting", Status{State: StateStarting}, pipelinev1.State_STATE_STARTING},
		{"running", Status{State: StateRunning}, pipelinev1.State_STATE_RUNNING},
		{"paused", Status{State: StatePaused}, pipelinev1.State_STATE_PAUSED},
		{"stopping", Status{State: StateStopping}, pipelinev1.State_STATE_STOPPING},
		{"error since the last commit", Status{State: StateRunning, LastErrorTime: now,
			LastCommit: CommitInfo{Time: now.Add(-time.Second)}}, pipelinev1.State_STATE_DEGRADED},
		{"committed since the last error", Status{State: StateRunning, LastErrorTime: now.Add(-time.Second),
			LastCommit: CommitInfo{Time: now}}, pipelinev1.State_STATE_RUNNING},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.st.protoState(); got != tc.want {
				t.Errorf("protoState = %v, want %v", got, tc.want)
			}
		})
	}
}
