package devstack

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestCatalogKillRestartStop starts a catalog announcing on a real Kafka,
// pinned to CPU 0, creates a table, kills it, restarts it on the same
// address (the same client connection works again and the table is there),
// and stops it gracefully.
func TestCatalogKillRestartStop(t *testing.T) {
	k := Kafka(t)
	c := Catalog(t, CatalogConfig{Brokers: k.Brokers(), CPUs: "0", Args: []string{"--log-level", "debug"}})
	if got := cpusAllowed(t, c.Pid()); got != "0" {
		t.Errorf("Cpus_allowed_list = %q, want 0 (taskset)", got)
	}
	client := catalogv1.NewCatalogServiceClient(c.Conn(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.CreateTable(ctx, &catalogv1.CreateTableRequest{
		Name: "s.t", Columns: []*catalogv1.Column{{Name: "id", Type: "long"}},
	}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	addr, pid := c.Addr(), c.Pid()

	c.Kill()
	if c.Running() {
		t.Fatal("catalog runs after Kill")
	}
	if _, err := client.GetTable(ctx, &catalogv1.GetTableRequest{Name: "s.t"}); err == nil {
		t.Fatal("GetTable answered by a killed catalog")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if c.Addr() != addr || c.Pid() == pid {
		t.Errorf("after restart: addr %s pid %d, want addr %s and a new pid (was %d)", c.Addr(), c.Pid(), addr, pid)
	}
	resp, err := client.GetTable(ctx, &catalogv1.GetTableRequest{Name: "s.t"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("GetTable after restart: %v", err)
	}
	if !strings.HasPrefix(resp.GetTable().GetLocation(), "file://"+c.Warehouse()) {
		t.Errorf("location %s is not in the warehouse %s", resp.GetTable().GetLocation(), c.Warehouse())
	}

	if err := c.Stop(30 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c.MaxRSSKiB() <= 0 || c.CPUTime() <= 0 {
		t.Errorf("after exit: MaxRSSKiB %d, CPUTime %v; want both > 0", c.MaxRSSKiB(), c.CPUTime())
	}
	log, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "msg=serving"); n != 2 {
		t.Errorf("log has %d serving lines, want 2 (one per start, appended)", n)
	}
}

// TestCatalogBadFlagFails checks that a catalog that exits at once is an
// error carrying its log, not a hang.
func TestCatalogBadFlagFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := StartCatalog(ctx, CatalogConfig{Warehouse: t.TempDir() + "/w", Args: []string{"--max-group-commit", "0"}})
	if err == nil || !strings.Contains(err.Error(), "max-group-commit") {
		t.Fatalf("StartCatalog with a bad flag: %v, want an error naming the flag", err)
	}
}

func cpusAllowed(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
