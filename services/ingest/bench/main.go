// Command bench measures ingest: messages per second from a pre-filled
// topic of 1,000,000 records of one shape (bridge-shaped, headerless, or
// large) into the raw table, with the ingest process
// held to one core (taskset -c 1, GOMAXPROCS=1, librdkafka's threads
// included, commit time included) while Kafka and the catalog run on the
// other core (taskset -c 0), and the process's peak RSS (VmHWM). It prints
// a Markdown table and writes it to bench/results/ingest.md.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
	"github.com/plantlake/plantlake/services/ingest/internal/stack"
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

// settings of one measured run.
type settings struct {
	records int
	// largeRecords is the number of records of the large shape.
	largeRecords int
	ingestCPU    string
	otherCPU     string
	// runs is how many times each variant is measured; the median run is reported.
	runs int
	// variants are the extra ingest flags of each measured run.
	variants [][]string
	// shapes are the record shapes measured, each pre-filled in a topic of its own.
	shapes []stack.Shape
}

// count is the number of records of shape.
func (s settings) count(shape stack.Shape) int {
	if shape == stack.Large {
		return s.largeRecords
	}
	return s.records
}

// shapeTopic is the topic the bench pre-fills with records of shape.
func shapeTopic(shape stack.Shape) string {
	if shape == stack.BridgeShaped {
		return stack.TopicRaw
	}
	return "bench_" + shape.String()
}

// variantFlag collects repeated --variant values.
type variantFlag [][]string

func (v *variantFlag) String() string { return fmt.Sprint(*v) }
func (v *variantFlag) Set(s string) error {
	*v = append(*v, strings.Fields(s))
	return nil
}

func run(ctx context.Context) error {
	records := flag.Int("records", 1_000_000, "records of the bridge and headerless shapes to pre-fill and ingest")
	largeRecords := flag.Int("large-records", 5_000, "records of the large shape to pre-fill and ingest")
	out := flag.String("out", "", "where to write the Markdown table (default: <repo>/bench/results/ingest.md)")
	keep := flag.Bool("keep", false, "keep the work folder")
	var variants variantFlag
	flag.Var(&variants, "variant", "extra ingest flags of one measured run, space-separated, after optional NAME=value environment variables and an optional leading @PATH of another ingest binary (repeatable; default: one run with none)")
	ingestCPU := flag.String("ingest-cpus", "1", "taskset CPU list for ingest")
	otherCPU := flag.String("other-cpus", "0", "taskset CPU list for Kafka and the catalog")
	runs := flag.Int("runs", 3, "measured runs per variant, interleaved; the median by messages/s is reported")
	shapes := flag.String("shapes", "bridge,headerless,large", "record shapes to measure, comma-separated: bridge (6 headers, ~110-byte JSON), headerless (key and ~110-byte JSON only), large (64 KiB JSON, no headers)")
	flag.Parse()
	s := settings{records: *records, largeRecords: *largeRecords, ingestCPU: *ingestCPU, otherCPU: *otherCPU, runs: max(*runs, 1), variants: variants}
	for _, name := range strings.Split(*shapes, ",") {
		shape, err := stack.ParseShape(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		s.shapes = append(s.shapes, shape)
	}
	if len(s.variants) == 0 {
		s.variants = [][]string{nil}
	}
	if *out == "" {
		_, file, _, _ := runtime.Caller(0)
		*out = filepath.Join(filepath.Dir(file), "..", "..", "..", "bench", "results", "ingest.md")
	}

	dir, err := os.MkdirTemp("", "ingest-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	fmt.Fprintln(os.Stderr, "bench: work folder", dir)

	catalogBin, ingestBin, err := stack.Build(ctx, dir)
	if err != nil {
		return err
	}
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(dir, "kafka"), HeapMB: 768})
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	defer kafka.Stop()
	if err := pin(kafka.Pid(), s.otherCPU); err != nil {
		return err
	}
	if err := kafka.CreateTopics(ctx, 6, stack.TopicRaw, stack.TopicOversized); err != nil {
		return err
	}
	for _, shape := range s.shapes {
		if err := prefill(ctx, kafka, shape, s.count(shape)); err != nil {
			return err
		}
	}

	// A real cluster has its __consumer_offsets topic already; create it
	// before the clock starts.
	if err := warmGroupCoordinator(ctx, kafka.Brokers()); err != nil {
		return err
	}
	// Runs are interleaved (variant A, B, A, B, ...) so that a slow spell on
	// the machine does not fall on one variant only.
	measured := make([][]result, len(s.shapes)*len(s.variants))
	for r := range s.runs {
		for j, shape := range s.shapes {
			for i, v := range s.variants {
				k := j*len(s.variants) + i
				n := r*len(measured) + k
				res, err := measureVariant(ctx, s, n, shape, v, dir, catalogBin, ingestBin, kafka.Brokers())
				if err != nil {
					return err
				}
				measured[k] = append(measured[k], res)
			}
		}
	}
	results := make([]result, len(measured))
	for i, rs := range measured {
		results[i] = median(rs)
	}
	table := render(s, results)
	fmt.Print(table)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(table), 0o644)
}

