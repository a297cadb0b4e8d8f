package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// mergeBin is the binary under test, built once by TestMain.
var mergeBin string

// kafka is the broker the tests share: the catalogs announce commits on it
// and merge listens.
var kafka *devstack.KafkaBroker

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "merge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mergeBin = filepath.Join(dir, "merge")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", mergeBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build merge: %v\n%s", err, out)
		return 1
	}
	kafka, err = devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(dir, "kafka")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start kafka:", err)
		return 1
	}
	defer kafka.Stop()
	return m.Run()
}

// env is one test's catalog, with bronze written by a generator.
type env struct {
	t      *testing.T
	dir    string
	cat    *devstack.CatalogProcess
	client catalogv1.CatalogServiceClient
	bronze *bronzetest.Writer
	n      int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.cat = devstack.Catalog(t, devstack.CatalogConfig{Brokers: kafka.Brokers()})
	e.client = catalogv1.NewCatalogServiceClient(e.cat.Conn(t))
	var err error
	if e.bronze, err = bronzetest.Open(e.ctx(), e.client); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

// proc is a merge process.
type proc struct {
	cmd  *exec.Cmd
	log  string
	addr string
	done chan error
}

// start starts merge with test settings plus extra flags.
func (e *env) start(extra ...string) *proc {
	e.t.Helper()
	e.n++
	addr := freeAddr(e.t)
	p := &proc{log: filepath.Join(e.dir, fmt.Sprintf("merge-%d.log", e.n)), addr: addr, done: make(chan error, 1)}
	args := append([]string{
		"--catalog-addr", e.cat.Addr(),
		"--kafka-brokers", kafka.Brokers(),
		"--grpc-addr", addr,
		"--metrics-addr", "127.0.0.1:0",
		"--batch-max-age", "200ms",
		"--poll-interval", "200ms",
		"--log-level", "debug",
	}, extra...)
	f, err := os.Create(p.log)
	if err != nil {
		e.t.Fatal(err)
	}
	p.cmd = exec.Command(mergeBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); f.Close() }()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			data, _ := os.ReadFile(p.log)
			lines := strings.Split(string(data), "\n")
			e.t.Logf("%s tail:\n%s", p.log, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	select {
	case <-p.done:
		p.done <- nil
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
}

// waitServing waits until the process logs that it serves: a SIGTERM
// before its signal handler is set kills it instead of stopping it.
func (p *proc) waitServing(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(p.log); err == nil && strings.Contains(string(data), "msg=serving") {
			return
		}
	}
	t.Fatalf("%s: merge did not log that it serves within 30s", p.log)
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("merge did not stop within 30s")
	}
}

