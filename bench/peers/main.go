// Command peers measures kafka-delta-ingest (KDI) beside plantlake's ingest
// on the same broker and the same records (issue 17, item 5): each engine
// pinned to one core (taskset, GOMAXPROCS=1 for Go), Kafka and the catalog
// on the other, 1,000,000 records of each shape (bridge-shaped with the
// bridge's five headers, and headerless seed-shaped), and it prints CPU
// µs/message, messages/s, peak RSS and the ratios as a Markdown table
// (bench/results/peers.md by default).
//
// KDI parses the JSON into columns and writes them as Delta in one process,
// so besides ingest alone (raw) it is compared with ingest followed by
// deserialize (raw, then bronze through the catalog), one after the other
// on the same core. KDI is run as shipped and with librdkafka's fetch
// backoff tuned (-K); it has no switch for its per-message statsd metrics.
// Every table's rows are counted with delta-rs.
//
// KDI is not built here: scripts/build-kdi.sh builds it from its source
// with the pinned bench/peers/kdi/Cargo.lock, and scripts/bench-peers.sh
// (make bench-peers KDI=path) runs this program.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// settings of the benchmark.
type settings struct {
	kdi       string // the kafka-delta-ingest binary
	kdiCommit string // the commit it was built from, for the table
	records   int
	runs      int
	benchCPU  string // taskset CPU list of the measured process
	otherCPU  string // taskset CPU list of Kafka and the catalog
	dir       string // work folder
	py        string // python3 with deltalake (delta-rs)
	brokers   string
	statsd    string // a UDP address that takes KDI's statsd packets and never reads them
	catalog   string // catalog binary
	ingest    string // ingest binary
	deser     string // deserialize binary

	kdiLatency int           // KDI's --allowed_latency for every variant, seconds (0: each variant's own)
	kdiTimeout time.Duration // how long one KDI run may take before it is reported unfinished
}

// kdiVariant is one way KDI is run.
type kdiVariant struct {
	name    string
	latency int      // --allowed_latency, seconds
	args    []string // extra flags
}

// fetchTuned are the librdkafka settings that take KDI's consumer off its
// fetch backoff: fetch.queue.backoff.ms (1 s by default) postpones the
// next fetch of a partition whose local queue is over its thresholds, and
// fetch.wait.max.ms (500 ms) is how long the broker may hold a fetch.
var fetchTuned = []string{"-K", "fetch.queue.backoff.ms=10", "-K", "fetch.wait.max.ms=50"}

// kdiVariants are KDI's measured settings. KDI's own --allowed_latency
// (300 s, or 128 MiB per file) would not commit before the run ends; each
// variant gets the shortest whole number of seconds that is longer than
// one of its commits. KDI restarts its latency timer when a commit starts,
// so after a commit that took the whole latency the next message already
// completes the next file, and if every commit takes that long KDI commits
// one record at a time from then on. After each commit KDI asks the broker
// for the high watermark of every partition it wrote, one blocking request
// after the other, and each waits behind the consumer's fetch, which the
// broker holds for up to fetch.wait.max.ms when the partitions it asks for
// have nothing new (librdkafka has fetched to the end of the topic; the
// rest waits in its local queue): about 3 s for 6 partitions as shipped
// (500 ms), so with 1 s KDI stalls near the end of the topic, one record
// per commit (the benchmark's -kdi-latency 1 shows it); about 0.3 s when
// tuned (50 ms).
var kdiVariants = []kdiVariant{
	{name: "as shipped", latency: 5},
	{name: "fetch backoff tuned", latency: 1, args: fetchTuned},
}

// outcome is the median run of each measured thing of one shape.
type outcome struct {
	shape       shape
	ingest      measured   // ingest --run-once alone (raw)
	ingestDeser measured   // ingest, then deserialize (raw, then bronze)
	kdi         []measured // per kdiVariants
}

// measured is the median of a thing's runs, with their range.
type measured struct {
	median           usage
	fastest, slowest time.Duration
	commits          int64 // Delta versions written in the median run (the final one's version)
}