// prefill creates shape's topic if it is not the raw one and fills it with
// records of shape.
func prefill(ctx context.Context, kafka *devstack.KafkaBroker, shape stack.Shape, records int) error {
	topic := shapeTopic(shape)
	if topic != stack.TopicRaw {
		if err := kafka.CreateTopics(ctx, 6, topic); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: producing %d %s records\n", records, shape)
	pr, err := stack.NewProducer(kafka.Brokers())
	if err != nil {
		return err
	}
	pr.Shape = shape
	start := time.Now()
	err = pr.ProduceTo(ctx, topic, 0, records, 0)
	pr.Close()
	if err != nil {
		return fmt.Errorf("pre-fill %s: %w", topic, err)
	}
	fmt.Fprintf(os.Stderr, "bench: produced in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// measureVariant runs one variant on one shape's topic against a fresh catalog and warehouse.
func measureVariant(ctx context.Context, s settings, i int, shape stack.Shape, extra []string, dir, catalogBin, ingestBin, brokers string) (result, error) {
	cat, err := devstack.StartCatalog(ctx, devstack.CatalogConfig{Bin: catalogBin, Warehouse: filepath.Join(dir, fmt.Sprintf("warehouse-%d", i)),
		Brokers: brokers, LogPath: filepath.Join(dir, fmt.Sprintf("catalog-%d.log", i)), CPUs: s.otherCPU})
	if err != nil {
		return result{}, err
	}
	defer cat.Stop(10 * time.Second)
	// A leading @PATH word runs that ingest binary instead of the one built
	// from this tree (to compare with another commit); leading NAME=value
	// words are environment variables for ingest.
	var label []string
	if len(extra) > 0 && strings.HasPrefix(extra[0], "@") {
		ingestBin, label, extra = extra[0][1:], extra[:1], extra[1:]
	}
	var env []string
	for len(extra) > 0 && !strings.HasPrefix(extra[0], "-") && strings.Contains(extra[0], "=") {
		env, extra = append(env, extra[0]), extra[1:]
	}
	args := append([]string{"--group", fmt.Sprintf("bench-%d", i), "--topics", shapeTopic(shape)}, extra...)
	fmt.Fprintf(os.Stderr, "bench: run %d: %s records: ingest %s\n", i, shape, strings.Join(extra, " "))
	res, err := measure(ctx, s, ingestBin, brokers, cat.Addr(), filepath.Join(dir, fmt.Sprintf("ingest-%d.log", i)), args, env)
	if err != nil {
		return result{}, err
	}
	res.flags = strings.Join(slices.Concat(label, env, extra), " ")
	res.shape = shape
	if res.dataBytes, err = parquetBytes(filepath.Join(dir, fmt.Sprintf("warehouse-%d", i))); err != nil {
		return result{}, err
	}
	return res, verify(ctx, cat.Addr(), shapeTopic(shape), s.count(shape))
}

// parquetBytes is the size of every Parquet file under dir.
func parquetBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of the data files: %w", err)
	}
	return n, nil
}

// median returns the run with the median wall time, with the range of all
// runs' wall times in slowest and fastest.
func median(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.wall, b.wall) })
	m := sorted[len(sorted)/2]
	m.fastest, m.slowest, m.runs = sorted[0].wall, sorted[len(sorted)-1].wall, len(sorted)
	return m
}

