// Command bench measures deserialize: raw rows per second from a raw table
// of 1,000,000 seed-shaped readings (about 1% broken, so that dead letters
// are written too) into bronze.plant_sensor_readings and
// bronze.plant_sensor_dead_letters, with `deserialize --run-once` held to one
// core (taskset -c 1, GOMAXPROCS=1, every commit included) while Kafka and
// the catalog run on the other core, and its peak RSS (VmHWM). With
// --spark-python it also runs Spark on local[1] doing the original design's
// Job 2 on the same raw table (bench/spark_job2.py), interleaved with the
// plantlake runs, and reports the ratio. It prints a Markdown table and
// writes it to bench/results/deserialize.md.
//
// The raw table is built once, honestly: the readings are produced to Kafka
// as the bridge would (MQTT topic as key, the bridge's headers) and the real
// ingest binary reads them with --run-once. Every measured run starts from a
// fresh copy of that warehouse and a fresh catalog over it.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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

// Tables and topics of the pipeline, as the services name them by default.
const (
	rawTopic  = "plant_sensor_readings_raw"
	rawDir    = "raw/plant_sensor_readings"
	bronzeDir = "bronze/plant_sensor_readings"
	deadDir   = "bronze/plant_sensor_dead_letters"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// settings of the benchmark.
type settings struct {
	rows        int
	runs        int
	benchCPU    string
	otherCPU    string
	sparkPython string
	sparkScript string
	dir         string
	// variants are the extra deserialize flags of each measured plantlake run.
	variants [][]string
}

// variantFlag collects repeated --variant values.
type variantFlag [][]string

func (v *variantFlag) String() string { return fmt.Sprint(*v) }
func (v *variantFlag) Set(s string) error {
	*v = append(*v, strings.Fields(s))
	return nil
}

func run(ctx context.Context) error {
	rows := flag.Int("rows", 1_000_000, "readings in the raw table")
	runs := flag.Int("runs", 3, "measured runs of each side, interleaved; the median by wall time is reported")
	out := flag.String("out", "", "where to write the Markdown table (default: <repo>/bench/results/deserialize.md with Spark, deserialize-plantlake.md without)")
	keep := flag.Bool("keep", false, "keep the work folder")
	benchCPU := flag.String("bench-cpus", "1", "taskset CPU list of the measured process (deserialize, Spark)")
	otherCPU := flag.String("other-cpus", "0", "taskset CPU list for Kafka and the catalog")
	sparkPython := flag.String("spark-python", "", "python of a venv with pyspark and delta-spark; set, Spark local[1] runs beside deserialize (make bench-peers)")
	var variants variantFlag
	flag.Var(&variants, "variant", "extra deserialize flags of one measured plantlake run, space-separated (repeatable; default: the defaults and --batch-max-rows 100000)")
	flag.Parse()
	if len(variants) == 0 {
		variants = variantFlag{nil, {"--batch-max-rows", "100000"}}
	}
	_, file, _, _ := runtime.Caller(0)
	here := filepath.Dir(file)
	if *out == "" {
		// make bench (no Spark) does not overwrite make bench-peers' table.
		name := "deserialize-plantlake.md"
		if *sparkPython != "" {
			name = "deserialize.md"
		}
		*out = filepath.Join(here, "..", "..", "..", "bench", "results", name)
	}
	dir, err := os.MkdirTemp("", "deserialize-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintln(os.Stderr, "bench: work folder", dir)
	s := settings{rows: *rows, runs: max(*runs, 1), benchCPU: *benchCPU, otherCPU: *otherCPU,
		sparkPython: *sparkPython, sparkScript: filepath.Join(here, "spark_job2.py"), dir: dir, variants: variants}

	catalogBin, err := devstack.CatalogBinary(ctx)
	if err != nil {
		return err
	}
	ingestBin, err := goBuild(ctx, filepath.Join(here, "..", "..", "ingest"), "./cmd/ingest", filepath.Join(dir, "ingest"))
	if err != nil {
		return err
	}
	deserializeBin, err := goBuild(ctx, filepath.Join(here, ".."), "./cmd/deserialize", filepath.Join(dir, "deserialize"))
	if err != nil {
		return err
	}
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(dir, "kafka"), HeapMB: 768})
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	defer kafka.Stop()
	if out, err := exec.Command("taskset", "-a", "-p", "-c", s.otherCPU, strconv.Itoa(kafka.Pid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset kafka: %w: %s", err, out)
	}
	if err := devstack.CreatePipelineTopics(ctx, kafka.Brokers()); err != nil {
		return err
	}
	raw := filepath.Join(dir, "warehouse-raw")
	broken, err := buildRaw(ctx, s, catalogBin, ingestBin, kafka.Brokers(), raw)
	if err != nil {
		return err
	}

	// Runs are interleaved (each variant, then Spark, and again) so that a
	// slow spell on the machine does not fall on one side only.
	pl := make([][]result, len(s.variants))
	var sp []result
	for r := range s.runs {
		for i, v := range s.variants {
			res, err := measurePlantlake(ctx, s, r*len(s.variants)+i, v, catalogBin, deserializeBin, kafka.Brokers(), raw, broken)
			if err != nil {
				return err
			}
			pl[i] = append(pl[i], res)
		}
		if s.sparkPython == "" {
			continue
		}
		res, err := measureSpark(ctx, s, r, raw)
		if err != nil {
			return err
		}
		sp = append(sp, res)
	}
	medians := make([]result, len(pl))
	for i, rs := range pl {
		medians[i] = median(rs)
	}
	table := render(s, broken, medians, median(sp))
	fmt.Print(table)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(table), 0o644)
}