// metric returns the value of an unlabelled metric from the process's
// /metrics (its address is in the "serving" log line).
func (p *proc) metric(t *testing.T, name string) float64 {
	t.Helper()
	data, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`metrics=(http://\S+/metrics)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no metrics address in %s", p.log)
	}
	resp, err := http.Get(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// gen makes bronze versions with QoS 1 duplicates inside a version and
// across versions, readings that cross midnight, and late readings.
type gen struct {
	rng        *rand.Rand
	latestWins bool // duplicates carry other values
	offset     int64
	tick       int
	sent       []bronzetest.Reading
	base       time.Time
}

func newGen(latestWins bool) *gen {
	return &gen{rng: rand.New(rand.NewPCG(7, 11)), latestWins: latestWins,
		base: time.Date(2026, 12, 1, 23, 50, 0, 0, time.UTC)}
}

// version returns n readings for bronze version v (raw_version = v, which
// the reference merge relies on).
func (g *gen) version(v int64, n int) []bronzetest.Reading {
	var out []bronzetest.Reading
	for range n {
		var r bronzetest.Reading
		switch p := g.rng.Float64(); {
		case p < 0.10 && len(g.sent) > 0: // redelivered in a later version
			r = g.sent[g.rng.IntN(len(g.sent))]
		case p < 0.15 && len(out) > 0: // redelivered in the same version
			r = out[g.rng.IntN(len(out))]
		case p < 0.18: // three days late
			g.tick++
			r = g.reading(g.base.Add(-72*time.Hour + time.Duration(g.tick)*time.Second))
		default:
			g.tick++
			r = g.reading(g.base.Add(time.Duration(g.tick) * 500 * time.Millisecond))
		}
		if g.latestWins {
			r.Value = float64(g.rng.IntN(1000))
		}
		r.RawVersion = v
		r.Offset = g.offset
		r.Partition = int32(g.offset % 6)
		g.offset++
		out = append(out, r)
	}
	g.sent = append(g.sent, out...)
	return out
}

func (g *gen) reading(ts time.Time) bronzetest.Reading {
	m := []string{"temperature", "pressure"}[g.rng.IntN(2)]
	return bronzetest.Reading{SensorID: fmt.Sprintf("s%03d", g.rng.IntN(20)), Measurement: m, Line: "l1",
		Value: float64(g.rng.IntN(1000)) / 10, TS: ts, Topic: "plant_sensor_readings_raw"}
}

// write writes n readings as the next bronze version.
func (e *env) write(g *gen, n int) int64 {
	e.t.Helper()
	v, err := e.tryWrite(g, n)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// tryWrite is write for goroutines other than the test's.
func (e *env) tryWrite(g *gen, n int) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pos, err := e.bronze.T.Positions(ctx, nil)
	if err != nil {
		return 0, err
	}
	v := pos.ReadVersion + 1
	got, err := e.bronze.Write(ctx, g.version(v, n))
	if err != nil {
		return 0, err
	}
	// The catalog's compaction of bronze may have committed v meanwhile:
	// the write lands after it (the rows say v, as raw_version says where
	// a reading came from, not where it landed).
	if got < v {
		return 0, fmt.Errorf("bronze version %d, want at least %d", got, v)
	}
	return got, nil
}

// waitMerged waits until gold's bronze position is version.
func (e *env) waitMerged(version int64, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := e.client.GetTransactionVersion(e.ctx(), &catalogv1.GetTransactionVersionRequest{Table: gold.Name, AppId: gold.AppID})
		if err == nil && resp.GetFound() && resp.GetVersion() >= version {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("gold's bronze position did not reach %d within %s (last: %v %v)", version, within, resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compareColumns are the columns compared with delta-rs's merge: under
// first_wins a key's duplicates carry the same reading, and which of them
// is kept depends on the batches; under latest_wins the newest is kept.
var (
	firstWinsColumns  = "sensor_id,measurement,ts,value,unit,plant,line,device,mqtt_topic,event_date"
	latestWinsColumns = firstWinsColumns + ",kafka_topic,kafka_partition,kafka_offset,raw_version,bronze_version"
)

type comparison struct {
	GoldRows  int   `json:"gold_rows"`
	RefRows   int   `json:"ref_rows"`
	GoldTwice []any `json:"gold_twice"`
	Missing   []any `json:"missing"`
	Extra     []any `json:"extra"`
	Diff      []any `json:"diff"`
}

// compare runs delta-rs's merge of bronze into a reference table and
// compares gold with it key by key.
func (e *env) compare(strategy string) {
	e.t.Helper()
	py := devstack.Python(e.t)
	script, err := filepath.Abs("testdata/refmerge.py")
	if err != nil {
		e.t.Fatal(err)
	}
	wh := e.cat.Warehouse()
	cols := firstWinsColumns
	if strategy == "latest_wins" {
		cols = latestWinsColumns
	}
	cmd := exec.Command(py, script, filepath.Join(wh, "bronze", "plant_sensor_readings"), filepath.Join(wh, "gold", "plant_sensor_readings"),
		filepath.Join(e.dir, "ref"), strings.Join(gold.KeyColumns, ","), strategy, cols)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("refmerge.py: %v\n%s", err, stderr.String())
	}
	var c comparison
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		e.t.Fatalf("refmerge.py output %q: %v", stdout.String(), err)
	}
	e.t.Logf("gold %d rows, delta-rs reference %d rows", c.GoldRows, c.RefRows)
	if c.GoldRows == 0 || c.GoldRows != c.RefRows || len(c.GoldTwice)+len(c.Missing)+len(c.Extra)+len(c.Diff) > 0 {
		e.t.Errorf("gold differs from delta-rs's merge: %s", stdout.String())
	}
}

func TestMergeMatchesDeltaRS(t *testing.T) {
	for _, strategy := range []string{"first_wins", "latest_wins"} {
		t.Run(strategy, func(t *testing.T) {
			e := newEnv(t)
			g := newGen(strategy == "latest_wins")
			var last int64
			for range 6 {
				last = e.write(g, 400)
			}
			p := e.start("--strategy", strategy, "--batch-max-rows", "700")
			e.waitMerged(last, 60*time.Second)
			for range 6 { // while it runs, woken by events
				last = e.write(g, 400)
			}
			e.waitMerged(last, 60*time.Second)

			conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The status is refreshed about twice a second.
			var m *pipelinev1.MergeStatus
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				st, err := pipelinev1.NewPipelineServiceClient(conn).GetStatus(e.ctx(), &pipelinev1.GetStatusRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if m = st.GetStatus().GetMerge(); m.GetBronzeVersion() == last {
					break
				}
			}
			if m.GetBronzeVersion() != last || m.GetRowsInserted() == 0 || m.GetDuplicates() == 0 {
				t.Errorf("MergeStatus = %v, want bronze_version %d, rows inserted and duplicates", m, last)
			}
			if strategy == "latest_wins" && m.GetRowsUpdated() == 0 {
				t.Errorf("latest_wins updated no row: %v", m)
			}
			if got := p.metric(t, "plantlake_merge_rows_inserted_total"); got != float64(m.GetRowsInserted()) {
				t.Errorf("plantlake_merge_rows_inserted_total = %v, want %d as in the status", got, m.GetRowsInserted())
			}
			if err := p.stop(t); err != nil {
				t.Errorf("merge exit: %v", err)
			}
			e.compare(strategy)
		})
	}
}

// TestKill9 kills merge with SIGKILL ten times while bronze grows, under
// each strategy; gold must end with every key once, holding the value
// delta-rs's merge of the same bronze has (with latest_wins the kills also
// land in rewrites of gold files).
func TestKill9(t *testing.T) {
	for _, strategy := range []string{"first_wins", "latest_wins"} {
		t.Run(strategy, func(t *testing.T) { testKill9(t, strategy) })
	}
}

func testKill9(t *testing.T, strategy string) {
	e := newEnv(t)
	g := newGen(strategy == "latest_wins")
	written := make(chan int64, 1)
	stopWriting := make(chan struct{})
	go func() {
		var last int64
		defer func() { written <- last }()
		for range 70 {
			select {
			case <-stopWriting:
				return
			case <-time.After(150 * time.Millisecond):
			}
			v, err := e.tryWrite(g, 300)
			if err != nil {
				t.Error(err)
				return
			}
			last = v
		}
	}()
	args := []string{"--strategy", strategy, "--batch-max-rows", "900"}
	p := e.start(args...)
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 10 {
		time.Sleep(500*time.Millisecond + time.Duration(rng.Int64N(int64(700*time.Millisecond))))
		p.kill()
		t.Logf("kill %d: %s", i+1, p.log)
		p = e.start(args...)
	}
	close(stopWriting)
	last := <-written
	e.waitMerged(last, 90*time.Second)
	// The last process may not have started yet when gold caught up (merged
	// by the one killed before it).
	p.waitServing(t)
	if err := p.stop(t); err != nil {
		t.Errorf("merge exit: %v", err)
	}
	commits := 0
	for i := 1; i <= e.n; i++ {
		data, err := os.ReadFile(filepath.Join(e.dir, fmt.Sprintf("merge-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "batch committed") {
			commits++
		}
	}
	if commits < 5 {
		t.Errorf("only %d of %d merge processes committed: the kills hit idle processes", commits, e.n)
	}
	e.compare(strategy)
}
