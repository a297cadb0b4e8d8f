package chaos

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

// TestScheduleIsSeeded checks that a schedule holds every fault asked for,
// inside the span's 5-90 %, sorted, and the same for the same seed.
func TestScheduleIsSeeded(t *testing.T) {
	cfg := ScheduleConfig{Seed: 7, Span: 100 * time.Second, Services: devstack.Services,
		KillsPerService: 5, KafkaRestarts: 2, MosquittoRestarts: 2}
	evs := NewSchedule(cfg)
	counts := map[string]int{}
	for i, ev := range evs {
		counts[ev.Target]++
		if ev.At < 5*time.Second || ev.At > 90*time.Second {
			t.Errorf("event %v outside 5s..90s", ev)
		}
		if i > 0 && ev.At < evs[i-1].At {
			t.Errorf("event %v before %v", ev, evs[i-1])
		}
	}
	for _, svc := range devstack.Services {
		if counts[svc] != 5 {
			t.Errorf("%s killed %d times, want 5", svc, counts[svc])
		}
	}
	if counts["kafka"] != 2 || counts["mosquitto"] != 2 {
		t.Errorf("broker restarts %v, want 2 each", counts)
	}
	again := NewSchedule(cfg)
	for i := range evs {
		if evs[i] != again[i] {
			t.Fatalf("event %d: %v, then %v with the same seed", i, evs[i], again[i])
		}
	}
	cfg.Seed = 8
	if other := NewSchedule(cfg); other[0] == evs[0] && other[1] == evs[1] {
		t.Errorf("seeds 7 and 8 gave the same schedule")
	}
}

// TestChaosShort is the short chaos run of make test: 30,000 readings (5 %
// duplicates, 1 % broken, some late and too late) while every service is
// killed with SIGKILL twice, Kafka stopped and started once and Mosquitto
// restarted with SIGTERM once; then raw, bronze, the dead letters and
// gold must match the ledger exactly.
func TestChaosShort(t *testing.T) {
	py := devstack.Python(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var logs strings.Builder
	res, err := Run(ctx, Config{
		Dir: dir, Count: 30000, Rate: 600, Seed: 14,
		Shares:          sim.Shares{Duplicate: 0.05, Broken: 0.01, Late: 0.01, TooLate: 0.002},
		KillsPerService: 2, KafkaRestarts: 1, MosquittoRestarts: 1,
		StableFor: 5 * time.Second, DrainTimeout: 5 * time.Minute, Python: py,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	var report strings.Builder
	WriteReport(&report, res)
	t.Logf("chaos run:\n%s", report.String())
	if err != nil || len(res.Differences()) > 0 {
		t.Logf("run log:\n%s", logs.String())
		for _, name := range devstack.Services {
			if b, rerr := os.ReadFile(dir + "/logs/" + name + ".log"); rerr == nil {
				t.Logf("%s log tail:\n%s", name, tailLines(string(b), 40))
			}
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Differences(); len(d) > 0 {
		t.Fatalf("the chaos run lost or doubled readings:\n%s", strings.Join(d, "\n"))
	}
	for _, target := range append([]string{"kafka", "mosquitto"}, devstack.Services...) {
		want := 2
		if target == "kafka" || target == "mosquitto" {
			want = 1
		}
		if res.Faults[target] != want {
			t.Errorf("%s: %d faults, want %d", target, res.Faults[target], want)
		}
	}
	if res.Published.ByKind[sim.KindDuplicate] == 0 || res.Published.ByKind[sim.KindBroken] == 0 {
		t.Errorf("published %v: no duplicates or no broken readings", res.Published.ByKind)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