// goBuild builds pkg of the module in dir into bin.
func goBuild(ctx context.Context, dir, pkg, bin string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// buildRaw produces s.rows readings to Kafka and runs ingest --run-once
// over them into the raw table of a new warehouse, then stops its catalog.
// It returns how many readings are broken (must become dead letters).
func buildRaw(ctx context.Context, s settings, catalogBin, ingestBin, brokers, warehouse string) (int, error) {
	fmt.Fprintf(os.Stderr, "bench: producing %d readings\n", s.rows)
	start := time.Now()
	broken, err := produce(ctx, brokers, s.rows, time.Now())
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "bench: produced in %s (%d broken)\n", time.Since(start).Round(time.Millisecond), broken)
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Bin: catalogBin, Warehouse: warehouse, Brokers: brokers,
		LogPath: filepath.Join(s.dir, "catalog-raw.log"), CPUs: s.otherCPU})
	if err != nil {
		return 0, err
	}
	defer cat.Stop(10 * time.Second)
	start = time.Now()
	p, err := startProc(filepath.Join(s.dir, "ingest.log"), s.benchCPU, []string{"GOMAXPROCS=1"}, ingestBin,
		"--run-once", "--kafka-brokers", brokers, "--catalog-addr", cat.Addr(), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "")
	if err != nil {
		return 0, err
	}
	if _, err := p.wait(ctx); err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	n, err := countRows(filepath.Join(warehouse, rawDir))
	if err != nil {
		return 0, err
	}
	if n != int64(s.rows) {
		return 0, fmt.Errorf("the raw table has %d rows, want %d", n, s.rows)
	}
	fmt.Fprintf(os.Stderr, "bench: raw table of %d rows built by ingest in %s\n", n, time.Since(start).Round(time.Millisecond))
	return broken, cat.Stop(10 * time.Second)
}

// result of one measured run.
type result struct {
	wall    time.Duration
	job     time.Duration // Spark: from the session ready to the last write done
	cpu     time.Duration
	hwmKiB  int64
	bronze  int64
	dead    int64
	commits int64
	flags   string // plantlake: the extra deserialize flags
	// runDelay is the time the process's threads were runnable but waited
	// for a core (the sum of /proc/PID/task/*/schedstat's run_delay).
	runDelay  time.Duration
	runs      int
	fast, slo time.Duration
}