func run(ctx context.Context) error {
	var s settings
	flag.StringVar(&s.kdi, "kdi", "", "the kafka-delta-ingest binary (required; scripts/build-kdi.sh builds one)")
	flag.StringVar(&s.kdiCommit, "kdi-commit", "", "the kafka-delta-ingest commit the binary was built from (for the table)")
	flag.IntVar(&s.records, "records", 1_000_000, "records of each shape")
	flag.IntVar(&s.runs, "runs", 3, "measured runs of each engine and shape, interleaved; the median by wall time is reported")
	flag.StringVar(&s.benchCPU, "bench-cpus", "1", "taskset CPU list of the measured process")
	flag.StringVar(&s.otherCPU, "other-cpus", "0", "taskset CPU list of Kafka and the catalog")
	out := flag.String("out", "", "where to write the Markdown table (default: <repo>/bench/results/peers.md)")
	keep := flag.Bool("keep", false, "keep the work folder")
	flag.IntVar(&s.kdiLatency, "kdi-latency", 0, "KDI's --allowed_latency in seconds for every variant (default: each variant's own, see kdiVariants; 1 reproduces the stall as shipped)")
	flag.DurationVar(&s.kdiTimeout, "kdi-timeout", 0, "how long one KDI run may take before the benchmark stops and reports what it had committed (default: 2 min + 1 s per 5,000 records)")
	flag.Parse()
	if s.kdi == "" {
		return fmt.Errorf("-kdi is required (scripts/build-kdi.sh builds kafka-delta-ingest)")
	}
	s.runs = max(s.runs, 1)
	if s.kdiTimeout <= 0 {
		s.kdiTimeout = 2*time.Minute + time.Duration(s.records/5000)*time.Second
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results", "peers.md")
	}
	if s.dir, err = os.MkdirTemp("", "peers-bench-"); err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(s.dir)
	}
	fmt.Fprintln(os.Stderr, "peers: work folder", s.dir)

	if s.py, err = devstack.PythonPath(ctx, nil); err != nil {
		return err
	}
	if s.catalog, err = devstack.CatalogBinary(ctx); err != nil {
		return err
	}
	if s.ingest, err = goBuild(ctx, filepath.Join(root, "services", "ingest"), "./cmd/ingest", filepath.Join(s.dir, "ingest")); err != nil {
		return err
	}
	if s.deser, err = goBuild(ctx, filepath.Join(root, "services", "deserialize"), "./cmd/deserialize", filepath.Join(s.dir, "deserialize")); err != nil {
		return err
	}
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(s.dir, "kafka"), HeapMB: 768})
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	defer kafka.Stop()
	if out, err := exec.Command("taskset", "-a", "-p", "-c", s.otherCPU, strconv.Itoa(kafka.Pid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset kafka: %w: %s", err, out)
	}
	s.brokers = kafka.Brokers()
	// KDI sends statsd metrics whatever its settings. A socket that is
	// never read takes them as an agent would (the kernel drops what
	// overflows its buffer) without spending CPU on either core, and
	// without the ICMP errors a closed port would answer.
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("statsd sink: %w", err)
	}
	defer sink.Close()
	s.statsd = sink.LocalAddr().String()
	if err := devstack.CreatePipelineTopics(ctx, s.brokers); err != nil {
		return err
	}
	now := time.Now()
	ends := make([]map[int32]int64, len(shapes))
	for i, sh := range shapes {
		if err := kafka.CreateTopics(ctx, 6, sh.topic()); err != nil {
			return err
		}
		start := time.Now()
		if err := produce(ctx, s.brokers, sh, s.records, now); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "peers: %d %s-shaped records produced in %s\n", s.records, sh.name, time.Since(start).Round(time.Millisecond))
		if ends[i], err = endOffsets(s.brokers, sh.topic()); err != nil {
			return err
		}
		var sum int64
		for _, end := range ends[i] {
			sum += end
		}
		if sum != int64(s.records) {
			return fmt.Errorf("%s holds %d records by its end offsets %v, want %d", sh.topic(), sum, ends[i], s.records)
		}
	}
	if err := warmGroupCoordinator(ctx, s.brokers, shapes[0].topic()); err != nil {
		return err
	}

	// Runs are interleaved (plantlake, KDI, KDI tuned, next shape, next
	// round) so that a slow spell on the shared machine does not fall on
	// one engine only.
	type runs struct {
		ingest, ingestDeser []run1
		kdi                 [][]run1
	}
	all := make([]runs, len(shapes))
	for i := range all {
		all[i].kdi = make([][]run1, len(kdiVariants))
	}
	for r := range s.runs {
		for i, sh := range shapes {
			id := fmt.Sprintf("%s-%d", sh.name, r)
			ing, des, err := measurePlantlake(ctx, s, sh, id)
			if err != nil {
				return err
			}
			all[i].ingest = append(all[i].ingest, ing)
			all[i].ingestDeser = append(all[i].ingestDeser, run1{u: ing.u.add(des.u), commits: des.commits})
			for v, kv := range kdiVariants {
				k, err := measureKDI(ctx, s, sh, ends[i], kv, fmt.Sprintf("%s-kdi%d", id, v))
				if err != nil {
					return err
				}
				all[i].kdi[v] = append(all[i].kdi[v], k)
			}
		}
	}
	outcomes := make([]outcome, len(shapes))
	for i, sh := range shapes {
		outcomes[i] = outcome{shape: sh, ingest: median(all[i].ingest), ingestDeser: median(all[i].ingestDeser)}
		for _, k := range all[i].kdi {
			outcomes[i].kdi = append(outcomes[i].kdi, median(k))
		}
	}
	table := render(s, outcomes)
	fmt.Print(table)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(table), 0o644)
}

