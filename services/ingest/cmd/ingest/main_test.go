package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
	"github.com/plantlake/plantlake/services/ingest/internal/stack"
)

// The binaries under test, built once by TestMain.
var catalogBin, ingestBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "ingest-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	catalogBin, ingestBin, err = stack.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's Kafka, catalog and warehouse.
type env struct {
	t       *testing.T
	dir     string
	kafka   *devstack.KafkaBroker
	catalog *devstack.CatalogProcess
	client  catalogv1.CatalogServiceClient
	n       int // processes started, for log names
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvSocket(t, "")
}

// newEnvSocket is newEnv with the catalog also serving a Unix socket at
// socket ("": TCP only).
func newEnvSocket(t *testing.T, socket string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.kafka = devstack.Kafka(t)
	e.kafka.CreateTopic(t, stack.TopicRaw, 6)
	e.kafka.CreateTopic(t, stack.TopicOversized, 2)
	cat, err := devstack.StartCatalog(context.Background(), devstack.CatalogConfig{Bin: catalogBin,
		Warehouse: filepath.Join(e.dir, "warehouse"), Brokers: e.kafka.Brokers(), LogPath: filepath.Join(e.dir, "catalog.log"),
		UnixSocket: socket})
	if err != nil {
		t.Fatalf("start catalog: %v", err)
	}
	e.catalog = cat
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("catalog log tail:\n%s", cat.LogTail(20))
		}
		cat.Kill()
	})
	e.client = catalogv1.NewCatalogServiceClient(dial(t, cat.Addr()))
	return e
}

// ingest starts an ingest process with test-friendly settings plus extra flags.
func (e *env) ingest(extra ...string) *stack.Process {
	e.t.Helper()
	return e.start(extra...)
}