// measurePlantlake runs deserialize --run-once over a fresh copy of the raw
// warehouse, with a fresh catalog over it.
func measurePlantlake(ctx context.Context, s settings, r int, extra []string, catalogBin, bin, brokers, raw string, broken int) (result, error) {
	warehouse := filepath.Join(s.dir, fmt.Sprintf("warehouse-plantlake-%d", r))
	if out, err := exec.CommandContext(ctx, "cp", "-a", raw, warehouse).CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("copy the raw warehouse: %w: %s", err, out)
	}
	defer os.RemoveAll(warehouse)
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Bin: catalogBin, Warehouse: warehouse, Brokers: brokers,
		LogPath: filepath.Join(s.dir, fmt.Sprintf("catalog-%d.log", r)), CPUs: s.otherCPU})
	if err != nil {
		return result{}, err
	}
	defer cat.Stop(10 * time.Second)
	fmt.Fprintf(os.Stderr, "bench: run %d: plantlake deserialize %s\n", r, strings.Join(extra, " "))
	args := append([]string{"--run-once", "--kafka-brokers", brokers, "--catalog-addr", cat.Addr(), "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", ""}, extra...)
	p, err := startProc(filepath.Join(s.dir, fmt.Sprintf("deserialize-%d.log", r)), s.benchCPU, []string{"GOMAXPROCS=1"}, bin, args...)
	if err != nil {
		return result{}, err
	}
	res, err := p.wait(ctx)
	if err != nil {
		return result{}, fmt.Errorf("deserialize: %w", err)
	}
	res.flags = strings.Join(extra, " ")
	if res.bronze, err = countRows(filepath.Join(warehouse, bronzeDir)); err != nil {
		return result{}, err
	}
	if res.dead, err = countRows(filepath.Join(warehouse, deadDir)); err != nil {
		return result{}, err
	}
	if res.commits, err = commits(filepath.Join(warehouse, bronzeDir)); err != nil {
		return result{}, err
	}
	if res.bronze+res.dead != int64(s.rows) || res.dead != int64(broken) {
		return result{}, fmt.Errorf("deserialize wrote %d bronze rows and %d dead letters, want %d and %d",
			res.bronze, res.dead, s.rows-broken, broken)
	}
	return res, nil
}

// sparkReport is what spark_job2.py prints as its last line.
type sparkReport struct {
	Bronze    int64   `json:"bronze"`
	Dead      int64   `json:"dead_letters"`
	JobSecs   float64 `json:"job_seconds"`
	CPUSecs   float64 `json:"cpu_seconds"`
	PeakKiB   int64   `json:"peak_rss_kib"`
	SparkInfo string  `json:"spark"`
}

// measureSpark runs Job 2 with Spark local[1] on the raw table, writing
// bronze and dead letters as Delta into fresh folders.
func measureSpark(ctx context.Context, s settings, r int, raw string) (result, error) {
	out := filepath.Join(s.dir, fmt.Sprintf("spark-%d", r))
	defer os.RemoveAll(out)
	fmt.Fprintf(os.Stderr, "bench: run %d: spark local[1]\n", r)
	log := filepath.Join(s.dir, fmt.Sprintf("spark-%d.log", r))
	p, err := startProc(log, s.benchCPU, nil, s.sparkPython, s.sparkScript,
		filepath.Join(raw, rawDir), filepath.Join(out, "bronze"), filepath.Join(out, "dead_letters"))
	if err != nil {
		return result{}, err
	}
	res, err := p.wait(ctx)
	if err != nil {
		return result{}, fmt.Errorf("spark: %w", err)
	}
	last, err := lastReport(log)
	if err != nil {
		return result{}, err
	}
	var rep sparkReport
	if err := json.Unmarshal([]byte(last), &rep); err != nil {
		return result{}, fmt.Errorf("spark's report %q: %w", last, err)
	}
	res.job = time.Duration(rep.JobSecs * float64(time.Second))
	res.cpu = time.Duration(rep.CPUSecs * float64(time.Second))
	res.hwmKiB = rep.PeakKiB
	if res.bronze, err = countRows(filepath.Join(out, "bronze")); err != nil {
		return result{}, err
	}
	if res.dead, err = countRows(filepath.Join(out, "dead_letters")); err != nil {
		return result{}, err
	}
	if res.commits, err = commits(filepath.Join(out, "bronze")); err != nil {
		return result{}, err
	}
	if res.bronze != rep.Bronze || res.dead != rep.Dead || res.bronze+res.dead != int64(s.rows) {
		return result{}, fmt.Errorf("spark wrote %d bronze rows and %d dead letters (it says %d and %d), want %d in all",
			res.bronze, res.dead, rep.Bronze, rep.Dead, s.rows)
	}
	return res, nil
}

// lastReport is the last JSON report spark_job2.py printed to file.
func lastReport(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	i := strings.LastIndex(string(data), `{"bronze"`)
	if i < 0 {
		return "", fmt.Errorf("no report of spark_job2.py in %s", file)
	}
	last, _, _ := strings.Cut(string(data[i:]), "\n")
	return strings.TrimSpace(last), nil
}

// proc is a measured child process.
type proc struct {
	cmd *exec.Cmd
	log string
}

// startProc starts bin pinned to cpus with taskset (which execs bin in
// place, so the pid is bin's), its output appended to logPath.
func startProc(logPath, cpus string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return &proc{cmd: cmd, log: logPath}, nil
}

