package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/simulator/internal/sim"
)

// Config is one chaos run.
type Config struct {
	// Dir holds the stack (brokers, warehouse, service logs) and the
	// ledger (Dir/ledger.jsonl). Required.
	Dir string
	// Count readings are published at Rate per second.
	Count int64
	Rate  float64
	// Seed fixes the readings and the schedule of faults.
	Seed uint64
	// Shares of duplicates, late, too-late and broken readings.
	Shares sim.Shares
	// KillsPerService is how often each service gets SIGKILL;
	// KafkaRestarts and MosquittoRestarts how often the brokers restart.
	KillsPerService   int
	KafkaRestarts     int
	MosquittoRestarts int
	// Publishers is the simulator's MQTT connections (default 1 per
	// 5,000 readings/s).
	Publishers int
	// DrainTimeout bounds the wait for the pipeline to catch up after
	// publishing (default 15 minutes); StableFor is how long every hop
	// must stay caught up with no table changing (default 10 s).
	DrainTimeout time.Duration
	StableFor    time.Duration
	// Python runs the check (a python3 with deltalake and pyarrow).
	Python string
	// Logger reports progress; nil logs nothing.
	Logger *slog.Logger
}

// Result is what a run did and found.
type Result struct {
	// Schedule is the faults planned; Faults counts those carried out, by
	// target (service name, "kafka", "mosquitto").
	Schedule []Event
	Faults   map[string]int
	// Published is the simulator's summary.
	Published sim.Summary
	// PublishTime, DrainTime and CheckTime are the phases' wall times.
	PublishTime, DrainTime, CheckTime time.Duration
	// Check is the comparison of the tables with the ledger.
	Check Check
}

// Differences lists every way the run missed its guarantees; empty when
// nothing was lost or doubled.
func (r Result) Differences() []string {
	diffs := r.Check.Differences()
	if r.Published.Unacked > 0 {
		diffs = append(diffs, fmt.Sprintf("%d readings not acknowledged by Mosquitto", r.Published.Unacked))
	}
	return diffs
}

func (c *Config) setDefaults() error {
	switch {
	case c.Dir == "":
		return errors.New("chaos: no dir")
	case c.Count <= 0 || c.Rate <= 0:
		return fmt.Errorf("chaos: count and rate must be positive, got %d and %v", c.Count, c.Rate)
	case c.Python == "":
		return errors.New("chaos: no python")
	case c.KillsPerService < 0 || c.KafkaRestarts < 0 || c.MosquittoRestarts < 0:
		return errors.New("chaos: negative fault counts")
	}
	if c.Publishers <= 0 {
		c.Publishers = max(1, int((c.Rate+4999)/5000))
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Minute
	}
	if c.StableFor <= 0 {
		c.StableFor = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// LedgerPath is where a run in dir writes the simulator's ledger.
func LedgerPath(dir string) string { return filepath.Join(dir, "ledger.jsonl") }

// Run starts a stack in cfg.Dir, publishes while the schedule's faults
// happen, waits until the pipeline has drained, and compares the tables
// with the ledger. An error means the run could not be carried out; lost
// or doubled readings are in the Result's Differences.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return Result{}, err
	}
	log := cfg.Logger
	res := Result{Faults: map[string]int{}}
	res.Schedule = NewSchedule(ScheduleConfig{
		Seed: cfg.Seed, Span: time.Duration(float64(cfg.Count) / cfg.Rate * float64(time.Second)),
		Services: devstack.Services, KillsPerService: cfg.KillsPerService,
		KafkaRestarts: cfg.KafkaRestarts, MosquittoRestarts: cfg.MosquittoRestarts,
	})

	log.Info("starting the stack", "dir", cfg.Dir)
	stack, err := devstack.StartStack(ctx, devstack.StackConfig{Dir: cfg.Dir})
	if err != nil {
		return res, fmt.Errorf("chaos: start the stack: %w", err)
	}
	defer stack.Close()

	ledgerFile, err := os.Create(LedgerPath(cfg.Dir))
	if err != nil {
		return res, fmt.Errorf("chaos: create the ledger: %w", err)
	}
	defer ledgerFile.Close()
	ledger := sim.NewLedgerWriter(ledgerFile)

	// The faults run beside the publisher; either failing ends both.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var faultErr error
	wg.Go(func() {
		faultErr = runSchedule(runCtx, stack, start, res.Schedule, res.Faults, log)
		if faultErr != nil {
			cancel()
		}
	})
	res.Published, err = sim.Run(runCtx, sim.RunConfig{
		Plan: sim.PlanConfig{
			Seed: cfg.Seed, Rate: cfg.Rate, Lines: 3, DevicesPerLine: 4,
			Measurements: []string{"temperature", "pressure", "humidity", "vibration", "current"},
			Shares:       cfg.Shares, ClockSkew: 2 * time.Second, ClockDriftPPM: 50,
		},
		Broker: stack.Mosquitto.URL(), ClientID: "plantlake-chaos-sim", QoS: 1,
		Count: cfg.Count, Publishers: cfg.Publishers, Ledger: ledger,
		Progress: 30 * time.Second, Logger: log,
	})
	wg.Wait()
	res.PublishTime = time.Since(start)
	if faultErr != nil {
		return res, faultErr
	}
	if err != nil {
		return res, fmt.Errorf("chaos: publish: %w", err)
	}
	if err := ledger.Flush(); err != nil {
		return res, fmt.Errorf("chaos: %w", err)
	}
	if err := ledgerFile.Close(); err != nil {
		return res, fmt.Errorf("chaos: close the ledger: %w", err)
	}
	log.Info("published", "readings", res.Published.Published, "retries", res.Published.Retries,
		"took", res.PublishTime.Round(time.Second), "faults", res.Faults)

	drainStart := time.Now()
	if err := waitDrained(ctx, stack, cfg.StableFor, cfg.DrainTimeout, log); err != nil {
		return res, err
	}
	res.DrainTime = time.Since(drainStart)
	log.Info("drained", "took", res.DrainTime.Round(time.Second))

	checkStart := time.Now()
	res.Check, err = CheckTables(ctx, cfg.Python, LedgerPath(cfg.Dir), stack.Warehouse())
	res.CheckTime = time.Since(checkStart)
	if err != nil {
		return res, err
	}
	return res, nil
}