// result of one measured run.
type result struct {
	wall      time.Duration
	vmHWMKiB  int64
	cpu       time.Duration
	commits   int
	coreBusy  map[string]float64 // "cpu0" → fraction busy during the run
	flags     string
	shape     stack.Shape
	pollWait  time.Duration // time ingest waited for records to arrive
	dataBytes int64         // size of the table's Parquet files
	// Of the variant's runs, when this is their median: how many, and the
	// fastest and slowest wall time.
	runs             int
	fastest, slowest time.Duration
}

// measure runs ingest --run-once pinned to one core until it exits.
func measure(ctx context.Context, s settings, bin, brokers, catalogAddr, logPath string, extra, env []string) (result, error) {
	args := append([]string{
		"--run-once",
		"--kafka-brokers", brokers,
		"--catalog-addr", catalogAddr,
		"--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", "",
		"--log-level", "debug",
	}, extra...)
	cpuBefore, _ := readCPUStat()
	start := time.Now()
	p, err := stack.Start(stack.Spec{Name: "ingest", Bin: bin, Args: args, LogPath: logPath, CPUs: s.ingestCPU,
		Env: append([]string{"GOMAXPROCS=1"}, env...)})
	if err != nil {
		return result{}, err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var hwm int64
	// taskset execs the ingest binary in place, so the pid is ingest's.
	for done := false; !done; {
		select {
		case <-p.Done():
			done = true
		case <-tick.C:
			if kb, err := devstack.VmHWMKiB(p.Pid()); err == nil {
				hwm = max(hwm, kb)
			}
		case <-ctx.Done():
			p.Kill()
			return result{}, ctx.Err()
		}
	}
	wall := time.Since(start)
	cpuAfter, _ := readCPUStat()
	if err := p.Wait(); err != nil {
		return result{}, fmt.Errorf("ingest: %w\n%s", err, p.LogTail(20))
	}
	r := result{wall: wall, vmHWMKiB: hwm, cpu: p.CPUTime(), coreBusy: busy(cpuBefore, cpuAfter)}
	data, _ := os.ReadFile(logPath)
	r.commits = strings.Count(string(data), "batch committed")
	if m := regexp.MustCompile(`waited_for_records=(\S+)`).FindSubmatch(data); m != nil {
		r.pollWait, _ = time.ParseDuration(string(m[1]))
	}
	// ingest logs its own VmHWM at the end: the samples may miss a last rise.
	if m := regexp.MustCompile(`peak_rss_kib=(\d+)`).FindSubmatch(data); m != nil {
		if kib, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
			r.vmHWMKiB = max(r.vmHWMKiB, kib)
		}
	}
	return r, nil
}

// verify checks through the catalog that the table's offsets of topic account for every record.
func verify(ctx context.Context, addr, topic string, records int) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := catalogv1.NewCatalogServiceClient(conn)
	total := int64(0)
	for p := range int32(6) {
		resp, err := client.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: rawtable.Name, AppId: rawtable.AppID(topic, p)})
		if err != nil {
			return fmt.Errorf("txn of partition %d: %w", p, err)
		}
		if resp.GetFound() {
			total += resp.GetVersion() + 1
		}
	}
	if total != int64(records) {
		return fmt.Errorf("the raw table's offsets cover %d records, want %d", total, records)
	}
	return nil
}

