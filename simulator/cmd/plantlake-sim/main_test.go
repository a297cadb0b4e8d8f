package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

func TestHelp(t *testing.T) {
	tests := map[string]struct {
		args []string
		want []string
	}{
		"publish": {[]string{"--help"}, []string{"-rate", "-duplicate-share", "-broken-share", "-ledger", "-seed", "PLANTLAKE_MQTT_BROKER", "plant/<line>/<device>/<measurement>"}},
		"chaos":   {[]string{"chaos", "--help"}, []string{"-count", "-kills", "-kafka-restarts", "-mosquitto-restarts", "-seed", "-dir", "SIGKILL", "exits with status 1"}},
		"status":  {[]string{"status", "--help"}, []string{"-catalog-addr", "-merge-addr", "-auth-token", "-tls-ca", "DOWN", "/metrics"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("run(%q) = %v, want flag.ErrHelp", tc.args, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("--help lacks %q", w)
				}
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	tests := map[string][]string{
		"qos":         {"--qos", "3"},
		"measurement": {"--measurements", "temperature,colour"},
		"shares":      {"--broken-share", "0.7", "--duplicate-share", "0.7"},
		"start":       {"--start", "yesterday"},
		"skew":        {"--clock-skew", "2h"},
		"argument":    {"extra"},
		"chaos count": {"chaos", "--count", "0"},
		"chaos kills": {"chaos", "--kills", "-1"},
		"chaos share": {"chaos", "--broken-share", "1.5"},
		"chaos arg":   {"chaos", "extra"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), args, &stdout, &stderr); err == nil {
				t.Fatalf("run(%q) accepted", args)
			}
		})
	}
}

// TestStatusAllDown: nothing listens, and the command still prints a line
// per hop and gold's; --strict turns that into an error.
func TestStatusAllDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	args := []string{"status", "--timeout", "2s", "--catalog-addr", addr, "--bridge-addr", addr,
		"--ingest-addr", addr, "--deserialize-addr", addr, "--merge-addr", addr}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("status: %v", err)
	}
	out := stdout.String()
	if n := strings.Count(out, "  DOWN  "); n != 4 || !strings.Contains(out, "gold: catalog "+addr+" DOWN") {
		t.Errorf("want 4 hops and the catalog DOWN:\n%s", out)
	}
	if err := run(context.Background(), append(args, "--strict"), &stdout, &stderr); err == nil {
		t.Error("--strict with every service down: no error")
	}
}

// TestPublishWritesLedger runs the command against a real Mosquitto.
func TestPublishWritesLedger(t *testing.T) {
	broker := devstack.Mosquitto(t)
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	args := []string{"--mqtt-broker", broker.URL(), "--count", "60", "--rate", "200", "--lines", "1",
		"--devices-per-line", "2", "--measurements", "temperature,speed", "--broken-share", "0.3",
		"--seed", "9", "--start", "2026-12-01T00:00:00Z", "--ledger", path, "--progress", "0"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := sim.ReadLedger(f)
	if err != nil {
		t.Fatal(err)
	}
	broken := 0
	for _, e := range entries {
		if !e.Acked || !strings.HasPrefix(e.Topic, "plant/line1/") {
			t.Errorf("entry %+v", e)
		}
		if e.Kind == sim.KindBroken {
			broken++
		}
	}
	if len(entries) != 60 || broken == 0 || broken == 60 {
		t.Errorf("%d entries, %d broken; want 60 with some broken", len(entries), broken)
	}
	if !strings.Contains(stderr.String(), "published=60") {
		t.Errorf("no summary in the log:\n%s", stderr.String())
	}
}