// wait waits for the process to exit, sampling the VmHWM of each process
// of its tree, and returns its wall time (from start), CPU time (rusage)
// and peak RSS: the largest VmHWM (Spark's JVM, a child of its Python
// driver, counts). wait4's maxrss is not used: it counts this program's own
// RSS, which Linux carries through the vfork and exec into the child's.
func (p *proc) wait(ctx context.Context) (result, error) {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var hwm int64
	// run_delay of each process of the tree (Spark's JVM is a child of
	// its Python driver), the last value read before it exited.
	delays := map[int]time.Duration{}
	for {
		select {
		case err := <-done:
			wall := time.Since(start)
			if err != nil {
				return result{}, fmt.Errorf("%w\n%s", err, tail(p.log, 20))
			}
			res := result{wall: wall, cpu: p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime(), hwmKiB: hwm}
			for _, d := range delays {
				res.runDelay += d
			}
			return res, nil
		case <-tick.C:
			for _, pid := range tree(p.cmd.Process.Pid) {
				if kb, err := devstack.VmHWMKiB(pid); err == nil {
					hwm = max(hwm, kb)
				}
				if d, err := runDelay(pid); err == nil {
					delays[pid] = max(delays[pid], d)
				}
			}
		case <-ctx.Done():
			p.cmd.Process.Kill()
			<-done
			return result{}, ctx.Err()
		}
	}
}

// runDelay sums the run_delay (time runnable, waiting for a core) of every
// thread of a process, from /proc/PID/task/*/schedstat. Threads that have
// exited are not counted.
func runDelay(pid int) (time.Duration, error) {
	names, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(names) == 0 {
		return 0, fmt.Errorf("schedstat of %d: %w", pid, errors.Join(err, os.ErrNotExist))
	}
	var sum int64
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(data)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			sum += n
		}
	}
	return time.Duration(sum), nil
}

// tree is pid and its descendants, from the parent pids in /proc/*/stat.
func tree(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	children := map[int][]int{}
	for _, name := range stats {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if i < 0 || len(f) < 2 {
			continue
		}
		child, err1 := strconv.Atoi(filepath.Base(filepath.Dir(name)))
		parent, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			children[parent] = append(children[parent], child)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// tail is the last n lines of a file.
func tail(file string, n int) string {
	data, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// countRows sums numRecords of the add actions (less the removes) in a
// Delta table's commit files: what every writer here records in its stats.
func countRows(table string) (int64, error) {
	var n int64
	err := eachAction(table, func(a action) error {
		sign := int64(1)
		f := a.Add
		if a.Remove != nil {
			sign, f = -1, a.Remove
		}
		if f == nil {
			return nil
		}
		var st struct {
			NumRecords *int64 `json:"numRecords"`
		}
		if err := json.Unmarshal([]byte(f.Stats), &st); err != nil || st.NumRecords == nil {
			return fmt.Errorf("file %s of %s has no numRecords in its stats", f.Path, table)
		}
		n += sign * *st.NumRecords
		return nil
	})
	return n, err
}

// commits is how many versions a table has.
func commits(table string) (int64, error) {
	names, err := filepath.Glob(filepath.Join(table, "_delta_log", "*.json"))
	return int64(len(names)), err
}

// action is the part of a Delta log action read here.
type action struct {
	Add    *fileAction `json:"add"`
	Remove *fileAction `json:"remove"`
}

type fileAction struct {
	Path  string `json:"path"`
	Stats string `json:"stats"`
}

// eachAction calls fn with every action of every commit file of table (no
// checkpoints are written at these table sizes).
func eachAction(table string, fn func(action) error) error {
	names, err := filepath.Glob(filepath.Join(table, "_delta_log", "*.json"))
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("%s has no commits", table)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(data)) {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var a action
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if a.Remove != nil && a.Remove.Stats == "" {
				return fmt.Errorf("%s removes a file without stats", name)
			}
			if err := fn(a); err != nil {
				return err
			}
		}
	}
	return nil
}

// median returns the run with the median wall time, with the range of all
// runs' wall times.
func median(rs []result) result {
	if len(rs) == 0 {
		return result{}
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.wall, b.wall) })
	m := sorted[len(sorted)/2]
	m.fast, m.slo, m.runs = sorted[0].wall, sorted[len(sorted)-1].wall, len(sorted)
	return m
}