// runSchedule carries out the events at their times (one after the other:
// an event due while the previous one is still restarting its target
// follows it at once), counting them in faults.
func runSchedule(ctx context.Context, s *devstack.Stack, start time.Time, events []Event, faults map[string]int, log *slog.Logger) error {
	for _, ev := range events {
		if err := sleep(ctx, time.Until(start.Add(ev.At))); err != nil {
			return nil // publishing ended first: the remaining faults are skipped
		}
		log.Info("fault", "event", ev.String(), "late", time.Since(start.Add(ev.At)).Round(time.Millisecond))
		if err := apply(ctx, s, ev, log); err != nil {
			return fmt.Errorf("chaos: %s: %w", ev, err)
		}
		faults[ev.Target]++
	}
	return nil
}

// restartAttempts bounds how often a target that does not come back is
// started again (a restart under load can miss its ready timeout).
const restartAttempts = 3

// apply carries out one event and waits until its target serves again.
func apply(ctx context.Context, s *devstack.Stack, ev Event, log *slog.Logger) error {
	var start func(context.Context) error
	switch ev.Action {
	case ActionKill:
		p := s.Service(ev.Target)
		if p == nil {
			return fmt.Errorf("no service %q in the stack", ev.Target)
		}
		p.Kill()
		start = func(ctx context.Context) error {
			if p.Running() {
				return nil
			}
			return p.Restart(ctx)
		}
	case ActionKafkaRestart:
		if err := s.Kafka.Stop(); err != nil {
			// Killed after its stop timeout: still a fault, worth knowing.
			log.Warn("kafka did not stop on SIGTERM", "err", err)
		}
		start = func(ctx context.Context) error {
			if s.Kafka.Running() {
				return nil
			}
			return s.Kafka.StartContext(ctx)
		}
	case ActionMosquittoRestart:
		if err := s.Mosquitto.Stop(); err != nil {
			log.Warn("mosquitto did not stop on SIGTERM", "err", err)
		}
		start = func(ctx context.Context) error {
			if s.Mosquitto.Running() {
				return nil
			}
			return s.Mosquitto.StartContext(ctx)
		}
	default:
		return fmt.Errorf("unknown action %q", ev.Action)
	}
	if err := sleep(ctx, ev.Down); err != nil {
		// Still bring the target back: the stack must serve for the drain.
		ctx = context.WithoutCancel(ctx)
	}
	var err error
	for range restartAttempts {
		if err = start(ctx); err == nil {
			return nil
		}
		if sleep(ctx, 2*time.Second) != nil {
			break
		}
	}
	return fmt.Errorf("start %s again: %w", ev.Target, err)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FaultTargets lists the targets of faults in a stable order, for printing.
func FaultTargets(faults map[string]int) []string {
	return slices.Sorted(maps.Keys(faults))
}