// run1 is one measured run.
type run1 struct {
	u       usage
	commits int64
}

// median returns the run with the median wall time, with the range of all.
func median(rs []run1) measured {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b run1) int { return int(a.u.wall - b.u.wall) })
	m := sorted[len(sorted)/2]
	return measured{median: m.u, commits: m.commits, fastest: sorted[0].u.wall, slowest: sorted[len(sorted)-1].u.wall}
}

// measurePlantlake runs ingest --run-once over the shape's topic into a
// fresh warehouse, then deserialize --run-once over the raw table it wrote,
// each pinned to the bench core, and checks the tables' rows with delta-rs.
func measurePlantlake(ctx context.Context, s settings, sh shape, id string) (ingest, deser run1, err error) {
	warehouse := filepath.Join(s.dir, "warehouse-"+id)
	defer os.RemoveAll(warehouse)
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Bin: s.catalog, Warehouse: warehouse, Brokers: s.brokers,
		LogPath: filepath.Join(s.dir, "catalog-"+id+".log"), CPUs: s.otherCPU})
	if err != nil {
		return run1{}, run1{}, err
	}
	defer cat.Stop(10 * time.Second)
	common := []string{"--run-once", "--kafka-brokers", s.brokers, "--catalog-addr", cat.Addr(), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", ""}
	fmt.Fprintf(os.Stderr, "peers: %s: ingest\n", id)
	p, err := startProc(filepath.Join(s.dir, "ingest-"+id+".log"), s.benchCPU, []string{"GOMAXPROCS=1"}, s.ingest,
		append(common, "--topics", sh.topic(), "--group", "peers-"+id)...)
	if err != nil {
		return run1{}, run1{}, err
	}
	if ingest.u, err = p.waitExit(ctx); err != nil {
		return run1{}, run1{}, err
	}
	fmt.Fprintf(os.Stderr, "peers: %s: deserialize\n", id)
	p, err = startProc(filepath.Join(s.dir, "deserialize-"+id+".log"), s.benchCPU, []string{"GOMAXPROCS=1"}, s.deser, common...)
	if err != nil {
		return run1{}, run1{}, err
	}
	if deser.u, err = p.waitExit(ctx); err != nil {
		return run1{}, run1{}, err
	}
	raw, bronze, dead := filepath.Join(warehouse, rawDir), filepath.Join(warehouse, bronzeDir), filepath.Join(warehouse, deadDir)
	counts, err := countRows(ctx, s.py, raw, bronze, dead)
	if err != nil {
		return run1{}, run1{}, err
	}
	n := int64(s.records)
	if counts[raw].rows != n || counts[bronze].rows != n || counts[dead].rows != 0 {
		return run1{}, run1{}, fmt.Errorf("%s: delta-rs reads %d raw, %d bronze rows and %d dead letters, want %d, %d and 0",
			id, counts[raw].rows, counts[bronze].rows, counts[dead].rows, n, n)
	}
	ingest.commits, deser.commits = counts[raw].version, counts[bronze].version
	return ingest, deser, nil
}

// Table folders inside a plantlake warehouse.
const (
	rawDir    = "raw/plant_sensor_readings"
	bronzeDir = "bronze/plant_sensor_readings"
	deadDir   = "bronze/plant_sensor_dead_letters"
)

