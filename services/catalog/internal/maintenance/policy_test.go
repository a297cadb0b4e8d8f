package maintenance

import (
	"errors"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "interval 30 days", want: 30 * 24 * time.Hour},
		{in: "interval 1 week", want: 7 * 24 * time.Hour},
		{in: "INTERVAL 2 hours", want: 2 * time.Hour},
		{in: "7 days", want: 7 * 24 * time.Hour},
		{in: "interval 0 seconds", want: 0},
		{in: "36h", want: 36 * time.Hour},
		{in: "interval x days", wantErr: true},
		{in: "interval 3 fortnights", wantErr: true},
		{in: "soon", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseInterval(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseInterval(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestPolicyFrom(t *testing.T) {
	custom := DefaultPolicy()
	custom.CheckpointInterval = 3
	custom.CheckpointAdaptive = false
	custom.LogRetention = time.Hour
	custom.OptimizeMinFiles = 0
	custom.ExpiredLogCleanup = false
	tests := []struct {
		name    string
		props   map[string]string
		want    Policy
		wantErr error
	}{
		{name: "defaults", props: nil, want: DefaultPolicy()},
		{name: "custom", props: map[string]string{
			PropCheckpointInterval: "3", PropLogRetention: "interval 1 hour",
			PropOptimizeMinFiles: "0", PropExpiredLogCleanup: "false", "other": "x",
		}, want: custom},
		{name: "bad interval", props: map[string]string{PropCheckpointInterval: "0"}, want: DefaultPolicy(), wantErr: ErrBadProperty},
		{name: "bad duration", props: map[string]string{PropDeletedFileRetention: "a while"}, want: DefaultPolicy(), wantErr: ErrBadProperty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PolicyFrom(tc.props)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("PolicyFrom = %+v, %v; want %+v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestCheckpointDue(t *testing.T) {
	adaptive := DefaultPolicy()
	fixed, err := PolicyFrom(map[string]string{PropCheckpointInterval: "10"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                         string
		p                            Policy
		version, lastCP, lastActions int64
		want                         bool
	}{
		{"no checkpoint yet", adaptive, 10, -1, 0, true},
		{"small table: Delta's 10", adaptive, 19, 10, 500, false},
		{"small table: due at 10", adaptive, 20, 10, 500, true},
		{"50,000 actions: every 500", adaptive, 509, 10, 50_000, false},
		{"50,000 actions: due", adaptive, 510, 10, 50_000, true},
		{"capped", adaptive, 1010, 10, 10_000_000, true},
		{"capped: not yet", adaptive, 1009, 10, 10_000_000, false},
		{"the table's own interval is kept", fixed, 20, 10, 10_000_000, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.CheckpointDue(tc.version, tc.lastCP, tc.lastActions); got != tc.want {
				t.Fatalf("CheckpointDue(%d, %d, %d) = %v, want %v", tc.version, tc.lastCP, tc.lastActions, got, tc.want)
			}
		})
	}
}
