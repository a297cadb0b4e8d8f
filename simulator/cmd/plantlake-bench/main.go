// Command plantlake-bench is plantlake's end-to-end benchmark (make bench):
// the bare MQTT ceiling, the bridge alone and the whole pipeline on this
// machine in one run, freshness from publish to gold with each hop's share,
// and each process's CPU per reading and peak RSS, printed as Markdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plantlake/plantlake/simulator/internal/e2ebench"
)

const usage = `plantlake-bench runs the whole plantlake stack on this machine (Mosquitto, Kafka, the catalog,
bridge, ingest, deserialize, merge, and the simulator publishing at QoS 1) and measures:
  - the bare MQTT ceiling (publisher -> Mosquitto -> ack-only subscriber) and the bridge alone
    (MQTT -> bridge -> Kafka), each publishing --saturation readings as fast as they go,
    --saturation-rounds times in alternating order (the medians count); every stack with Kafka
    carries --warmup of traffic, uncounted, before the bridge alone or freshness is measured;
  - the front alone (MQTT -> bridge -> Kafka, no hops) held at a steady 0.8x the bridge alone for
    --front-hold: the cores a paced front leaves for the hops;
  - the highest rate the whole pipeline keeps up with (short probes, then held for --hold);
  - freshness at --fresh-rate: publish -> visible in gold, p50/p99/max and each hop's share, with
    the defaults and with --fast's settings;
  - CPU per reading and peak RSS of every process.
It prints a Markdown report and writes it to --out. Run it on an otherwise idle machine.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "plantlake-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 3 && args[0] == "ceiling-sub" { // the ceiling's subscriber process
		count, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("ceiling-sub: count: %w", err)
		}
		return e2ebench.CeilingSubscriber(ctx, args[1], count, stdout)
	}
	fs := flag.NewFlagSet("plantlake-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	out := fs.String("out", "", "file to write the Markdown report to (empty: stdout only)")
	dir := fs.String("dir", "", "folder for the stacks' data and logs (empty: a temporary one, removed at the end)")
	quick := fs.Bool("quick", false, "a short run: 30s hold, 10s probes, 20s freshness runs, 10s warm-ups, one run of 200,000 readings at saturation")
	hold := fs.Duration("hold", 5*time.Minute, "how long the found rate is held")
	probe := fs.Duration("probe", 20*time.Second, "how long each probe of the rate search publishes")
	probes := fs.Int("probes", 5, "at most this many probes")
	saturation := fs.Int64("saturation", 600_000, "readings the ceiling and the bridge-alone runs publish")
	satRounds := fs.Int("saturation-rounds", e2ebench.DefaultSaturationRounds, "runs of the ceiling and of the bridge alone, alternating (their medians count)")
	freshRate := fs.Float64("fresh-rate", 10_000, "readings per second of the freshness runs")
	freshFor := fs.Duration("fresh-for", time.Minute, "how long each freshness run publishes")
	warmup := fs.Duration("warmup", e2ebench.DefaultWarmup, "traffic a new stack carries, uncounted, before the bridge alone or a freshness run is measured (Kafka's JIT warms up)")
	freshOnly := fs.Bool("fresh-only", false, "run only the two freshness runs (to compare settings)")
	settings := fs.String("settings", "", "extra flags of the pipeline's default stacks, as --fast (e.g. 'merge --batch-max-age 2s')")
	holdAt := fs.Float64("hold-at", 0, "hold this rate (readings/s) on the pipeline alone for --hold, nothing else (to compare settings)")
	frontHold := fs.Duration("front-hold", 2*time.Minute, "how long the full run holds the front alone (publisher, Mosquitto, bridge, Kafka; no hops) at 0.8x the bridge alone, after the saturation runs (0: not at all)")
	frontHoldAt := fs.Float64("front-hold-at", 0, "hold this rate (readings/s) on the front alone for --hold, nothing else")
	nice := fs.String("nice", "", "niceness of services in the pipeline's stacks, e.g. 'ingest=5,deserialize=5' (empty: all 0)")
	fast := fs.String("fast", "ingest --batch-max-age 100ms; deserialize --batch-max-age 50ms; merge --batch-max-age 100ms",
		"settings of the second freshness run: service flags..., separated by ';' (empty: no second run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["saturation-rounds"] {
			*satRounds = 1
		}
		for name, v := range map[string]any{"hold": 30 * time.Second, "probe": 10 * time.Second, "probes": 4, "warmup": 10 * time.Second,
			"saturation": int64(200_000), "fresh-for": 20 * time.Second, "front-hold": 20 * time.Second} {
			if set[name] {
				continue
			}
			switch p := v.(type) {
			case time.Duration:
				if name == "hold" {
					*hold = p
				} else if name == "warmup" {
					*warmup = p
				} else if name == "probe" {
					*probe = p
				} else if name == "front-hold" {
					*frontHold = p
				} else {
					*freshFor = p
				}
			case int:
				*probes = p
			case int64:
				*saturation = p
			}
		}
	}
	fastArgs, err := parseSettings(*fast)
	if err != nil {
		return fmt.Errorf("--fast: %w", err)
	}
	stackArgs, err := parseSettings(*settings)
	if err != nil {
		return fmt.Errorf("--settings: %w", err)
	}
	niceness, err := parseNice(*nice)
	if err != nil {
		return fmt.Errorf("--nice: %w", err)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "plantlake-bench-")
		if err != nil {
			return fmt.Errorf("temporary folder: %w", err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	rep, err := e2ebench.Run(ctx, e2ebench.Config{Dir: *dir, SaturationCount: *saturation, SaturationRounds: *satRounds, Probe: *probe, Probes: *probes,
		Hold: *hold, Self: self, FreshOnly: *freshOnly, HoldAt: *holdAt, FrontHold: *frontHold, FrontHoldAt: *frontHoldAt, Args: stackArgs, Nice: niceness, FreshRate: *freshRate, FreshFor: *freshFor, Warmup: *warmup, Fast: fastArgs, Log: log})
	if rep == nil {
		return err
	}
	// A run that failed part-way still reports what it measured.
	rep.Quick = *quick
	if err != nil {
		rep.Notes = append(rep.Notes, "the run ended early: "+err.Error())
	}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if *out != "" {
		if werr := os.WriteFile(*out, []byte(b.String()), 0o644); werr != nil {
			return errors.Join(err, fmt.Errorf("write report: %w", werr))
		}
	}
	return err
}

// parseSettings reads "svc --flag v; svc2 --flag v" into each service's flags.
func parseSettings(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for part := range strings.SplitSeq(s, ";") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		if len(f) == 1 {
			return nil, fmt.Errorf("%q: a service without flags", part)
		}
		out[f[0]] = append(out[f[0]], f[1:]...)
	}
	return out, nil
}

// parseNice parses --nice: service=niceness pairs separated by commas.
func parseNice(s string) (map[string]int, error) {
	out := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want service=niceness", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < -20 || n > 19 {
			return nil, fmt.Errorf("%q: niceness must be an integer from -20 to 19", part)
		}
		out[strings.TrimSpace(name)] = n
	}
	return out, nil
}
