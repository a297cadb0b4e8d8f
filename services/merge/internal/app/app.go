// Package app wires merge together on the service kit: configuration,
// logging, telemetry, the catalog client, the pipeline runner with its
// bronze table source and gold sink, and the gRPC (PipelineService) and
// metrics servers, all run until the context ends or, with --run-once,
// until bronze has no newer version.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	"github.com/plantlake/plantlake/pipeline/tablesource"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/backoff"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/merge/internal/config"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/goldsink"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// tracerName names merge's spans' instrumentation scope.
const tracerName = "github.com/plantlake/plantlake/services/merge"

// serviceName is merge's name in logs, metrics and status.
const serviceName = "merge"

// Run runs merge with the command-line arguments args (without the program
// name) until ctx ends, or with --run-once until caught up. Logs go to
// stderr, and so does the usage with -h.
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
	kit, err := servicekit.New(ctx, servicekit.Options{Name: serviceName, Config: &cfg.Shared, LogOutput: stderr})
	if err != nil {
		return err
	}
	conn, err := kit.Dial(cfg.Shared.CatalogAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := catalogv1.NewCatalogServiceClient(conn)

	follower, err := tablesource.New(tablesource.Config{
		Table:        gold.BronzeName,
		Brokers:      cfg.Shared.KafkaBrokers,
		Kafka:        cfg.Shared.KafkaConfig,
		PollInterval: cfg.PollInterval,
		MaxRows:      int64(cfg.BatchMaxRows),
	}, client, kit.Logger)
	if err != nil {
		return err
	}
	batch := mergeplan.NewBatch(cfg.Key)
	src, err := tablesource.NewSource(follower, tablesource.SourceConfig{
		AppID:   gold.AppID,
		Columns: append(gold.BronzeColumns(), mergeplan.TraceparentColumn),
		RunOnce: cfg.RunOnce,
	}, batch, kit.Logger)
	if err != nil {
		return err
	}
	// The runner exists before gold is open so that GetStatus answers
	// (STARTING, with the reason in last_error) while merge waits for the catalog.
	sink := &pipeline.Deferred[*mergeplan.Data]{}
	runner, err := pipeline.New(pipeline.Config{
		Name:            serviceName,
		Target:          gold.Name,
		BatchMaxRows:    cfg.BatchMaxRows,
		BatchMaxBytes:   cfg.BatchMaxBytes,
		BatchMaxAge:     cfg.BatchMaxAge,
		RunOnce:         cfg.RunOnce,
		ShutdownTimeout: cfg.Shared.ShutdownTimeout,
	}, src, pipeline.Batch[*mergeplan.Data](batch), sink, kit.Logger, pipeline.NewMetrics(serviceName, kit.Metrics), kit.Tracing.Provider.Tracer(tracerName))
	if err != nil {
		return err
	}
	ctl := &control{Runner: runner, src: src, started: started}
	registerMetrics(kit.Metrics, ctl)
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, pipelinesvc.New(ctl, kit.Logger))

	// Run-once ends the service when the runner is done.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func(ctx context.Context) error {
		defer stop()
		var gs *goldsink.Sink
		err := backoff.Retry(ctx, backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, kit.Logger,
			"open the gold table through the catalog", runner.ReportError,
			func(ctx context.Context) error {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				var err error
				gs, err = goldsink.Open(cctx, client, goldsink.Options{
					Strategy: cfg.Strategy, Key: cfg.Key, MaxFileRows: cfg.MaxFileRows, KeyCacheBytes: cfg.KeyCacheBytes,
				}, kit.Logger)
				if errors.Is(err, tablesink.ErrUnsupportedLocation) {
					return backoff.Permanent(err)
				}
				return err
			})
		if err != nil {
			return err
		}
		ctl.setSink(gs)
		sink.Set(gs)
		if err := runner.Run(ctx); err != nil {
			// A shutdown while the runner starts (reading gold's positions)
			// cancels that read: a clean stop, not a failure.
			if ctx.Err() != nil && (errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
				return nil
			}
			return fmt.Errorf("merge: %w", err)
		}
		if cfg.RunOnce {
			kit.Logger.Info("run-once: done", "counts", fmt.Sprintf("%+v", gs.Counts()))
		}
		return nil
	}
	health := func(ctx context.Context) error {
		pipelinesvc.WatchHealth(ctx, 500*time.Millisecond, runner.Healthy, kit.GRPC.SetServing)
		return nil
	}
	return kit.Run(runCtx, loop, health)
}
