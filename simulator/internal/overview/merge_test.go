package overview

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

// TestOverviewRealMerge asks a real merge process, built from this tree and
// pointed at a real catalog (Kafka unreachable: merge then polls), for its
// status, and sees the gold table merge creates.
func TestOverviewRealMerge(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "merge")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/plantlake/plantlake/services/merge/cmd/merge").CombinedOutput(); err != nil {
		t.Fatalf("go build merge: %v\n%s", err, out)
	}
	cat := devstack.Catalog(t, devstack.CatalogConfig{})
	mergeAddr := closedAddr(t)
	logPath := filepath.Join(dir, "merge.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--grpc-addr", mergeAddr, "--metrics-addr", "", "--catalog-addr", cat.Addr(),
		"--kafka-brokers", closedAddr(t), "--poll-interval", "200ms")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("merge log:\n%s", b)
		}
	})

	hops := []Hop{{Name: "merge", Addr: mergeAddr, Conn: dial(t, mergeAddr)}}
	var rep Report
	var out bytes.Buffer
	deadline := time.Now().Add(time.Minute)
	for {
		rep = Collect(ctx, hops, cat.Conn(t), cat.Addr(), 3*time.Second)
		out.Reset()
		if err := rep.Write(&out); err != nil {
			t.Fatal(err)
		}
		if rep.Hops[0].Err == nil && rep.Freshness.Exists || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("\n%s", out.String())
	h := rep.Hops[0]
	if h.Err != nil || h.Status.GetService() != "merge" {
		t.Fatalf("merge: %v, status %v", h.Err, h.Status)
	}
	if !rep.Freshness.Exists || rep.Freshness.Err != nil || rep.Freshness.Rows != 0 {
		t.Fatalf("gold after merge started: %+v", rep.Freshness)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[1], "merge") || !strings.Contains(lines[1], mergeAddr) || !strings.Contains(lines[1], stateName(h.Status.GetState())) ||
		!strings.Contains(out.String(), "0 rows") || !strings.Contains(out.String(), "no rows with bridge_ts yet") {
		t.Errorf("unexpected overview:\n%s", out.String())
	}
}
