package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// catalogBinary builds cmd/catalog once per test run.
func catalogBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "catalog-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "catalog")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/plantlake/plantlake/services/catalog/cmd/catalog").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procCatalog is the catalog binary running as a subprocess.
type procCatalog struct {
	addr   string
	cmd    *exec.Cmd
	client catalogv1.CatalogServiceClient
	close  func()
}

func startProc(t *testing.T, warehouse, topic string, extra ...string) *procCatalog {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"--warehouse", warehouse, "--grpc-addr", addr, "--metrics-addr", "",
		"--kafka-brokers", kafkaBrokers, "--commit-topic", topic, "--kafka-partitions", "2", "--log-level", "warn"}, extra...)
	cmd := exec.Command(catalogBinary(t), args...)
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, addr, "")
	p := &procCatalog{addr: addr, cmd: cmd, client: catalogv1.NewCatalogServiceClient(conn)}
	p.close = func() {
		conn.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(p.close)
	waitServing(t, conn)
	return p
}

// kill9 kills the subprocess without warning.
func (p *procCatalog) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// diskSnapshot reads a table's latest snapshot straight from the log.
func diskSnapshot(t *testing.T, warehouse, table string) (int64, []string, map[string]int64) {
	t.Helper()
	store, err := storage.NewLocal(tableDir(warehouse, table))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := delta.Open(store).Snapshot(context.Background())
	if err != nil {
		t.Fatalf("read %s from disk: %v", table, err)
	}
	var paths []string
	for _, f := range snap.Files() {
		paths = append(paths, delta.EncodePath(f.Path))
	}
	sort.Strings(paths)
	txns := map[string]int64{}
	for _, x := range snap.Txns() {
		txns[x.AppID] = x.Version
	}
	return snap.Version(), paths, txns
}

// TestKill9 kills the catalog binary with SIGKILL while clients commit and
// while checkpoints run (checkpoint interval 2, maintenance on), restarts
// it, and checks that every acknowledged commit is there, the versions are
// contiguous, the restarted catalog reads the table as the log on disk says,
// and it announces the latest version after the restart.
func TestKill9(t *testing.T) {
	wh := t.TempDir()
	topic := "table-commits-kill9"
	const table = "raw.crash"
	p := startProc(t, wh, topic, "--maintenance-interval", "100ms")
	createTable(t, p.client, table, map[string]string{"delta.checkpointInterval": "2", "plantlake.autoOptimize.minFiles": "0"})

	type ack struct {
		path    string
		app     string
		seq     int64
		version int64
	}
	var acked []ack
	for round := range 3 {
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for cl := range 4 {
			wg.Go(func() {
				app := fmt.Sprintf("writer-%d", cl)
				for i := 0; ctx.Err() == nil; i++ {
					seq := int64(round*100000 + i)
					rel := fmt.Sprintf("day=2024-01-0%d/r%d-c%d-%05d.parquet", 1+cl%2, round, cl, i)
					add := putFile(t, wh, table, rel, 100+i%50)
					req := &catalogv1.CommitRequest{Table: table, BlindAppend: true, Adds: []*catalogv1.AddFile{add},
						Txns: []*catalogv1.Txn{{AppId: app, Version: seq}}}
					tv, err := p.client.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: table, AppId: app})
					if err != nil {
						return
					}
					req.ReadVersion = tv.GetTableVersion()
					resp, err := p.client.Commit(ctx, req)
					if err != nil {
						if ctx.Err() == nil && code(err) != 14 /* Unavailable: killed */ && code(err) != 1 {
							t.Errorf("commit: %v", err)
						}
						return
					}
					mu.Lock()
					acked = append(acked, ack{rel, app, seq, resp.GetVersion()})
					mu.Unlock()
				}
			})
		}
		// Explicit checkpoints back to back, besides the automatic ones, so
		// that the kill likely lands in one.
		var cpInFlight atomic.Bool
		wg.Go(func() {
			for ctx.Err() == nil {
				cpInFlight.Store(true)
				_, err := p.client.Checkpoint(ctx, &catalogv1.CheckpointRequest{Table: table, CleanupLog: true})
				cpInFlight.Store(false)
				if err != nil {
					return
				}
			}
		})
		time.Sleep(time.Duration(700+round*300) * time.Millisecond)
		killedInCheckpoint := cpInFlight.Load()
		p.kill9(t)
		cancel()
		wg.Wait()
		t.Logf("round %d: killed with a Checkpoint call in flight: %v", round, killedInCheckpoint)

		// The log on disk is the truth: read it before restarting.
		v, paths, txns := diskSnapshot(t, wh, table)
		have := map[string]bool{}
		for _, pth := range paths {
			have[pth] = true
		}
		for _, a := range acked {
			if !have[a.path] {
				t.Fatalf("round %d: acknowledged commit of %s (version %d) lost", round, a.path, a.version)
			}
			if a.version > v {
				t.Fatalf("round %d: acknowledged version %d beyond the log's latest %d", round, a.version, v)
			}
			if txns[a.app] < a.seq {
				t.Fatalf("round %d: txn %s at %d, acknowledged %d", round, a.app, txns[a.app], a.seq)
			}
		}

		p = startProc(t, wh, topic, "--maintenance-interval", "100ms")
		snap, err := p.client.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table, OmitStats: true})
		if err != nil {
			t.Fatal(err)
		}
		if snap.GetVersion() != v || fmt.Sprint(sortedPaths(snap.GetFiles())) != fmt.Sprint(paths) {
			t.Fatalf("round %d: restarted catalog reads version %d with %d files; the log says %d with %d", round, snap.GetVersion(), len(snap.GetFiles()), v, len(paths))
		}
		hist, err := p.client.History(ctxT(t), &catalogv1.HistoryRequest{Table: table, Limit: 5})
		if err != nil || len(hist.GetEntries()) == 0 || hist.GetEntries()[0].GetVersion() != v {
			t.Fatalf("round %d: history %v, %v", round, hist, err)
		}
		t.Logf("round %d: %d acknowledged commits, table at version %d with %d files", round, len(acked), v, len(paths))
		// The restarted catalog announces the latest version.
		evs := consumeEvents(t, topic, 60*time.Second, func(evs []*catalogv1.TableCommitEvent) bool {
			for _, ev := range evs {
				if ev.GetTable() == table && ev.GetVersion() == v {
					return true
				}
			}
			return false
		})
		found := false
		for _, ev := range evs {
			found = found || ev.GetTable() == table && ev.GetVersion() == v
		}
		if !found {
			t.Fatalf("round %d: no event announcing version %d after the restart", round, v)
		}
	}
	// Checkpoints were written along the way and the table still reads.
	entries, err := os.ReadDir(filepath.Join(tableDir(wh, table), "_delta_log"))
	if err != nil {
		t.Fatal(err)
	}
	cps := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".parquet" {
			cps++
		}
	}
	if cps == 0 {
		t.Fatalf("no checkpoint written")
	}
	if len(acked) < 20 {
		t.Fatalf("only %d commits acknowledged; the test did not exercise the crash", len(acked))
	}
}
