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