// stallCommits commits in a row of fewer than stallRecords records each,
// with records left to write, end a KDI run early as stalled: KDI is then
// committing one record at a time (see kdiVariants) and would need hours.
const (
	stallCommits = 5
	stallRecords = 100
)

// measureKDI runs KDI over the shape's topic into a fresh table until its
// log's txn actions cover every partition up to its end offset in ends
// (KDI has no run-once mode: its --ends_at_latest_offsets stops at the high
// watermark without writing what it buffered), and checks the table's rows
// with delta-rs. A run that stalls or outlasts s.kdiTimeout is an error
// that says what KDI had committed.
func measureKDI(ctx context.Context, s settings, sh shape, ends map[int32]int64, v kdiVariant, id string) (run1, error) {
	table := filepath.Join(s.dir, "kdi-"+id)
	defer os.RemoveAll(table)
	if err := createKDITable(ctx, s.py, table); err != nil {
		return run1{}, err
	}
	appID := "peers-" + id
	if s.kdiLatency > 0 {
		v.latency = s.kdiLatency
	}
	latency := strconv.Itoa(v.latency)
	args := []string{"ingest", sh.topic(), "file://" + table, "--kafka", s.brokers, "--consumer_group", appID, "--app_id", appID,
		"--allowed_latency", latency, "--auto_offset_reset", "earliest", "--statsd_endpoint", s.statsd}
	args = append(append(args, kdiTransforms...), v.args...)
	fmt.Fprintf(os.Stderr, "peers: %s: kafka-delta-ingest %s\n", id, v.name)
	// KDI logs one line per commit at info ("Delta version N completed in
	// M milliseconds"), which is what tells a slow commit from a slow fetch.
	p, err := startProc(filepath.Join(s.dir, "kdi-"+id+".log"), s.benchCPU, []string{"RUST_LOG=warn,kafka_delta_ingest=info"}, s.kdi, args...)
	if err != nil {
		return run1{}, err
	}
	w := newTxnWatcher(table, appID)
	u, err := p.waitFinished(ctx, s.kdiTimeout, func() (bool, error) {
		if err := w.poll(); err != nil {
			return false, err
		}
		if w.done(ends) {
			return true, nil
		}
		if w.stalled(stallCommits, stallRecords) {
			return false, fmt.Errorf("stalled after %s: its last %d commits held fewer than %d records each (each commit "+
				"takes longer than --allowed_latency %s; see kdiVariants)", time.Since(p.start).Round(time.Second), stallCommits, stallRecords, latency)
		}
		return false, nil
	})
	if err != nil {
		return run1{}, fmt.Errorf("%s: kafka-delta-ingest %s: %w\nwhat it committed: %s\nthe end of its log (%s, kept with -keep):\n%s",
			id, v.name, err, w.report(ends), p.log, tail(p.log, 5))
	}
	fmt.Fprintf(os.Stderr, "peers: %s: %s\n", id, w.report(ends))
	counts, err := countRows(ctx, s.py, table)
	if err != nil {
		return run1{}, err
	}
	if n := int64(s.records); counts[table].rows != n {
		return run1{}, fmt.Errorf("%s: delta-rs reads %d rows in KDI's table, want %d (%s)", id, counts[table].rows, n, w.report(ends))
	}
	return run1{u: u, commits: counts[table].version}, nil
}

// goBuild builds pkg of the module in dir into out.
func goBuild(ctx context.Context, dir, pkg, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return out, nil
}

// repoRoot is the repository root, found from this file's path.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the source tree")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