func render(s settings, results []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ingest benchmark\n\n")
	fmt.Fprintf(&b, "%d records of each shape (%d of the large one) pre-filled in a topic of 6 partitions (bridge: 6 headers and a ~110-byte JSON payload, in `%s`; "+
		"headerless: key = MQTT topic and the same ~110-byte JSON, no headers, in `bench_headerless`; large: %d KiB JSON payloads, no headers, in `bench_large`), "+
		"ingested into `%s` by `ingest --run-once`, pinned with `taskset -c %s` and `GOMAXPROCS=1` "+
		"(librdkafka's threads share the core); Kafka and the catalog on `taskset -c %s`. The time runs from the process "+
		"start to its exit: group join, reading the table's offsets, every commit (Parquet written and fsynced, "+
		"catalog commit) and the final one included. Targets: ≥ 200,000 messages/s, peak RSS < 256 MiB.\n\n",
		s.records, s.largeRecords, stack.TopicRaw, stack.LargePayloadBytes>>10, rawtable.Name, s.ingestCPU, s.otherCPU)
	fmt.Fprintf(&b, "Each variant ran %d times, interleaved with the others; the row is the median run by wall time, "+
		"with the range of all runs' messages/s.\n\n", s.runs)
	fmt.Fprintf(&b, "| records | extra settings | wall time | messages/s | range of runs | CPU time | CPU µs/message | waited for records | peak RSS (VmHWM) | data bytes/message | commits | cpu%s busy | cpu%s busy |\n",
		s.ingestCPU, s.otherCPU)
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		flags := "(defaults)"
		if r.flags != "" {
			flags = "`" + r.flags + "`"
		}
		n := s.count(r.shape)
		rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f–%.0f | %s | %.2f | %s | %.1f MiB | %.1f | %d | %.0f%% | %.0f%% |\n",
			r.shape, flags, r.wall.Round(time.Millisecond), rate(r.wall), rate(r.slowest), rate(r.fastest), r.cpu.Round(time.Millisecond),
			float64(r.cpu.Microseconds())/float64(n), r.pollWait, float64(r.vmHWMKiB)/1024,
			float64(r.dataBytes)/float64(n), r.commits,
			100*r.coreBusy["cpu"+s.ingestCPU], 100*r.coreBusy["cpu"+s.otherCPU])
	}
	fmt.Fprintf(&b, "\nCPU time is the ingest process's user + system time (rusage), librdkafka's threads included; "+
		"\"waited for records\" is the time its loop sat in Poll with nothing to do (the fetcher or Kafka was the limit); "+
		"a core busier than that was shared with other work on the machine. Machine: %s/%s, %s. "+
		"Generated by `make bench` (services/ingest/bench) on %s.\n",
		runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	return b.String()
}

// pin moves every thread of pid to cpus.
func pin(pid int, cpus string) error {
	if pid == 0 {
		return nil
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset kafka: %w: %s", err, out)
	}
	return nil
}

// warmGroupCoordinator joins a throwaway consumer group once, which makes
// Kafka create its __consumer_offsets topic.
func warmGroupCoordinator(ctx context.Context, brokers string) error {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "bench-warmup", "go.logs.channel.enable": false})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Subscribe(stack.TopicOversized, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c.Poll(100)
		if parts, err := c.Assignment(); err == nil && len(parts) > 0 {
			return nil
		}
	}
	return fmt.Errorf("warm-up consumer got no assignment")
}

// readCPUStat returns the busy and total jiffies of every cpuN line of /proc/stat.
func readCPUStat() (map[string][2]int64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	out := map[string][2]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var total, idle int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			total += n
			if i == 3 || i == 4 { // idle, iowait
				idle += n
			}
		}
		out[f[0]] = [2]int64{total - idle, total}
	}
	return out, nil
}

func busy(before, after map[string][2]int64) map[string]float64 {
	out := map[string]float64{}
	for c, a := range after {
		b := before[c]
		if dt := a[1] - b[1]; dt > 0 {
			out[c] = float64(a[0]-b[0]) / float64(dt)
		}
	}
	return out
}
