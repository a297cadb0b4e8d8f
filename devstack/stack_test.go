package devstack_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

// TestStackCarriesReadingsThroughKills runs the whole stack as processes,
// publishes readings (a QoS 1 style duplicate and a broken payload among
// them), kills every service with SIGKILL and restarts it, publishes more,
// and reads gold and the dead letters back with delta-rs: each reading once
// in gold, each broken payload once in the dead letters. The hops commit
// through the catalog's Unix socket, which the restarted catalog takes over
// from the killed one.
func TestStackCarriesReadingsThroughKills(t *testing.T) {
	s := devstack.NewStack(t, devstack.StackConfig{})
	if s.Service("bridge") == nil || s.Catalog == nil {
		t.Fatal("stack started without the bridge or the catalog")
	}
	if sock := s.Catalog.UnixSocket(); sock == "" || s.Catalog.Target() != "unix://"+sock {
		t.Fatalf("the hops dial the catalog at %s, not through its socket %q", s.Catalog.Target(), sock)
	}
	py := devstack.Python(t)
	base := time.Now().Unix() - 100

	publish := func(round, n int) {
		t.Helper()
		var lines []string
		for i := range n {
			ts := base + int64(round*n+i)
			lines = append(lines, fmt.Sprintf(`{"sensor_id":"press%02d","measurement":"temperature","value":%d.5,"unit":"C","ts":%d}`, round, i, ts))
		}
		lines = append(lines, lines[0], fmt.Sprintf(`{"sensor_id":"press%02d","measurement":"temperature","value":"hot"`, round))
		cmd := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", portOf(s.Mosquitto.Addr()), "-q", "1",
			"-i", fmt.Sprintf("stack-test-%d", round), "-t", fmt.Sprintf("plant/line1/press%02d/temperature", round), "-l")
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
	}
	counts := func() string {
		script := `
import sys, deltalake
w = sys.argv[1]
def n(p):
    try:
        return deltalake.DeltaTable(w + "/" + p).to_pyarrow_table().num_rows
    except Exception:
        return -1
g = deltalake.DeltaTable(w + "/gold/plant_sensor_readings").to_pyarrow_table(columns=["sensor_id", "ts"]) if n("gold/plant_sensor_readings") >= 0 else None
keys = len(set(zip(g.column("sensor_id").to_pylist(), g.column("ts").to_pylist()))) if g is not None else -1
print(n("gold/plant_sensor_readings"), keys, n("bronze/plant_sensor_dead_letters"))
`
		out, err := exec.Command(py, "-c", script, s.Warehouse()).CombinedOutput()
		if err != nil {
			t.Fatalf("delta-rs: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			if got = counts(); got == want {
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("gold rows, gold keys, dead letters = %q, want %q", got, want)
	}

	const n = 10
	publish(0, n)
	waitFor(fmt.Sprintf("%d %d 1", n, n))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, name := range devstack.Services {
		p := s.Service(name)
		pid := p.Pid()
		p.Kill()
		if err := p.Restart(ctx); err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
		if p.Pid() == pid {
			t.Fatalf("%s: same pid %d after restart", name, pid)
		}
	}
	// The killed catalog left its socket behind; the restarted one replaced it.
	if fi, err := os.Lstat(s.Catalog.UnixSocket()); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("the catalog's socket after its restart: %v, %v", fi, err)
	}
	publish(1, n)
	waitFor(fmt.Sprintf("%d %d 2", 2*n, 2*n))
	if logs, err := filepath.Glob(filepath.Join(s.Dir(), "logs", "*.log")); err != nil || len(logs) != len(devstack.Services) {
		t.Errorf("service logs %v (%v), want one per service", logs, err)
	}
}

// portOf returns the port of "host:port".
func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
