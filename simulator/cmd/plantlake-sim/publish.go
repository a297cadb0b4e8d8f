package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

const publishUsage = `plantlake-sim publishes the readings of a simulated plant to MQTT.

Usage:
  plantlake-sim [publish] [flags]     publish readings (the default)
  plantlake-sim status [flags]        one line per pipeline service; see plantlake-sim status --help
  plantlake-sim chaos [flags]         the chaos run (make chaos); see plantlake-sim chaos --help

The plant has --lines production lines with --devices-per-line machines each; every machine
reports every measurement of --measurements in turn, on the topic
plant/<line>/<device>/<measurement>, with the payload
  {"sensor_id":"<device>","measurement":"<m>","value":<v>,"unit":"<u>","ts":<epoch seconds>}
Values wander slowly and jitter around each machine's own level; each machine's clock is off by
up to --clock-skew and drifts by up to --clock-drift-ppm.

Readings are published at --rate per second, evenly spaced, over --publishers connections, until
--count readings or --duration have been published (whichever comes first; neither: until
Ctrl-C). Some of them are, at the chosen shares:
  duplicates   a recent reading published again, the same bytes (as QoS 1 redelivers)
  late         ts 1 hour to 5 days old: still inside deserialize's 7-day window
  too-late     ts 8 to 30 days old: deserialize dead-letters it (ts_window)
  broken       bad JSON, empty, invalid UTF-8, missing or mistyped fields, "NaN", 1e400, a wrong
               unit, a topic that disagrees with the payload, an oversized payload: dead letters

--ledger writes one JSON line per message: its kind, topic, payload (base64), the gold key and
value it should become, or the dead letter's expected error_code (see simulator/README.md).
The same --seed and --start give the same messages, byte for byte.

Example, against make up's Mosquitto: 100 readings/s for a minute, 2 % broken:
  plantlake-sim --rate 100 --duration 1m --broken-share 0.02 --ledger /tmp/ledger.jsonl

Flags (each also read from PLANTLAKE_<FLAG> in upper snake case):
`

