// Command bench measures the bridge against two baselines on one Mosquitto,
// one Kafka and one publisher, in one run:
//
//   - ceiling: a paho subscriber that only acknowledges (MQTT's own limit);
//   - pipe: `mosquitto_sub -q 1 -v | kcat -P`, which acknowledges on receipt
//     and so guarantees nothing;
//   - bridge: the bridge binary, which acknowledges after Kafka stored the
//     reading.
//
// For each it reports readings/s (publish start to the last reading in
// Kafka, or received by the ceiling subscriber) and CPU per reading of the
// path's own processes (utime+stime from /proc, librdkafka threads
// included). Then it publishes at a fixed rate (default 10,000/s) through
// the bridge and the pipe and reports publish → Kafka latency percentiles,
// using topics that stamp LogAppendTime, i.e. when Kafka stored the record.
// It prints a Markdown table and writes it to -out.
//
// `bench ceiling-sub` is the ceiling subscriber, run as a child process so
// its CPU is measured on its own.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
	"github.com/plantlake/plantlake/services/bridge/internal/loadtest"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "ceiling-sub" {
		err = ceilingSub(os.Args[2:])
	} else {
		err = run(context.Background(), os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type settings struct {
	n          int
	warmup     int
	warmupMax  int
	workers    int
	rate       float64
	latencyN   int
	latRounds  int
	partitions int
	rounds     int
	out        string
	bridgeArgs string
	only       string
	variants   string
}

func run(ctx context.Context, args []string) error {
	var s settings
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&s.n, "n", 300_000, "readings per throughput run")
	fs.IntVar(&s.warmup, "warmup", 300_000, "readings of each uncounted warm-up run through Kafka before the rounds (0: none)")
	fs.IntVar(&s.warmupMax, "warmup-max", 10, "warm-up runs at most; they stop earlier once Kafka's CPU per reading has settled")
	fs.IntVar(&s.workers, "publishers", 4, "publisher goroutines (one MQTT client each)")
	fs.Float64Var(&s.rate, "latency-rate", 10_000, "readings/s of the latency runs")
	fs.IntVar(&s.latencyN, "latency-n", 100_000, "readings per latency run")
	fs.IntVar(&s.latRounds, "latency-rounds", 5, "interleaved latency rounds per path (the median of each percentile counts)")
	fs.IntVar(&s.partitions, "partitions", 6, "partitions of the Kafka topics")
	fs.IntVar(&s.rounds, "rounds", 7, "interleaved throughput rounds per path (the median counts)")
	fs.StringVar(&s.out, "out", "", "write the Markdown result here too")
	fs.StringVar(&s.bridgeArgs, "bridge-args", "", "extra flags for the bridge, space-separated (e.g. --kafka-config=linger.ms=10)")
	fs.StringVar(&s.variants, "variants", "", "more bridge paths, each with its own extra flags (leading NAME=value words: environment), interleaved with the others: name=flags;name=flags (e.g. procs4=GOMAXPROCS=4 --linger=10ms)")
	fs.StringVar(&s.only, "only", "", "run only these throughput paths, comma-separated (ceiling,pipe,bridge; the -variants paths always run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	kcat, err := devstack.KcatPath(ctx, log) // installs Debian's kcat if missing
	if err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "bridge-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bridgeBin := filepath.Join(tmp, "bridge")
	if out, err := exec.Command("go", "build", "-o", bridgeBin, "./cmd/bridge").CombinedOutput(); err != nil {
		return fmt.Errorf("build the bridge (run from services/bridge): %w\n%s", err, out)
	}

	log.Info("starting Kafka and Mosquitto")
	kb, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Dir: filepath.Join(tmp, "kafka"), Log: log})
	if err != nil {
		return err
	}
	defer kb.Stop()
	mb, err := devstack.StartMosquitto(ctx, devstack.MosquittoConfig{Dir: filepath.Join(tmp, "mosquitto"), AutosaveInterval: 60 * time.Second, Log: log})
	if err != nil {
		return err
	}
	defer mb.Stop()
	// devstack installs mosquitto-clients with Mosquitto.
	mosquittoSub, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		return fmt.Errorf("mosquitto_sub: %w", err)
	}
	b := &bench{s: s, kafka: kb.Brokers(), mqtt: mb.URL(), tmp: tmp, log: log, bridgeBin: bridgeBin, self: self,
		kcat: kcat, mosquittoSub: mosquittoSub, loadStart: loadavg(), kafkaPid: kb.Pid, mosquittoPid: mb.Pid}

	// Rounds interleave the paths (the order rotates every round), and each
	// path's median round counts: the machine is shared, and a median of
	// interleaved rounds is what survives noise on it.
	starters := map[string]func(ctx context.Context, name, topic string) (*path, error){
		"ceiling": b.startCeiling, "pipe": b.startPipe, "bridge": b.bridgeStarter(s.bridgeArgs),
	}
	order := []string{"ceiling", "pipe", "bridge"}
	for _, v := range strings.Split(s.variants, ";") {
		name, args, ok := strings.Cut(strings.TrimSpace(v), "=")
		if !ok {
			continue
		}
		name = "bridge-" + name
		starters[name] = b.bridgeStarter(args)
		order = append(order, name)
		b.variants = append(b.variants, name)
	}
	if err := b.warmUp(ctx, order[1:], starters); err != nil {
		return err
	}
	for round := range s.rounds {
		for i := range order {
			name := order[(i+round)%len(order)]
			if round%2 == 1 {
				name = order[(len(order)-1-i+round)%len(order)]
			}
			if !b.selected(name) {
				continue
			}
			r, err := b.throughput(ctx, name, fmt.Sprintf("%s-%d", name, round), s.n, starters[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			r.round = round
			b.rounds = append(b.rounds, r)
		}
	}
	ceiling, pipe, bridge := b.median("ceiling"), b.median("pipe"), b.median("bridge")
	var bridgeLat, pipeLat latencyResult
	if s.latencyN > 0 {
		latOrder := append([]string{"bridge", "pipe"}, b.variants...)
		for round := range s.latRounds {
			for i := range latOrder {
				name := latOrder[(i+round)%len(latOrder)]
				l, err := b.latency(ctx, name, fmt.Sprintf("%s-lat%d", name, round), starters[name])
				if err != nil {
					return fmt.Errorf("%s latency: %w", name, err)
				}
				b.latRounds = append(b.latRounds, l)
			}
		}
		bridgeLat, pipeLat = b.latencyMedian("bridge"), b.latencyMedian("pipe")
	}

	report := b.report(ceiling, pipe, bridge, bridgeLat, pipeLat)
	fmt.Print(report)
	if s.out != "" {
		if err := os.MkdirAll(filepath.Dir(s.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(s.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	s         settings
	kafka     string
	mqtt      string
	tmp       string
	log       *slog.Logger
	bridgeBin string
	self      string
	rounds    []throughputResult
	warmups   []throughputResult
	latRounds []latencyResult
	variants  []string
	loadStart string

	// kafkaPid and mosquittoPid find the brokers' processes, whose CPU
	// every path shares.
	kafkaPid, mosquittoPid func() int

	kcat, mosquittoSub string
}

// warmUp runs the Kafka paths in turn, uncounted, until Kafka's CPU per
// reading has settled. Kafka's broker is a JVM that compiles its hot paths
// over its first million or two records: its CPU per reading fell from 35 µs
// to 4 µs over one session-19 run whose single warm-up run per path
// (100,000 readings) left it cold, and whichever path met the cold broker
// first looked slow. It stops after a round of every path once Kafka's cost
// stopped falling (settled), or after -warmup-max runs.
func (b *bench) warmUp(ctx context.Context, names []string, starters map[string]func(ctx context.Context, name, topic string) (*path, error)) error {
	if b.s.warmup <= 0 {
		return nil
	}
	var kafkaPaths []string
	for _, name := range names {
		if b.selected(name) {
			kafkaPaths = append(kafkaPaths, name)
		}
	}
	if len(kafkaPaths) == 0 {
		return nil
	}
	for i := 0; i < b.s.warmupMax; i++ {
		name := kafkaPaths[i%len(kafkaPaths)]
		r, err := b.throughput(ctx, name, fmt.Sprintf("warmup%d-%s", i, name), b.s.warmup, starters[name])
		if err != nil {
			return fmt.Errorf("%s warm-up: %w", name, err)
		}
		b.warmups = append(b.warmups, r)
		if (i+1)%len(kafkaPaths) == 0 && b.settled(kafkaPaths) {
			return nil
		}
	}
	b.log.Warn("Kafka's CPU per reading still moving after the warm-up runs; the rounds may carry its warm-up", "runs", b.s.warmupMax)
	return nil
}

// settled reports whether Kafka's CPU per reading stopped falling: no
// path's last warm-up run cost it more than 15 % less a reading than the
// path's best run before.
func (b *bench) settled(paths []string) bool {
	for _, name := range paths {
		var runs []throughputResult
		for _, r := range b.warmups {
			if r.name == name {
				runs = append(runs, r)
			}
		}
		if len(runs) < 2 {
			return false
		}
		last := runs[len(runs)-1]
		bestBefore := runs[0].perReading(runs[0].kafka)
		for _, r := range runs[1 : len(runs)-1] {
			bestBefore = min(bestBefore, r.perReading(r.kafka))
		}
		if last.perReading(last.kafka) < 0.85*bestBefore {
			return false
		}
	}
	return true
}

// path is a running contestant: its processes, and how to tell that n
// readings have arrived.
type path struct {
	procs   []*exec.Cmd
	arrived func() (int, error)
	stop    func()
	// afterPublish, if set, runs once the publisher is done (the pipe uses
	// it to push mosquitto_sub's last, partly filled stdout buffer out).
	afterPublish func() error
}

type throughputResult struct {
	name      string
	round     int
	n         int
	elapsed   time.Duration
	cpu       time.Duration // the path's own processes
	mosquitto time.Duration
	kafka     time.Duration
	publisher time.Duration // this process: the publishers and the arrival polls
	peakRSS   int64         // KiB, summed over the path's processes
}

// perReading returns d divided among the run's readings, in µs.
func (r throughputResult) perReading(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / 1000 / float64(max(r.n, 1))
}

// machine is the CPU of every process the run used.
func (r throughputResult) machine() time.Duration {
	return r.cpu + r.mosquitto + r.kafka + r.publisher
}

func (r throughputResult) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// median returns the round of the path whose throughput is the median of
// its rounds (the lower middle one for an even count), zero if it never ran.
func (b *bench) median(name string) throughputResult {
	var rs []throughputResult
	for _, r := range b.rounds {
		if r.name == name {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return throughputResult{name: name}
	}
	slices.SortFunc(rs, func(x, y throughputResult) int { return cmp.Compare(x.perSecond(), y.perSecond()) })
	return rs[(len(rs)-1)/2]
}

// latencyMedian returns the median of each percentile over the path's
// latency rounds (the lower middle one for an even count).
func (b *bench) latencyMedian(name string) latencyResult {
	var p50, p99, mx []time.Duration
	out := latencyResult{name: name}
	for _, l := range b.latRounds {
		if l.name == name {
			p50, p99, mx = append(p50, l.p50), append(p99, l.p99), append(mx, l.max)
			out.n, out.rate = l.n, l.rate
		}
	}
	mid := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[(len(d)-1)/2]
	}
	out.p50, out.p99, out.max = mid(p50), mid(p99), mid(mx)
	return out
}

// ofRound returns the path's result in round, zero if it did not run.
func (b *bench) ofRound(name string, round int) throughputResult {
	for _, r := range b.rounds {
		if r.name == name && r.round == round {
			return r
		}
	}
	return throughputResult{name: name}
}

// ratio is x/y, 0 when y is unknown.
func ratio(x, y float64) float64 {
	if y == 0 {
		return 0
	}
	return x / y
}

type latencyResult struct {
	name          string
	n             int
	rate          float64
	p50, p99, max time.Duration
}

// createTopics creates topics the way every plantlake topic is created
// (kafkatopic); a *_latency topic stamps LogAppendTime, the moment Kafka
// stored the record.
func (b *bench) createTopics(ctx context.Context, names ...string) error {
	var specs []kafkatopic.Spec
	for _, name := range names {
		spec := kafkatopic.Spec{Name: name, Partitions: b.s.partitions}
		if strings.HasSuffix(name, "_latency") {
			spec.Config = map[string]string{"message.timestamp.type": "LogAppendTime"}
		}
		specs = append(specs, spec)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := kafkatopic.EnsureAt(cctx, b.kafka, nil, specs...); err != nil {
		return fmt.Errorf("bench topics: %w", err)
	}
	return nil
}

// throughput publishes s.n readings as fast as the publishers go through
// the path started by start, and measures until the last one arrived.
func (b *bench) throughput(ctx context.Context, name, run string, n int, start func(ctx context.Context, name, topic string) (*path, error)) (throughputResult, error) {
	topic := "bench_" + run
	if err := b.createTopics(ctx, topic); err != nil {
		return throughputResult{}, err
	}
	p, err := start(ctx, run, topic)
	if err != nil {
		return throughputResult{}, err
	}
	defer p.stop()
	cpu0 := cpuOf(p.procs...)
	mosq0, kafka0, self0 := cpuOfPid(b.mosquittoPid()), cpuOfPid(b.kafkaPid()), cpuOfPid(os.Getpid())
	b.log.Info("throughput run", "path", name, "readings", n)
	t0 := time.Now()
	pubErr := make(chan error, 1)
	go func() {
		pubErr <- loadtest.Publish(ctx, loadtest.PublishConfig{
			Broker: b.mqtt, ClientPrefix: "pub-" + run, Count: n, Workers: b.s.workers, Window: 512,
			Topic: func(id int) string { return fmt.Sprintf("bench/%s/line%d/press%02d/temperature", run, id%4, id%17) },
		})
	}()
	var got int
	deadline := time.Now().Add(5 * time.Minute)
	published := false
	for got < n {
		if time.Now().After(deadline) {
			return throughputResult{}, fmt.Errorf("only %d of %d arrived within 5 minutes", got, n)
		}
		select {
		case err := <-pubErr:
			if err != nil {
				return throughputResult{}, err
			}
			published = true
			if p.afterPublish != nil {
				if err := p.afterPublish(); err != nil {
					return throughputResult{}, err
				}
			}
		case <-time.After(20 * time.Millisecond):
		}
		if n, err := p.arrived(); err == nil {
			got = n
		} else {
			b.log.Warn("reading watermarks", "err", err)
		}
	}
	elapsed := time.Since(t0)
	if !published {
		if err := <-pubErr; err != nil {
			return throughputResult{}, err
		}
	}
	var rss int64
	for _, c := range p.procs {
		rss += peakRSSKiB(c.Process.Pid)
	}
	r := throughputResult{name: name, n: n, elapsed: elapsed, cpu: cpuOf(p.procs...) - cpu0, peakRSS: rss,
		mosquitto: cpuOfPid(b.mosquittoPid()) - mosq0, kafka: cpuOfPid(b.kafkaPid()) - kafka0,
		publisher: cpuOfPid(os.Getpid()) - self0}
	b.log.Info("throughput", "path", name, "per_second", int(r.perSecond()),
		"cpu_us_per_reading", fmt.Sprintf("path %.1f, mosquitto %.1f, kafka %.1f, publisher %.1f, machine %.1f",
			r.perReading(r.cpu), r.perReading(r.mosquitto), r.perReading(r.kafka), r.perReading(r.publisher), r.perReading(r.machine())))
	return r, nil
}

// latency publishes s.latencyN readings at s.rate/s through the path and
// reads Kafka's LogAppendTime of each record.
func (b *bench) latency(ctx context.Context, name, run string, start func(ctx context.Context, name, topic string) (*path, error)) (latencyResult, error) {
	topic := "bench_" + run + "_latency"
	if err := b.createTopics(ctx, topic); err != nil {
		return latencyResult{}, err
	}
	p, err := start(ctx, run, topic)
	if err != nil {
		return latencyResult{}, err
	}
	defer p.stop()
	b.log.Info("latency run", "path", name, "readings", b.s.latencyN, "rate", b.s.rate)
	if err := loadtest.Publish(ctx, loadtest.PublishConfig{
		Broker: b.mqtt, ClientPrefix: "pub-" + run, Count: b.s.latencyN, Workers: b.s.workers, Rate: b.s.rate, Window: 512,
		Topic: func(id int) string {
			return fmt.Sprintf("bench/%s/line%d/press%02d/temperature", run, id%4, id%17)
		},
	}); err != nil {
		return latencyResult{}, err
	}
	if p.afterPublish != nil {
		if err := p.afterPublish(); err != nil {
			return latencyResult{}, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := loadtest.Collect(cctx, b.kafka, topic, 0, b.s.latencyN, nil)
	if err != nil {
		return latencyResult{}, err
	}
	lat := res.Latencies
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	r := latencyResult{name: name, n: b.s.latencyN, rate: b.s.rate, p50: q(0.50), p99: q(0.99), max: lat[len(lat)-1]}
	b.log.Info("latency", "path", name, "p50", r.p50, "p99", r.p99, "max", r.max)
	return r, nil
}

func (b *bench) startCeiling(ctx context.Context, name, _ string) (*path, error) {
	cmd := exec.CommandContext(ctx, b.self, "ceiling-sub", "-broker", b.mqtt, "-filter", "bench/"+name+"/#", "-client-id", "ceiling-"+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var count atomic.Int64
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				close(ready)
				continue
			}
			if n, err := strconv.ParseInt(line, 10, 64); err == nil {
				count.Store(n)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, errors.New("ceiling subscriber not ready in 30s")
	}
	return &path{
		procs:   []*exec.Cmd{cmd},
		arrived: func() (int, error) { return int(count.Load()), nil },
		stop:    func() { terminate(cmd) },
	}, nil
}

func (b *bench) startPipe(ctx context.Context, name, topic string) (*path, error) {
	sub := exec.CommandContext(ctx, b.mosquittoSub, "-h", hostOf(b.mqtt), "-p", portOf(b.mqtt),
		"-q", "1", "-c", "-i", "pipe-"+name, "-t", "bench/"+name+"/#", "-v")
	prod := exec.CommandContext(ctx, b.kcat, "-P", "-b", b.kafka, "-t", topic, "-K", " ")
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	sub.Stdout, prod.Stdin = w, r
	sub.Stderr, prod.Stderr = os.Stderr, os.Stderr
	if err := prod.Start(); err != nil {
		return nil, err
	}
	if err := sub.Start(); err != nil {
		_ = prod.Process.Kill()
		return nil, err
	}
	w.Close()
	r.Close()
	time.Sleep(time.Second) // subscribed by then; mosquitto_sub has no readiness signal
	wm, err := newWatermarks(b.kafka, topic)
	if err != nil {
		return nil, err
	}
	return &path{
		procs:   []*exec.Cmd{sub, prod},
		arrived: wm.sum,
		stop: func() {
			terminate(sub)
			terminate(prod)
			wm.close()
		},
		// mosquitto_sub's stdout is a pipe, so stdio buffers it in 4 KiB
		// blocks (the fastest way to run the pipe); filler readings push
		// the last block out. They carry no id, so no check counts them.
		afterPublish: func() error {
			return loadtest.Publish(ctx, loadtest.PublishConfig{
				Broker: b.mqtt, ClientPrefix: "filler-" + name, Count: 64,
				Topic:   func(int) string { return "bench/" + name + "/filler" },
				Payload: func(int, time.Time) []byte { return []byte(strings.Repeat("f", 120)) },
			})
		},
	}, nil
}

// bridgeStarter starts the bridge with extraArgs (space-separated flags).
func (b *bench) bridgeStarter(extraArgs string) func(ctx context.Context, name, topic string) (*path, error) {
	return func(ctx context.Context, name, topic string) (*path, error) {
		return b.startBridgeWith(ctx, name, topic, strings.Fields(extraArgs))
	}
}

func (b *bench) startBridge(ctx context.Context, name, topic string) (*path, error) {
	return b.startBridgeWith(ctx, name, topic, strings.Fields(b.s.bridgeArgs))
}

func (b *bench) startBridgeWith(ctx context.Context, name, topic string, extraArgs []string) (*path, error) {
	grpcAddr := freeAddr()
	args := []string{"--mqtt-broker", b.mqtt, "--kafka-brokers", b.kafka,
		"--mqtt-client-id", "bridge-" + name, "--mqtt-topic-filter", "bench/" + name + "/#",
		"--kafka-topic", topic, "--grpc-addr", grpcAddr, "--metrics-addr", "",
		"--log-level", "warn"}
	// Leading NAME=value words are environment variables for the bridge.
	var env []string
	for len(extraArgs) > 0 && !strings.HasPrefix(extraArgs[0], "-") && strings.Contains(extraArgs[0], "=") {
		env, extraArgs = append(env, extraArgs[0]), extraArgs[1:]
	}
	cmd := exec.CommandContext(ctx, b.bridgeBin, append(args, extraArgs...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitHealthy(grpcAddr, 60*time.Second); err != nil {
		terminate(cmd)
		return nil, err
	}
	wm, err := newWatermarks(b.kafka, topic)
	if err != nil {
		return nil, err
	}
	return &path{
		procs:   []*exec.Cmd{cmd},
		arrived: wm.sum,
		stop: func() {
			terminate(cmd)
			wm.close()
		},
	}, nil
}

func (b *bench) report(ceiling, pipe, bridge throughputResult, bridgeLat, pipeLat latencyResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Bridge benchmark\n\n")
	fmt.Fprintf(&sb, "%s, %d cores, %s. One Mosquitto (devstack: persistence on, in-flight window 10,000), one single-node Kafka, "+
		"one publisher (%d paho clients, QoS 1, 512 publishes in flight each), %d readings per run, %d partitions, "+
		"%d interleaved rounds per path; each path's median round below.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), b.s.workers, b.s.n, b.s.partitions, b.s.rounds)
	if b.s.bridgeArgs != "" {
		fmt.Fprintf(&sb, "Bridge flags added: `%s`.\n\n", b.s.bridgeArgs)
	}
	fmt.Fprintf(&sb, "CPU per reading in µs (utime+stime from /proc over the run): the path's own processes, then the ones every path shares — "+
		"Mosquitto, Kafka, the publisher (this benchmark's process: its paho clients and the arrival polls) — and their sum, the whole machine's; "+
		"on a machine the paths saturate, readings/s follow the whole machine's CPU per reading.\n\n")
	fmt.Fprintf(&sb, "| path (median round) | readings/s | vs ceiling | vs pipe | path CPU | Mosquitto | Kafka | publisher | whole machine | peak RSS (path's processes) |\n")
	fmt.Fprintf(&sb, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	row := func(label string, r throughputResult) {
		fmt.Fprintf(&sb, "| %s | %.0f | %.2f× | %.2f× | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f MiB |\n", label, r.perSecond(),
			ratio(r.perSecond(), ceiling.perSecond()), ratio(r.perSecond(), pipe.perSecond()),
			r.perReading(r.cpu), r.perReading(r.mosquitto), r.perReading(r.kafka), r.perReading(r.publisher), r.perReading(r.machine()),
			float64(r.peakRSS)/1024)
	}
	row("paho subscriber, ack only (ceiling)", ceiling)
	row("`mosquitto_sub -q 1 -v \\| kcat -P` (pipe)", pipe)
	row("**bridge** (ack after Kafka stored it)", bridge)
	for _, v := range b.variants {
		row(v+" (`"+b.variantArgs(v)+"`)", b.median(v))
	}

	fmt.Fprintf(&sb, "\nEvery round, in the order run (readings/s; the ratios are within the round):\n\n")
	fmt.Fprintf(&sb, "| round | order | ceiling | pipe | bridge | bridge/pipe | bridge/ceiling |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for round := range b.s.rounds {
		var names []string
		for _, r := range b.rounds {
			if r.round == round {
				names = append(names, r.name)
			}
		}
		c, p, br := b.ofRound("ceiling", round), b.ofRound("pipe", round), b.ofRound("bridge", round)
		fmt.Fprintf(&sb, "| %d | %s | %.0f | %.0f | %.0f | %.2f× | %.2f× |\n", round+1, strings.Join(names, ", "),
			c.perSecond(), p.perSecond(), br.perSecond(),
			ratio(br.perSecond(), p.perSecond()), ratio(br.perSecond(), c.perSecond()))
	}
	for _, v := range b.variants {
		fmt.Fprintf(&sb, "| %s | ", v)
		for round := range b.s.rounds {
			fmt.Fprintf(&sb, "%.0f ", b.ofRound(v, round).perSecond())
		}
		fmt.Fprintf(&sb, "| | | %.0f | | |\n", b.median(v).perSecond())
	}
	fmt.Fprintf(&sb, "| **median** | | %.0f | %.0f | %.0f | **%.2f×** | **%.2f×** |\n",
		ceiling.perSecond(), pipe.perSecond(), bridge.perSecond(),
		ratio(bridge.perSecond(), pipe.perSecond()), ratio(bridge.perSecond(), ceiling.perSecond()))
	if len(b.warmups) > 0 {
		fmt.Fprintf(&sb, "\nBefore the rounds, uncounted warm-up runs through Kafka until its CPU per reading settled (its broker is a JVM compiling its hot paths): ")
		var each []string
		for _, r := range b.warmups {
			each = append(each, fmt.Sprintf("%s %d readings at %.0f/s, Kafka %.1f µs a reading", r.name, r.n, r.perSecond(), r.perReading(r.kafka)))
		}
		sb.WriteString(strings.Join(each, "; ") + ".")
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "\nLoad average (1/5/15 min) at start %s, at end %s.\n", b.loadStart, loadavg())
	fmt.Fprintf(&sb, "\nTargets on the medians: bridge ≥ 1.1× pipe (%s), ≥ 0.9× ceiling (%s).\n\n",
		against(bridge.perSecond(), pipe.perSecond(), 1.1), against(bridge.perSecond(), ceiling.perSecond(), 0.9))
	if bridgeLat.n == 0 {
		return sb.String()
	}
	fmt.Fprintf(&sb, "Publish → stored in Kafka at %.0f readings/s (record LogAppendTime minus publish time in the payload; 1 ms resolution), "+
		"median of %d interleaved rounds per path, then every round:\n\n", b.s.rate, b.s.latRounds)
	fmt.Fprintf(&sb, "| path | rate | readings | p50 | p99 | max | rounds (p50 / p99) |\n|---|---:|---:|---:|---:|---:|---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	lats := []latencyResult{bridgeLat, pipeLat}
	for _, v := range b.variants {
		lats = append(lats, b.latencyMedian(v))
	}
	for _, l := range lats {
		var each []string
		for _, r := range b.latRounds {
			if r.name == l.name {
				each = append(each, ms(r.p50)+" / "+ms(r.p99))
			}
		}
		fmt.Fprintf(&sb, "| %s | %.0f/s | %d | %s | %s | %s | %s |\n", l.name, l.rate, l.n, ms(l.p50), ms(l.p99), ms(l.max), strings.Join(each, ", "))
	}
	fmt.Fprintf(&sb, "\nTarget: bridge p99 ≤ 20 ms at 10,000 readings/s (%s).\n", verdict(bridgeLat.p99 <= 20*time.Millisecond))
	return sb.String()
}

// selected reports whether the throughput path name runs: every path
// without -only; with it, the paths it lists and every variant (a variant is
// asked for by name already).
func (b *bench) selected(name string) bool {
	return b.s.only == "" || slices.Contains(b.variants, name) || slices.Contains(strings.Split(b.s.only, ","), name)
}

// variantArgs returns the flags of the variant path name.
func (b *bench) variantArgs(name string) string {
	for _, v := range strings.Split(b.s.variants, ";") {
		n, args, _ := strings.Cut(strings.TrimSpace(v), "=")
		if "bridge-"+n == name {
			return args
		}
	}
	return ""
}

// against says whether got ≥ factor × of, or that a side was not measured
// (a path left out with -only).
func against(got, of, factor float64) string {
	if got == 0 || of == 0 {
		return "not measured"
	}
	return verdict(got >= factor*of)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// watermarks sums the high watermarks of a topic's partitions.
type watermarks struct {
	c     *kafka.Consumer
	topic string
	parts []int32
}

func newWatermarks(brokers, topic string) (*watermarks, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "bench-wm", "log_level": 0})
	if err != nil {
		return nil, err
	}
	md, err := c.GetMetadata(&topic, false, 10000)
	if err != nil {
		c.Close()
		return nil, err
	}
	w := &watermarks{c: c, topic: topic}
	for _, p := range md.Topics[topic].Partitions {
		w.parts = append(w.parts, p.ID)
	}
	return w, nil
}

func (w *watermarks) sum() (int, error) {
	total := 0
	for _, p := range w.parts {
		_, high, err := w.c.QueryWatermarkOffsets(w.topic, p, 5000)
		if err != nil {
			return 0, err
		}
		total += int(high)
	}
	return total, nil
}

func (w *watermarks) close() { w.c.Close() }

// cpuOf returns the user+system CPU the processes used so far.
func cpuOf(cmds ...*exec.Cmd) time.Duration {
	var total time.Duration
	for _, c := range cmds {
		total += cpuOfPid(c.Process.Pid)
	}
	return total
}

// cpuOfPid reads utime+stime (all threads) from /proc/<pid>/stat.
func cpuOfPid(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck
}

func terminate(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func hostOf(url string) string {
	h, _, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
	return h
}

func portOf(url string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(url, "tcp://"))
	return p
}

// ceilingSub subscribes at QoS 1, lets paho acknowledge each reading as it
// arrives, and prints "ready" once subscribed and then the running count
// every 10 ms while it changes.
func ceilingSub(args []string) error {
	fs := flag.NewFlagSet("ceiling-sub", flag.ContinueOnError)
	broker := fs.String("broker", "", "MQTT broker URL")
	filter := fs.String("filter", "", "topic filter")
	clientID := fs.String("client-id", "ceiling", "client id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var count atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker(*broker).SetClientID(*clientID).SetCleanSession(false).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { count.Add(1) })
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	if tok := c.Subscribe(*filter, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	var last int64 = -1
	for {
		if n := count.Load(); n != last {
			last = n
			fmt.Fprintln(out, n)
			if err := out.Flush(); errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitHealthy polls the bridge's gRPC health service until it says SERVING.
func waitHealthy(addr string, timeout time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("bridge at %s not SERVING within %v", addr, timeout)
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:3], "/")
}

// peakRSSKiB reads VmHWM, the peak resident set, from /proc/<pid>/status.
func peakRSSKiB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb
			}
		}
	}
	return 0
}
