// Package app wires ingest together on the service kit: configuration,
// logging, telemetry, the catalog client, the raw-table sink, the ingester
// engine, and the gRPC (PipelineService) and metrics servers, all run until
// the context ends or, with --run-once, until the engine is caught up.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"

	"github.com/plantlake/plantlake/services/ingest/internal/config"
	"github.com/plantlake/plantlake/services/ingest/internal/control"
	"github.com/plantlake/plantlake/services/ingest/internal/ingester"
	"github.com/plantlake/plantlake/services/ingest/internal/rawsink"
)

// tracerName names ingest's spans' instrumentation scope.
const tracerName = "github.com/plantlake/plantlake/services/ingest"

// Run runs ingest with the command-line arguments args (without the
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
	if _, set := os.LookupEnv("GOMEMLIMIT"); cfg.MemoryLimit > 0 && !set {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	kit, err := servicekit.New(ctx, servicekit.Options{Name: "ingest", Config: &cfg.Shared, LogOutput: stderr})
	if err != nil {
		return err
	}
	conn, err := kit.Dial(cfg.Shared.CatalogAddr)
	if err != nil {
		return err
	}
	defer conn.Close()

	// The engine exists before the table is open so that GetStatus answers
	// (STARTING) while ingest waits for the catalog.
	sink := &lazySink{}
	engine, err := ingester.New(ingester.Config{
		Brokers:         cfg.Shared.KafkaBrokers,
		KafkaConfig:     cfg.Shared.KafkaConfig,
		GroupID:         cfg.Group,
		Topics:          cfg.Topics,
		TopicPartitions: cfg.Shared.KafkaPartitions,
		BatchMaxRows:    cfg.BatchMaxRows,
		BatchMaxBytes:   cfg.BatchMaxBytes,
		BatchMaxAge:     cfg.BatchMaxAge,
		RunOnce:         cfg.RunOnce,
		MaxLinks:        cfg.MaxTraceLinks,
		ShutdownTimeout: cfg.Shared.ShutdownTimeout,
	}, sink, kit.Logger, ingester.NewMetrics(kit.Metrics), kit.Tracing.Provider.Tracer(tracerName))
	if err != nil {
		return err
	}
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, control.NewServer(engine, started))

	// Run-once ends the service when the engine is done.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func(ctx context.Context) error {
		defer stop()
		s, err := openSink(ctx, catalogv1.NewCatalogServiceClient(conn), kit.Logger)
		if err != nil {
			return err
		}
		sink.set(s)
		kit.GRPC.SetServing(true)
		if err := engine.Run(ctx); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		return nil
	}
	return kit.Run(runCtx, loop)
}

// openSink opens the raw table through the catalog, retrying until the
// catalog answers or ctx ends.
func openSink(ctx context.Context, client catalogv1.CatalogServiceClient, log *slog.Logger) (*rawsink.Sink, error) {
	backoff := 200 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := rawsink.Open(cctx, client, log)
		cancel()
		if err == nil {
			return s, nil
		}
		if errors.Is(err, rawsink.ErrUnsupportedLocation) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open the raw table: %w", err)
		}
		log.Warn("open the raw table through the catalog; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open the raw table: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