// publishFlags are the publish subcommand's settings.
type publishFlags struct {
	broker, username, password, caFile, clientID string
	qos                                          int
	lines, devices                               int
	measurements                                 string
	rate                                         float64
	count                                        int64
	duration                                     time.Duration
	publishers                                   int
	maxInflight                                  int
	dup, late, tooLate, broken                   float64
	skew                                         time.Duration
	driftPPM                                     float64
	seed                                         uint64
	start                                        string
	ledger                                       string
	progress                                     time.Duration
	logLevel                                     slog.Level
}

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f publishFlags
	fs := flag.NewFlagSet("plantlake-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), publishUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.broker, "mqtt-broker", "tcp://localhost:1883", "MQTT broker URL (tcp://, ssl://, ws://, wss://)")
	fs.StringVar(&f.username, "mqtt-username", "", "MQTT user name (empty: no login)")
	fs.StringVar(&f.password, "mqtt-password", "", "MQTT password")
	fs.StringVar(&f.caFile, "mqtt-ca", "", "CA file (PEM) that verifies the broker's certificate, for ssl:// and wss://")
	fs.StringVar(&f.clientID, "client-id", "plantlake-sim", "MQTT client id; more publishers add -1, -2, ...")
	fs.IntVar(&f.qos, "qos", 1, "MQTT QoS of every publish: 0, 1 or 2")
	fs.IntVar(&f.lines, "lines", 2, "production lines (line1, line2, ...)")
	fs.IntVar(&f.devices, "devices-per-line", 3, "machines per line; device names are unique across lines (press01, oven02, ...)")
	fs.StringVar(&f.measurements, "measurements", "temperature,pressure,humidity,vibration,current",
		"what every machine reports, comma-separated, from: "+strings.Join(measurementHelp(), ", "))
	fs.Float64Var(&f.rate, "rate", 10, "readings per second, all machines together")
	fs.Int64Var(&f.count, "count", 0, "stop after this many readings (0: no limit)")
	fs.DurationVar(&f.duration, "duration", 0, "stop after this long, e.g. 30s, 10m (0: no limit)")
	fs.IntVar(&f.publishers, "publishers", 0, "MQTT connections publishing in parallel (0: one per 5,000 readings/s)")
	fs.IntVar(&f.maxInflight, "max-inflight", 256, "readings per connection awaiting the broker's acknowledgement")
	fs.Float64Var(&f.dup, "duplicate-share", 0, "share of duplicates, 0..1 (0.05 = 5 %)")
	fs.Float64Var(&f.late, "late-share", 0, "share of late readings (1 hour to 5 days old), 0..1")
	fs.Float64Var(&f.tooLate, "too-late-share", 0, "share of readings older than 7 days (dead letters), 0..1")
	fs.Float64Var(&f.broken, "broken-share", 0, "share of broken payloads (dead letters), 0..1")
	fs.DurationVar(&f.skew, "clock-skew", 2*time.Second, "largest offset of a machine's clock, either way (at most 30m)")
	fs.Float64Var(&f.driftPPM, "clock-drift-ppm", 50, "largest drift of a machine's clock, parts per million")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed: the same seed and --start give the same readings")
	fs.StringVar(&f.start, "start", "", "wall-clock time of the first reading, RFC 3339 (empty: now); ts values follow from it")
	fs.StringVar(&f.ledger, "ledger", "", "file to write the ledger to, JSON lines (empty: none; - for stdout)")
	fs.DurationVar(&f.progress, "progress", 10*time.Second, "how often to log progress (0: never)")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "minimum log level: debug, info, warn, error")
	if err := config.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return err
	}

	cfg, err := f.runConfig()
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	var closeLedger func() error
	switch f.ledger {
	case "":
	case "-":
		cfg.Ledger = sim.NewLedgerWriter(stdout)
	default:
		file, err := os.Create(f.ledger)
		if err != nil {
			return fmt.Errorf("create ledger: %w", err)
		}
		closeLedger = file.Close
		cfg.Ledger = sim.NewLedgerWriter(file)
	}

	sum, runErr := sim.Run(ctx, cfg)
	if cfg.Ledger != nil {
		if err := cfg.Ledger.Flush(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if closeLedger != nil {
		if err := closeLedger(); err != nil && runErr == nil {
			runErr = fmt.Errorf("close ledger: %w", err)
		}
	}
	kinds := make([]string, 0, len(sum.ByKind))
	for k, n := range sum.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	cfg.Logger.Info("done", "published", sum.Published, "acked", sum.Acked, "unacked", sum.Unacked,
		"retries", sum.Retries, "elapsed", sum.Elapsed.Round(time.Millisecond),
		"rate", math.Round(sum.Rate()*10)/10, "kinds", strings.Join(kinds, " "))
	if errors.Is(runErr, context.Canceled) {
		return nil // Ctrl-C: a normal way to stop
	}
	return runErr
}

func (f *publishFlags) runConfig() (sim.RunConfig, error) {
	ms, err := sim.ParseMeasurements(f.measurements)
	if err != nil {
		return sim.RunConfig{}, fmt.Errorf("--measurements: %w", err)
	}
	if f.qos < 0 || f.qos > 2 {
		return sim.RunConfig{}, fmt.Errorf("--qos must be 0, 1 or 2, got %d", f.qos)
	}
	if f.count < 0 || f.duration < 0 {
		return sim.RunConfig{}, errors.New("--count and --duration cannot be negative")
	}
	var start time.Time
	if f.start != "" {
		start, err = time.Parse(time.RFC3339Nano, f.start)
		if err != nil {
			return sim.RunConfig{}, fmt.Errorf("--start: %w", err)
		}
	}
	pubs := f.publishers
	if pubs <= 0 {
		pubs = max(1, int(math.Ceil(f.rate/5000)))
	}
	cfg := sim.RunConfig{
		Plan: sim.PlanConfig{
			Seed: f.seed, Start: start, Rate: f.rate, Lines: f.lines, DevicesPerLine: f.devices,
			Measurements: ms,
			Shares:       sim.Shares{Duplicate: f.dup, Late: f.late, TooLate: f.tooLate, Broken: f.broken},
			ClockSkew:    f.skew, ClockDriftPPM: f.driftPPM,
		},
		Broker: f.broker, Username: f.username, Password: f.password, CAFile: f.caFile,
		ClientID: f.clientID, QoS: byte(f.qos), Count: f.count, Duration: f.duration,
		Publishers: pubs, MaxInflight: f.maxInflight, Progress: f.progress,
	}
	if err := cfg.Plan.Validate(); err != nil {
		return sim.RunConfig{}, err
	}
	return cfg, nil
}

func measurementHelp() []string {
	var out []string
	for _, n := range sim.MeasurementNames() {
		out = append(out, n+" ("+sim.Models[n].Unit+")")
	}
	return out
}
