// Command bench measures merge against delta-rs on the same data (issue 13
// item 5): a bronze batch of -batch rows, -dup of whose keys are already in
// gold, merged into gold tables of each of -sizes rows. Gold is laid out as
// compaction leaves it: one partition per day of 1,000,000 rows, files of
// 250,000 rows sorted by (sensor_id, ts); the batch continues the newest
// day, and its duplicates are the newest gold readings (QoS 1 redeliveries
// are recent).
//
// plantlake is the merge binary with --run-once, pinned to one core with
// taskset, its wall time and peak RSS taken from the process; delta-rs is
// DeltaTable.merge(...).when_not_matched_insert_all() (and
// when_matched_update_all() for latest_wins) on a hard-linked copy of the
// same gold, unpinned. With -spark-python (make bench-peers), Spark's MERGE
// INTO with delta-spark on local[1] (bench/spark_merge.py), pinned to the
// same core as merge, runs on a third copy. The table goes to -out.
//
//	go run ./bench -sizes 1000000,10000000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

const (
	rowsPerDay  = 1_000_000
	rowsPerFile = 250_000
	sensors     = 500 // × 2 measurements = 1,000 keys per instant
	keysPerTick = 2 * sensors
	ticksPerDay = rowsPerDay / keysPerTick
	tick        = 86400 * time.Second / ticksPerDay
)

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	sizes := flag.String("sizes", "1000000,10000000", "gold sizes in rows (multiples of 1,000,000)")
	batch := flag.Int("batch", 100_000, "bronze batch rows")
	dup := flag.Float64("dup", 0.05, "share of the batch whose keys are in gold")
	strategies := flag.String("strategies", "first_wins,latest_wins", "strategies to measure")
	mergeArgs := flag.String("merge-args", "", "extra flags for the merge process, space-separated")
	dir := flag.String("dir", "", "work folder (a temporary one when empty; removed at the end)")
	sparkPython := flag.String("spark-python", "", "python of a venv with pyspark and delta-spark; set, Spark MERGE INTO on local[1] runs too (make bench-peers)")
	out := flag.String("out", "", "where to write the Markdown table (none when empty)")
	flag.Parse()
	ctx := context.Background()
	work := *dir
	if work == "" {
		d, err := os.MkdirTemp("", "merge-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	bin, err := buildMerge(ctx, work)
	if err != nil {
		return err
	}
	py, err := devstack.PythonPath(ctx, nil)
	if err != nil {
		return err
	}
	script, err := scriptPath()
	if err != nil {
		return err
	}
	sparkScript := ""
	if *sparkPython != "" {
		sparkScript = filepath.Join(filepath.Dir(script), "spark_merge.py")
	}
	fmt.Printf("%-10s %-11s %9s %9s %6s %9s %9s %6s %7s %5s %9s %9s %6s\n", "gold rows", "strategy", "plantlake", "delta-rs", "ratio",
		"pl CPU", "dr CPU", "ratio", "RSS MiB", "cand", "Spark", "Spark CPU", "ratio")
	var rows []row
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < rowsPerDay || n%rowsPerDay != 0 {
			return fmt.Errorf("-sizes: %q is not a multiple of %d", s, rowsPerDay)
		}
		for _, strategy := range strings.Split(*strategies, ",") {
			load0 := loadAvg()
			r, err := round(ctx, filepath.Join(work, fmt.Sprintf("%d-%s", n, strategy)), bin, py, script, *sparkPython, sparkScript,
				n, *batch, *dup, strategy, strings.Fields(*mergeArgs))
			if err != nil {
				return err
			}
			rows = append(rows, row{n: n, strategy: strategy, r: r, load: load0 + " / " + loadAvg()})
			fmt.Printf("%-10d %-11s %8.2fs %8.2fs %5.2fx %8.2fs %8.2fs %5.2fx %7d %5s %8.2fs %8.2fs %5.2fx\n", n, strategy,
				r.plantlake.Seconds(), r.deltaRS.Seconds(), r.deltaRS.Seconds()/r.plantlake.Seconds(),
				r.plantlakeCPU.Seconds(), r.deltaRSCPU.Seconds(), r.deltaRSCPU.Seconds()/r.plantlakeCPU.Seconds(),
				r.rssKiB/1024, r.candidates, r.spark.Seconds(), r.sparkCPU.Seconds(), r.spark.Seconds()/r.plantlake.Seconds())
		}
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(markdown(rows, *batch, *dup, *sparkPython != "", *mergeArgs)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// row is one line of the report.
type row struct {
	n        int
	strategy string
	r        result
	load     string
}

// loadAvg is the machine's 1-minute load average, from /proc/loadavg.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

// markdown is the report: one line per gold size and strategy, then how
// each engine's time grows from the smallest to the largest gold.
func markdown(rows []row, batch int, dup float64, spark bool, mergeArgs string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# merge benchmark\n\n")
	fmt.Fprintf(&b, "A bronze batch of %d rows, %.0f %% of its keys the newest gold readings (QoS 1 redeliveries), the rest new "+
		"readings of the same day, merged into gold laid out as compaction leaves it: a partition of 1 M rows per day, files of "+
		"250,000 rows sorted by `(sensor_id, ts)`. Each engine merges into its own hard-linked copy of the same gold.\n\n", batch, dup*100)
	fmt.Fprintf(&b, "- **plantlake**: `merge --run-once` (%s), `taskset -c 1`, `GOMAXPROCS=1`; time from the process start to the batch committed.\n",
		strings.TrimSpace("defaults "+mergeArgs))
	fmt.Fprintf(&b, "- **delta-rs**: `DeltaTable.merge(...)` on `(sensor_id, measurement, ts)`, `when_not_matched_insert_all()` "+
		"(and `when_matched_update_all()` for latest_wins), bronze read included (bench/drmerge.py), unpinned.\n")
	if spark {
		fmt.Fprintf(&b, "- **Spark**: `MERGE INTO` with delta-spark on `local[1]` (bench/spark_merge.py), the whole process (driver and JVM) "+
			"pinned with `taskset -c 1`; time from the session ready to the merge committed, bronze read included; the predicate adds "+
			"`t.event_date = s.event_date` (Spark's best case: without it Spark scans every day).\n")
	}
	fmt.Fprintf(&b, "\n| gold rows | strategy | plantlake s | delta-rs s | Spark s | delta-rs / plantlake | Spark / plantlake | CPU s plantlake / delta-rs / Spark | plantlake peak RSS MiB | Spark peak RSS MiB | candidate files | load before / after |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	sec := func(d time.Duration) string {
		if d == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", d.Seconds())
	}
	ratio := func(a, b time.Duration) string {
		if a == 0 || b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a.Seconds()/b.Seconds())
	}
	for _, x := range rows {
		r := x.r
		sparkRSS := "–"
		if r.sparkRSSKiB > 0 {
			sparkRSS = strconv.FormatInt(r.sparkRSSKiB/1024, 10)
		}
		fmt.Fprintf(&b, "| %d M | %s | %s | %s | %s | %s | %s | %s / %s / %s | %d | %s | %s | %s |\n", x.n/1_000_000, x.strategy,
			sec(r.plantlake), sec(r.deltaRS), sec(r.spark), ratio(r.deltaRS, r.plantlake), ratio(r.spark, r.plantlake),
			sec(r.plantlakeCPU), sec(r.deltaRSCPU), sec(r.sparkCPU), r.rssKiB/1024, sparkRSS, r.candidates, x.load)
	}
	// Growth from the smallest gold to the largest, per strategy.
	fmt.Fprintf(&b, "\n| strategy | gold rows | plantlake growth | delta-rs growth | Spark growth |\n|---|---|---|---|---|\n")
	for _, x := range rows {
		for _, y := range rows {
			if y.strategy != x.strategy || y.n <= x.n {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d M → %d M | %s | %s | %s |\n", x.strategy, x.n/1_000_000, y.n/1_000_000,
				ratio(y.r.plantlake, x.r.plantlake), ratio(y.r.deltaRS, x.r.deltaRS), ratio(y.r.spark, x.r.spark))
		}
	}
	fmt.Fprintf(&b, "\nTargets: faster than both peers at 10 M, less than 1.5× slower at 10 M than at 1 M, peak RSS < 256 MiB. "+
		"CPU time is user + system (rusage; for Spark the JVM's and the driver's, read when the merge ends); on a shared "+
		"machine it is the steadier measure, wall time measures the neighbours as much. Load is the 1-minute load average "+
		"before and after the line's three runs (2 cores). Machine: %s/%s, %d cores, %s. Generated by services/merge/bench "+
		"(`make bench`: plantlake and delta-rs; `make bench-peers`: with Spark) on %s.\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	return b.String()
}

type result struct {
	plantlake, deltaRS time.Duration
	// plantlakeCPU and deltaRSCPU are the processes' user + system time:
	// on a shared machine wall time measures the neighbours as much.
	plantlakeCPU, deltaRSCPU time.Duration
	rssKiB                   int64
	candidates               string
	// spark is Spark's job time (zero when not run), sparkCPU its JVM's
	// and driver's CPU time, sparkRSSKiB their peak RSS.
	spark, sparkCPU time.Duration
	sparkRSSKiB     int64
}

func cpuTime(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

// round builds gold of n rows and a bronze batch, then merges it both ways.
func round(ctx context.Context, dir, bin, py, script, sparkPy, sparkScript string, n, batch int, dup float64, strategy string, extra []string) (result, error) {
	var res result
	wh := filepath.Join(dir, "warehouse")
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Warehouse: wh, Args: []string{"--auto-maintenance=false"}})
	if err != nil {
		return res, err
	}
	defer cat.Stop(10 * time.Second)
	conn, err := cat.Dial()
	if err != nil {
		return res, err
	}
	defer conn.Close()
	client := catalogv1.NewCatalogServiceClient(conn)
	if err := writeGold(ctx, client, n); err != nil {
		return res, err
	}
	bw, err := bronzetest.Open(ctx, client)
	if err != nil {
		return res, err
	}
	if _, err := bw.Write(ctx, bronzeBatch(n, batch, dup)); err != nil {
		return res, err
	}
	goldDir := filepath.Join(wh, "gold", "plant_sensor_readings")
	refDir := filepath.Join(dir, "ref")
	sparkDir := filepath.Join(dir, "spark")
	for _, d := range []string{refDir, sparkDir} {
		if out, err := exec.CommandContext(ctx, "cp", "-al", goldDir, d).CombinedOutput(); err != nil {
			return res, fmt.Errorf("copy gold: %w: %s", err, out)
		}
	}

	logPath := filepath.Join(dir, "merge.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return res, err
	}
	args := append([]string{"-c", "1", bin, "--run-once", "--catalog-addr", cat.Addr(),
		"--kafka-brokers", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--strategy", strategy, "--batch-max-rows", strconv.Itoa(2 * batch), "--batch-max-age", "50ms", "--log-level", "debug"}, extra...)
	cmd := exec.CommandContext(ctx, "taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	err = cmd.Start()
	if err == nil {
		// Peak RSS is the sampled VmHWM: wait4's maxrss would count this
		// program's own RSS (the gold tables it built), which Linux
		// carries through the vfork and exec into the child's.
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		tick := time.NewTicker(20 * time.Millisecond)
	wait:
		for {
			if kib, herr := devstack.VmHWMKiB(cmd.Process.Pid); herr == nil {
				res.rssKiB = max(res.rssKiB, kib)
			}
			select {
			case err = <-done:
				break wait
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	logf.Close()
	if err != nil {
		data, _ := os.ReadFile(logPath)
		return res, fmt.Errorf("merge: %w\n%s", err, data)
	}
	res.plantlakeCPU = cpuTime(cmd.ProcessState)
	data, _ := os.ReadFile(logPath)
	// The merge's time is from the start to the commit of the batch: the
	// process then waits for its Kafka events consumer, which has no broker
	// here, to give up.
	m := regexp.MustCompile(`time=(\S+) level=INFO msg="run-once: caught up"`).FindSubmatch(data)
	if m == nil {
		return res, fmt.Errorf("merge did not log that it caught up:\n%s", data)
	}
	caught, err := time.Parse(time.RFC3339Nano, string(m[1]))
	if err != nil {
		return res, err
	}
	res.plantlake = caught.Sub(start)
	if m := regexp.MustCompile(`counts="\{[^}]*CandidateFiles:(\d+)`).FindSubmatch(data); m != nil {
		res.candidates = string(m[1])
	}

	var out bytes.Buffer
	py2 := exec.CommandContext(ctx, py, script, refDir, filepath.Join(wh, "bronze", "plant_sensor_readings"), strategy)
	py2.Stdout, py2.Stderr = &out, os.Stderr
	py2.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	if err := py2.Run(); err != nil {
		return res, fmt.Errorf("delta-rs merge: %w", err)
	}
	res.deltaRSCPU = cpuTime(py2.ProcessState)
	secs, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
	if err != nil {
		return res, fmt.Errorf("delta-rs merge printed %q", out.String())
	}
	res.deltaRS = time.Duration(secs * float64(time.Second))
	if sparkPy == "" {
		return res, nil
	}
	rep, err := runSpark(ctx, dir, sparkPy, sparkScript, sparkDir, filepath.Join(wh, "bronze", "plant_sensor_readings"), strategy)
	if err != nil {
		return res, err
	}
	// Spark must have done the same merge as plantlake.
	wantUpdated := 0
	if strategy == "latest_wins" {
		wantUpdated = int(float64(batch) * dup)
	}
	if rep.Inserted != batch-int(float64(batch)*dup) || rep.Updated != wantUpdated {
		return res, fmt.Errorf("spark inserted %d and updated %d rows, want %d and %d", rep.Inserted, rep.Updated,
			batch-int(float64(batch)*dup), wantUpdated)
	}
	res.spark = time.Duration(rep.JobSeconds * float64(time.Second))
	res.sparkCPU = time.Duration(rep.CPUSeconds * float64(time.Second))
	res.sparkRSSKiB = rep.PeakRSSKiB
	return res, nil
}

// sparkReport is the JSON line spark_merge.py prints last.
type sparkReport struct {
	JobSeconds float64 `json:"job_seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSKiB int64   `json:"peak_rss_kib"`
	Inserted   int     `json:"inserted"`
	Updated    int     `json:"updated"`
}

// runSpark runs spark_merge.py pinned to core 1 and returns its report.
func runSpark(ctx context.Context, dir, py, script, goldDir, bronzeDir, strategy string) (sparkReport, error) {
	var rep sparkReport
	logPath := filepath.Join(dir, "spark.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return rep, err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "taskset", "-c", "1", py, script, goldDir, bronzeDir, strategy)
	cmd.Stdout, cmd.Stderr = &out, logf
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	err = cmd.Run()
	logf.Close()
	if err != nil {
		data, _ := os.ReadFile(logPath)
		return rep, fmt.Errorf("spark merge: %w\n%s", err, tailLines(string(data), 30))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		return rep, fmt.Errorf("spark merge printed %q: %w", out.String(), err)
	}
	return rep, nil
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// writeGold creates gold with n rows: days of rowsPerDay, files of
// rowsPerFile sorted by (sensor_id, ts), one commit per day.
func writeGold(ctx context.Context, client catalogv1.CatalogServiceClient, n int) error {
	t, err := tablesink.Open(ctx, client, gold.Table, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	store, err := tablesink.OpenLocation(ctx, t.Location())
	if err != nil {
		return err
	}
	b := gold.NewBuilder(nil)
	defer b.Release()
	version := int64(0)
	for d := range n / rowsPerDay {
		date := gold.EventDateOf(day0.AddDate(0, 0, d).UnixMicro())
		req := &catalogv1.CommitRequest{Table: gold.Name, ReadVersion: version, Operation: "WRITE", BlindAppend: true}
		// Files hold sensors in ranges: rowsPerFile / (2 × ticksPerDay) sensors each.
		perFile := rowsPerFile / (2 * ticksPerDay)
		for s0 := 0; s0 < sensors; s0 += perFile {
			for s := s0; s < s0+perFile; s++ {
				for _, m := range []string{"pressure", "temperature"} {
					for k := range ticksPerDay {
						r := goldRow(s, m, day0.AddDate(0, 0, d).Add(time.Duration(k)*tick), int64(d*rowsPerDay+s*ticksPerDay+k))
						r.EventDate = date
						b.Append(&r)
					}
				}
			}
			rec := b.NewRecord()
			add, err := datafile.Write(ctx, store, datafile.Options{
				PartitionColumns: []string{gold.PartitionColumn},
				PartitionValues:  map[string]string{gold.PartitionColumn: gold.FormatDate(date)},
			}, rec)
			rec.Release()
			if err != nil {
				return err
			}
			req.Adds = append(req.Adds, &catalogv1.AddFile{Path: add.Path, PartitionValues: add.PartitionValues,
				Size: add.Size, ModificationTime: add.ModificationTime, DataChange: true, Stats: add.Stats})
		}
		resp, err := client.Commit(ctx, req)
		if err != nil {
			return fmt.Errorf("commit gold day %d: %w", d, err)
		}
		version = resp.GetVersion()
		runtime.GC()
	}
	return nil
}

func sensorID(s int) string { return fmt.Sprintf("sensor%04d", s) }

func goldRow(s int, m string, ts time.Time, offset int64) gold.Row {
	return gold.Row{
		SensorID: sensorID(s), Measurement: m, Unit: "C", Plant: "p1", Line: "l1", Device: "dev-" + sensorID(s),
		MQTTTopic: "plant/l1/dev-" + sensorID(s) + "/" + m, KafkaTopic: "plant_sensor_readings_raw",
		Value: float64(offset % 1000), TS: ts.UnixMicro(), BridgeTS: ts.UnixMicro(), MergedAt: ts.UnixMicro(),
		KafkaPartition: int32(offset % 6), KafkaOffset: offset, RawVersion: 1, BronzeVersion: 1,
	}
}

// bronzeBatch is batch readings: dup of them repeat the newest gold keys,
// the rest continue the newest day after gold's last instant.
func bronzeBatch(n, batch int, dup float64) []bronzetest.Reading {
	lastDay := day0.AddDate(0, 0, n/rowsPerDay-1)
	dups := int(float64(batch) * dup)
	var out []bronzetest.Reading
	add := func(s int, m string, ts time.Time) {
		out = append(out, bronzetest.Reading{SensorID: sensorID(s), Measurement: m, Line: "l1", Value: 1,
			TS: ts, RawVersion: 2, Topic: "plant_sensor_readings_raw", Offset: int64(len(out))})
	}
	for k := 0; len(out) < dups; k++ { // the newest instants of gold, backwards
		ts := lastDay.Add(time.Duration(ticksPerDay-1-k) * tick)
		for s := 0; s < sensors && len(out) < dups; s++ {
			for _, m := range []string{"pressure", "temperature"} {
				add(s, m, ts)
			}
		}
	}
	// New instants after gold's last one, spaced a second apart (the same day).
	for k := 1; len(out) < batch; k++ {
		ts := lastDay.Add(time.Duration(ticksPerDay-1)*tick + time.Duration(k)*time.Second/10)
		for s := 0; s < sensors && len(out) < batch; s++ {
			for _, m := range []string{"pressure", "temperature"} {
				add(s, m, ts)
			}
		}
	}
	return out
}

// moduleDir is services/merge, found from this file's path.
func moduleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the source tree")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

func scriptPath() (string, error) {
	d, err := moduleDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "bench", "drmerge.py"), nil
}

func buildMerge(ctx context.Context, dir string) (string, error) {
	mod, err := moduleDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "merge")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/merge")
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build merge: %w\n%s", err, out)
	}
	return bin, nil
}