func render(s settings, broken int, pl []result, sp result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# deserialize benchmark\n\n")
	fmt.Fprintf(&b, "A raw table of %d seed-shaped readings (`{\"sensor_id\",\"measurement\",\"value\",\"unit\",\"ts\"}`, ~110 bytes; "+
		"MQTT topic `plant/<line>/<device>/<measurement>` as the Kafka key; the bridge's headers; %d broken: bad JSON, a missing field, "+
		"`\"NaN\"` as the value, `ts` 30 days old, a unit not allowed), built once by producing the records to Kafka and running the real "+
		"`ingest --run-once` over them. Each run starts from a fresh copy of that warehouse.\n\n", s.rows, broken)
	fmt.Fprintf(&b, "- **plantlake**: `deserialize --run-once` with the default rules (the five built-in checks, topic match, "+
		"three CEL rules), pinned with `taskset -c %s` and `GOMAXPROCS=1`, Kafka and a fresh catalog on `taskset -c %s`; "+
		"from the process start to its exit: reading raw, dead letters and bronze written, fsynced and committed.\n", s.benchCPU, s.otherCPU)
	if s.sparkPython != "" {
		fmt.Fprintf(&b, "- **Spark**: the original design's Job 2 (services/deserialize/bench/spark_job2.py): `from_json` with the seed's schema, "+
			"required fields, finite value, `ts` window, unit allowed; bronze and dead letters written as Delta; `local[1]` "+
			"with delta-spark, the whole process (Python driver and JVM) pinned with `taskset -c %s`. \"wall\" is the process start to "+
			"its exit (JVM start included); \"job\" is from the session ready to the last write committed.\n", s.benchCPU)
	}
	fmt.Fprintf(&b, "\nEach side ran %d times, interleaved; the row is the median run by wall time, with the range of all runs.\n\n", s.runs)
	fmt.Fprintf(&b, "| engine | wall time | rows/s | range of runs | job time | rows/s (job) | CPU time | CPU µs/row | CPU / wall | waited for the core | peak RSS | bronze rows | dead letters | bronze versions |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	rate := func(d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(s.rows) / d.Seconds()
	}
	row := func(name string, r result, job time.Duration) {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f–%.0f | %s | %.0f | %s | %.2f | %.0f%% | %s | %.1f MiB | %d | %d | %d |\n",
			name, r.wall.Round(time.Millisecond), rate(r.wall), rate(r.slo), rate(r.fast), job.Round(time.Millisecond), rate(job),
			r.cpu.Round(time.Millisecond), float64(r.cpu.Microseconds())/float64(s.rows), 100*r.cpu.Seconds()/r.wall.Seconds(),
			r.runDelay.Round(time.Millisecond), float64(r.hwmKiB)/1024,
			r.bronze, r.dead, r.commits)
	}
	for _, r := range pl {
		name := "plantlake deserialize (defaults)"
		if r.flags != "" {
			name = "plantlake deserialize `" + r.flags + "`"
		}
		row(name, r, r.wall)
	}
	if s.sparkPython != "" {
		row("Spark local[1] (Job 2)", sp, sp.job)
		fmt.Fprintf(&b, "\n| plantlake / Spark | wall (end to end) | against Spark's job time alone | CPU per row |\n|---|---|---|---|\n")
		for _, r := range pl {
			name := "(defaults)"
			if r.flags != "" {
				name = "`" + r.flags + "`"
			}
			fmt.Fprintf(&b, "| %s | **%.1f×** | **%.1f×** | %.1f× less |\n", name,
				sp.wall.Seconds()/r.wall.Seconds(), sp.job.Seconds()/r.wall.Seconds(), sp.cpu.Seconds()/r.cpu.Seconds())
		}
	}
	fmt.Fprintf(&b, "\nTargets: ≥ 200,000 rows/s on one core, ≥ 3× Spark `local[1]`, peak RSS < 256 MiB. CPU time is user + system "+
		"(rusage of deserialize; for Spark, the JVM's and the Python driver's, read before the session stops); peak RSS is VmHWM "+
		"(for Spark, the JVM's plus the driver's). CPU / wall below 100%% on a process held to one core means it waited: "+
		"for I/O, for the catalog, or for the core, which other work on the machine shared; \"waited for the core\" is the part "+
		"spent runnable but not running (the run_delay of the threads of the process and its children, from "+
		"/proc/PID/task/*/schedstat, sampled every 20 ms). For plantlake the job time is its wall time. Machine: %s/%s, %d cores, %s. "+
		"Generated by `make bench` (plantlake only) or `make bench-peers` (with Spark), services/deserialize/bench, on %s.\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	return b.String()
}
