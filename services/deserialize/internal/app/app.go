// Package app wires deserialize together on the service kit: configuration,
// logging, telemetry, the catalog client, the pipeline runner with a table
// source on raw and a sink on dead letters and bronze, the rules (reloaded
// on SIGHUP or ReloadRules), and the gRPC (PipelineService) and metrics
// servers, all run until the context ends or, with --run-once, until raw is
// caught up.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/backoff"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/deserialize/internal/config"
	"github.com/plantlake/plantlake/services/deserialize/internal/deserializer"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/reprocess"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// tracerName names deserialize's spans' instrumentation scope.
const tracerName = "github.com/plantlake/plantlake/services/deserialize"

// serviceName is deserialize's name in logs, metrics and status.
const serviceName = "deserialize"

// Run runs deserialize with the command-line arguments args (without the
// program name) until ctx ends, or with --run-once until caught up. Logs go
// to stderr, and so does the usage with -h.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	started := time.Now()
	cfg, err := config.Load(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Memory.Apply()
	set, err := loadRules(cfg.RulesFile)
	if err != nil {
		return err
	}
	pattern, err := parse.NewTopicPattern(cfg.TopicPattern, cfg.Plant)
	if err != nil {
		return fmt.Errorf("--topic-pattern: %w", err)
	}
	kit, err := servicekit.New(ctx, servicekit.Options{Name: serviceName, Config: &cfg.Shared, LogOutput: stderr})
	if err != nil {
		return err
	}
	kit.Logger.Info("rules loaded", "file", cfg.RulesFile, "generation", set.Generation(), "digest", set.Digest())
	conn, err := kit.Dial(cfg.Shared.CatalogAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := catalogv1.NewCatalogServiceClient(conn)

	rows := deserializer.New(pattern, set)
	kafka := map[string]string{"go.logs.channel.enable": "false"}
	for k, v := range cfg.Shared.KafkaConfig {
		kafka[k] = v
	}
	follower, err := tablesource.New(tablesource.Config{
		Table:        cfg.SourceTable,
		Brokers:      cfg.Shared.KafkaBrokers,
		EventsTopic:  cfg.EventsTopic,
		Kafka:        kafka,
		PollInterval: cfg.PollInterval,
		MaxRows:      int64(cfg.BatchMaxRows),
		MaxBytes:     int64(cfg.BatchMaxBytes),
	}, client, kit.Logger)
	if err != nil {
		return err
	}
	// The targets are opened once the catalog answers; until then the
	// runner reports STARTING with the reason in last_error.
	sink := &pipeline.Deferred[[]tablesink.Output]{}
	var multi *tablesink.Multi
	limit := func(appID string, after int64) (int64, bool) {
		if multi == nil {
			return 0, false
		}
		return multi.Limit(appID, after)
	}
	src, err := tablesource.NewSource(follower, tablesource.SourceConfig{
		AppID:   deserializer.AppID(cfg.SourceTable),
		Limit:   limit,
		Wait:    cfg.BatchMaxAge,
		RunOnce: cfg.RunOnce,
	}, rows, kit.Logger)
	if err != nil {
		return err
	}
	runner, err := pipeline.New(pipeline.Config{
		Name:            serviceName,
		Target:          deserializer.Tables[deserializer.Readings].Name,
		BatchMaxRows:    cfg.BatchMaxRows,
		BatchMaxBytes:   cfg.BatchMaxBytes,
		BatchMaxAge:     cfg.BatchMaxAge,
		RunOnce:         cfg.RunOnce,
		ShutdownTimeout: cfg.Shared.ShutdownTimeout,
	}, src, pipeline.Batch[[]tablesink.Output](rows), sink, kit.Logger, pipeline.NewMetrics(serviceName, kit.Metrics),
		kit.Tracing.Provider.Tracer(tracerName))
	if err != nil {
		return err
	}
	ctl := &control{Runner: runner, src: src, rows: rows, rulesFile: cfg.RulesFile, started: started, log: kit.Logger,
		reprocessor: reprocess.New(client, cfg.SourceTable, pattern, kit.Logger)}
	ctl.latest.Store(set)
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, &server{Server: pipelinesvc.New(ctl, kit.Logger), ctl: ctl})
	newMetrics(kit.Metrics, rows)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func(ctx context.Context) error {
		defer stop()
		err := backoff.Retry(ctx, backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, kit.Logger,
			"open the bronze and dead-letter tables through the catalog", runner.ReportError,
			func(ctx context.Context) error {
				var targets []*tablesink.Target
				for _, t := range deserializer.Tables {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					target, err := tablesink.Open(cctx, client, t, kit.Logger)
					cancel()
					if errors.Is(err, tablesink.ErrUnsupportedLocation) {
						return backoff.Permanent(err)
					}
					if err != nil {
						return err
					}
					targets = append(targets, target)
				}
				multi = tablesink.NewMulti(targets...)
				return nil
			})
		if err != nil {
			return err
		}
		sink.Set(multi)
		if err := runner.Run(ctx); err != nil {
			return fmt.Errorf("deserialize: %w", err)
		}
		return nil
	}
	health := func(ctx context.Context) error {
		pipelinesvc.WatchHealth(ctx, 500*time.Millisecond, runner.Healthy, kit.GRPC.SetServing)
		return nil
	}
	hup := func(ctx context.Context) error {
		reloadOnHUP(ctx, ctl)
		return nil
	}
	return kit.Run(runCtx, loop, health, hup)
}

// loadRules loads the rules file, or the built-in defaults without one.
func loadRules(path string) (*rules.Set, error) {
	if path == "" {
		return rules.Default(), nil
	}
	set, err := rules.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--rules: %w", err)
	}
	return set, nil
}

// reloadOnHUP reloads the rules on every SIGHUP until ctx ends.
func reloadOnHUP(ctx context.Context, c *control) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if _, err := c.reload(); err != nil {
				c.log.Error("rules reload on SIGHUP refused; the rules in force stay", "err", err)
			}
		}
	}
}
