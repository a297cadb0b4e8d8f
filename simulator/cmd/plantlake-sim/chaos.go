package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/simulator/internal/chaos"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

const chaosUsage = `plantlake-sim chaos runs the whole pipeline and breaks it while readings flow.

Usage:
  plantlake-sim chaos [flags]

It starts Mosquitto, Kafka, the catalog, bridge, ingest, deserialize and merge as local
processes in --dir, publishes --count readings at --rate per second (with duplicates, late,
too-late and broken ones), and meanwhile, at random moments drawn from --seed, kills every
service with SIGKILL --kills times and starts it again, stops and starts Kafka
--kafka-restarts times and restarts Mosquitto with SIGTERM --mosquitto-restarts times. Once
every hop has caught up it reads the tables with delta-rs and compares them with the ledger:
gold must hold exactly the expected readings (keys and values), the dead letters exactly the
broken and too-late ones with their bytes, raw every published message at least once and each
Kafka (topic, partition, offset) once. It prints the counts and exits with status 1 on any
difference.

Flags (each also read from PLANTLAKE_<FLAG> in upper snake case):
`

// errChaosFailed is returned when the run lost or doubled readings.
var errChaosFailed = errors.New("the chaos run found differences")

func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := chaos.Config{}
	var keep bool
	fs := flag.NewFlagSet("plantlake-sim chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), chaosUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Dir, "dir", "", "folder for the stack's data, logs and the ledger (empty: a new temporary folder)")
	fs.BoolVar(&keep, "keep", false, "keep --dir's temporary folder after a successful run (it is always kept after a failure)")
	fs.Int64Var(&cfg.Count, "count", 1_000_000, "readings to publish")
	fs.Float64Var(&cfg.Rate, "rate", 1000, "readings per second")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed of the readings and of the fault schedule")
	fs.IntVar(&cfg.KillsPerService, "kills", 5, "SIGKILLs of each service (catalog, ingest, deserialize, merge, bridge)")
	fs.IntVar(&cfg.KafkaRestarts, "kafka-restarts", 2, "times Kafka is stopped and started")
	fs.IntVar(&cfg.MosquittoRestarts, "mosquitto-restarts", 2, "times Mosquitto is restarted with SIGTERM")
	fs.Float64Var(&cfg.Shares.Duplicate, "duplicate-share", 0.05, "share of duplicates, 0..1")
	fs.Float64Var(&cfg.Shares.Broken, "broken-share", 0.01, "share of broken payloads, 0..1")
	fs.Float64Var(&cfg.Shares.Late, "late-share", 0.01, "share of late readings (1 hour to 5 days old), 0..1")
	fs.Float64Var(&cfg.Shares.TooLate, "too-late-share", 0.002, "share of readings older than 7 days, 0..1")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 15*time.Minute, "how long the pipeline may take to catch up after publishing")
	if err := config.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("chaos: unexpected arguments %q", fs.Args())
	case cfg.Count <= 0 || cfg.Rate <= 0:
		return fmt.Errorf("chaos: --count and --rate must be positive, got %d and %v", cfg.Count, cfg.Rate)
	case cfg.KillsPerService < 0 || cfg.KafkaRestarts < 0 || cfg.MosquittoRestarts < 0:
		return errors.New("chaos: --kills, --kafka-restarts and --mosquitto-restarts must not be negative")
	}
	if err := (&sim.PlanConfig{Rate: cfg.Rate, Lines: 1, DevicesPerLine: 1, Measurements: []string{"temperature"}, Shares: cfg.Shares}).Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	temp := cfg.Dir == ""
	if temp {
		dir, err := os.MkdirTemp("", "plantlake-chaos-")
		if err != nil {
			return fmt.Errorf("chaos dir: %w", err)
		}
		cfg.Dir = dir
	}
	py, err := devstack.PythonPath(ctx, log)
	if err != nil {
		return err
	}
	cfg.Python, cfg.Logger = py, log
	res, runErr := chaos.Run(ctx, cfg)
	fmt.Fprintf(stdout, "chaos run: %d readings at %v/s, seed %d, stack in %s\n", cfg.Count, cfg.Rate, cfg.Seed, cfg.Dir)
	if runErr == nil || res.Check.LedgerEntries > 0 {
		chaos.WriteReport(stdout, res)
	}
	failed := runErr != nil || len(res.Differences()) > 0
	if temp && !keep && !failed {
		os.RemoveAll(cfg.Dir)
	} else {
		fmt.Fprintf(stdout, "data, logs and ledger kept in %s\n", cfg.Dir)
	}
	if runErr != nil {
		return runErr
	}
	if failed {
		return errChaosFailed
	}
	return nil
}