func render(s settings, outcomes []outcome) string {
	var b strings.Builder
	n := float64(s.records)
	perMsg := func(u usage) float64 { return float64(u.cpu.Microseconds()) / n }
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	commit := s.kdiCommit
	if commit == "" {
		commit = "(not given)"
	}
	fmt.Fprintf(&b, "# plantlake beside kafka-delta-ingest\n\n")
	fmt.Fprintf(&b, "%d records of each shape in a 6-partition topic of one Kafka broker: **bridge**-shaped (key = MQTT topic, "+
		"the bridge's five headers, ~110-byte JSON reading) and **seed**-shaped (the same key and payload, no headers). "+
		"Every reading is valid JSON, so every engine must write every record as a row. Each measured process is pinned with "+
		"`taskset -c %s` (Go with `GOMAXPROCS=1`; librdkafka's threads and KDI's tokio threads share that core); Kafka "+
		"and the catalog run on `taskset -c %s`. Wall time runs from the process start to its exit (plantlake, "+
		"`--run-once`) or to the moment KDI's last commit covers every offset (KDI has no run-once mode); CPU time is "+
		"user + system of every thread; peak RSS is VmHWM. Each table's rows are counted with delta-rs.\n\n",
		s.records, s.benchCPU, s.otherCPU)
	fmt.Fprintf(&b, "- **ingest**: `ingest --run-once` into the raw table (bytes and headers, no parsing).\n")
	fmt.Fprintf(&b, "- **ingest + deserialize**: the same, then `deserialize --run-once` from raw through the catalog into bronze "+
		"(parsed, validated, typed columns), one after the other on the same core: times add up, peak RSS is the larger.\n")
	fmt.Fprintf(&b, "- **KDI**: kafka-delta-ingest (commit `%s`, `--features s3`, bundled librdkafka) parsing the JSON into a Delta "+
		"table of the five fields plus `kafka.partition` and `kafka.offset` (`-t`). Its `--allowed_latency` (300 s by default, "+
		"which would not commit during the run) is the shortest whole number of seconds longer than one of its commits: KDI "+
		"restarts its latency timer when a commit starts, so if its commits take the whole latency it commits one record at a "+
		"time. After each commit KDI asks the broker for every partition's high watermark, one blocking request at a time, each "+
		"behind a fetch the broker holds for up to `fetch.wait.max.ms` once librdkafka has fetched to the end of the topic: about 3 s per commit as "+
		"shipped (500 ms), about 0.3 s tuned (50 ms). KDI's wall time runs to the commit that covers every offset, so it "+
		"includes up to the latency of waiting after its last record; its CPU time does not. "+
		"*As shipped*: `--allowed_latency %d`, librdkafka defaults and its per-message statsd metrics (there is no switch to "+
		"turn them off), sent to a UDP socket that is never read. *Fetch backoff tuned*: `--allowed_latency %d %s`.\n\n",
		commit, cmp.Or(s.kdiLatency, kdiVariants[0].latency), cmp.Or(s.kdiLatency, kdiVariants[1].latency), strings.Join(fetchTuned, " "))
	fmt.Fprintf(&b, "Each ran %d times, interleaved; the row is the median run by wall time, with the range of all runs' messages/s.\n\n", s.runs)
	fmt.Fprintf(&b, "| shape | engine | wall time | messages/s | range of runs | CPU time | CPU µs/message | peak RSS | Delta versions |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	row := func(sh, name string, m measured) {
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f–%.0f | %s | %.2f | %.1f MiB | %d |\n", sh, name,
			m.median.wall.Round(time.Millisecond), rate(m.median.wall), rate(m.slowest), rate(m.fastest),
			m.median.cpu.Round(time.Millisecond), perMsg(m.median), float64(m.median.hwmKiB)/1024, m.commits)
	}
	for _, o := range outcomes {
		row(o.shape.name, "ingest", o.ingest)
		row(o.shape.name, "ingest + deserialize", o.ingestDeser)
		for i, k := range o.kdi {
			row(o.shape.name, "KDI "+kdiVariants[i].name, k)
		}
	}
	fmt.Fprintf(&b, "\n## Ratios (medians)\n\n")
	fmt.Fprintf(&b, "| shape | comparison | KDI CPU/message ÷ plantlake's | plantlake messages/s ÷ KDI's | KDI peak RSS ÷ plantlake's |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|\n")
	ratio := func(sh, what string, pl, kdi measured) {
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %.2f |\n", sh, what,
			perMsg(kdi.median)/perMsg(pl.median), kdi.median.wall.Seconds()/pl.median.wall.Seconds(),
			float64(kdi.median.hwmKiB)/float64(pl.median.hwmKiB))
	}
	for _, o := range outcomes {
		ratio(o.shape.name, "KDI as shipped vs ingest", o.ingest, o.kdi[0])
		ratio(o.shape.name, "KDI fetch backoff tuned vs ingest", o.ingest, o.kdi[1])
		ratio(o.shape.name, "KDI fetch backoff tuned vs ingest + deserialize", o.ingestDeser, o.kdi[1])
	}
	fmt.Fprintf(&b, "\nMachine: %s/%s, %d cores shared with other work (load average at the end: %s). "+
		"Generated by `make bench-peers KDI=...` (bench/peers) on %s.\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadAvg(), time.Now().UTC().Format("2006-01-02"))
	return b.String()
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