// ingestServing starts an ingest process and returns it with its gRPC and
// metrics addresses (ports chosen by the process).
func (e *env) ingestServing(extra ...string) (p *stack.Process, grpcAddr, metricsAddr string) {
	e.t.Helper()
	p = e.start(extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	grpcAddr, metricsAddr, err := stack.ServingAddrs(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	return p, grpcAddr, metricsAddr
}

// pipelineServing starts an ingest process like ingestServing, waits until
// its gRPC server answers, and returns a PipelineService client for it.
func (e *env) pipelineServing(extra ...string) (p *stack.Process, api pipelinev1.PipelineServiceClient, metricsAddr string) {
	e.t.Helper()
	p, addr, metricsAddr := e.ingestServing(extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := stack.WaitServing(ctx, p, addr); err != nil {
		e.t.Fatal(err)
	}
	return p, pipelinev1.NewPipelineServiceClient(dial(e.t, addr)), metricsAddr
}

// dial connects to a gRPC server of the test; the connection is closed at
// the end of the test.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// start starts an ingest process with test-friendly settings plus extra
// flags, listening on ports it picks itself.
func (e *env) start(extra ...string) *stack.Process {
	e.t.Helper()
	return e.startOn("", nil, extra...)
}

// startOn is start with the process pinned to cpus (taskset -c; "" for
// no pinning) and envs added to its environment.
func (e *env) startOn(cpus string, envs []string, extra ...string) *stack.Process {
	e.t.Helper()
	e.n++
	args := []string{
		"--kafka-brokers", e.kafka.Brokers(),
		"--catalog-addr", e.catalog.Addr(),
		"--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0",
		"--batch-max-age", "200ms",
		"--log-level", "debug",
		"--kafka-config", "session.timeout.ms=6000",
	}
	p, err := stack.Start(stack.Spec{
		Name: fmt.Sprintf("ingest-%d", e.n), Bin: ingestBin, Args: append(args, extra...),
		LogPath: filepath.Join(e.dir, fmt.Sprintf("ingest-%d.log", e.n)),
		CPUs:    cpus, Env: envs,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
		if e.t.Failed() {
			e.t.Logf("%s log tail:\n%s", p.Name, p.LogTail(15))
		}
	})
	return p
}

// location asks the catalog where the raw table is.
func (e *env) location() string {
	e.t.Helper()
	resp, err := e.client.GetTable(context.Background(), &catalogv1.GetTableRequest{Name: rawtable.Name})
	if err != nil {
		e.t.Fatalf("GetTable: %v", err)
	}
	return resp.GetTable().GetLocation()
}

// waitIngested waits until the table's txn offsets reach the last
// produced offset of every partition.
func (e *env) waitIngested(produced map[stack.Pos]int, timeout time.Duration) {
	e.t.Helper()
	last := map[string]int64{}
	for p := range produced {
		id := rawtable.AppID(p.Topic, p.Partition)
		last[id] = max(last[id], p.Offset)
	}
	deadline := time.Now().Add(timeout)
	for {
		behind := ""
		for id, off := range last {
			resp, err := e.client.GetTransactionVersion(context.Background(),
				&catalogv1.GetTransactionVersionRequest{Table: rawtable.Name, AppId: id})
			if err != nil || !resp.GetFound() || resp.GetVersion() < off {
				behind = fmt.Sprintf("%s at %d (err %v), want %d", id, resp.GetVersion(), err, off)
				break
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not ingested within %s: %s", timeout, behind)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// check reads the table back and compares it with what was produced.
func (e *env) check(produced map[stack.Pos]int) []stack.Row {
	e.t.Helper()
	rows, version, err := stack.ReadRaw(context.Background(), e.location())
	if err != nil {
		e.t.Fatalf("read raw table: %v", err)
	}
	if err := stack.Check(rows, produced); err != nil {
		e.t.Fatalf("raw table at version %d: %v", version, err)
	}
	e.t.Logf("raw table version %d holds each of the %d records exactly once", version, len(rows))
	return rows
}

// waitLog waits until p's log has a line containing s.
func waitLog(t *testing.T, p *stack.Process, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f, err := os.Open(p.LogPath); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if strings.Contains(sc.Text(), s) {
					f.Close()
					return
				}
			}
			f.Close()
		}
		select {
		case <-p.Done():
			t.Fatalf("%s exited before logging %q: %v\n%s", p.Name, s, p.Wait(), p.LogTail(20))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not log %q within %s", p.Name, s, timeout)
}

func copyPositions(m map[stack.Pos]int) map[stack.Pos]int {
	out := make(map[stack.Pos]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestCommitsThroughCatalogSocket: ingest given the catalog's Unix socket
// as --catalog-addr (and no TCP address) commits its batches through it.
func TestCommitsThroughCatalogSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "catalog.sock")
	e := newEnvSocket(t, sock)
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Produce(context.Background(), 0, 5_000, 0); err != nil {
		t.Fatal(err)
	}
	// The later --catalog-addr wins over start's TCP one.
	p := e.ingest("--run-once", "--batch-max-rows", "1000", "--catalog-addr", e.catalog.Target())
	if want := "unix://" + sock; e.catalog.Target() != want {
		t.Fatalf("catalog target %s, want %s", e.catalog.Target(), want)
	}
	waitRunOnce(t, p)
	e.check(pr.Positions)
}

// TestRunOnceAndDeltaRS: --run-once ingests exactly the records present
// when it started and exits 0; delta-rs reads the same rows.
func TestRunOnceAndDeltaRS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pr, err := stack.NewProducer(e.kafka.Brokers())
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Produce(ctx, 0, 20_000, 0); err != nil {
		t.Fatal(err)
	}
	before := copyPositions(pr.Positions)

	p := e.ingest("--run-once", "--batch-max-rows", "3000")
	waitLog(t, p, "run-once: end offsets at start", 60*time.Second)
	// Records produced after the start are not this run's.
	if err := pr.Produce(ctx, 20_000, 25_000, 0); err != nil {
		t.Fatal(err)
	}
	waitRunOnce(t, p)
	rows := e.check(before)

	// delta-rs agrees row by row.
	python := devstack.Python(t)
	script := filepath.Join(e.dir, "canon.py")
	if err := os.WriteFile(script, []byte(stack.CanonicalPython), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, strings.TrimPrefix(e.location(), "file://")).Output()
	if err != nil {
		t.Fatalf("delta-rs read: %v", err)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	want := make([]string, len(rows))
	for i, r := range rows {
		want[i] = r.Canon
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("delta-rs read %d rows, delta/reader %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d differs:\ndelta-rs     %s\ndelta/reader %s", i, got[i], want[i])
		}
	}
}

// waitRunOnce waits for a --run-once ingest to exit cleanly, at most 90 s.
func waitRunOnce(t *testing.T, p *stack.Process) {
	t.Helper()
	select {
	case <-p.Done():
		if err := p.Wait(); err != nil {
			t.Fatalf("run-once exited with %v\n%s", err, p.LogTail(20))
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("run-once still running after 90s\n%s", p.LogTail(20))
	}
}
