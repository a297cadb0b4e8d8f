// Package app wires ingest together on the service kit: configuration,
// logging, telemetry, the catalog client, the pipeline runner with its Kafka
// source and raw-table sink, and the gRPC (PipelineService) and metrics
// servers, all run until the context ends or, with --run-once, until the
// source is caught up.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/kafkasource"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/backoff"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
	"github.com/plantlake/plantlake/servicekit/pipelinesvc"

	"github.com/plantlake/plantlake/services/ingest/internal/config"
	"github.com/plantlake/plantlake/services/ingest/internal/ingester"
	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// tracerName names ingest's spans' instrumentation scope.
const tracerName = "github.com/plantlake/plantlake/services/ingest"

// serviceName is ingest's name in logs, metrics and status.
const serviceName = "ingest"

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

	// runner is set below, before anything calls EnsureTopics.
	var runner *pipeline.Runner[[]tablesink.File]
	rows := ingester.NewRows()
	defer rows.Close()
	src, err := kafkasource.New(kafkasource.Config{
		Brokers:     cfg.Shared.KafkaBrokers,
		KafkaConfig: cfg.Shared.KafkaConfig,
		GroupID:     cfg.Group,
		Topics:      cfg.Topics,
		AppID:       rawtable.AppID,
		EnsureTopics: func(ctx context.Context, admin *kafka.AdminClient, topics []string) error {
			return ensureTopics(ctx, admin, topics, cfg, kit.Logger, runner.ReportError)
		},
		RunOnce: cfg.RunOnce,
	}, rows, kit.Logger, kafkasource.NewMetrics(serviceName, kit.Metrics))
	if err != nil {
		return err
	}
	// The runner exists before the table is open so that GetStatus answers
	// (STARTING, with the reason in last_error) while ingest waits for the catalog.
	sink := &pipeline.Deferred[[]tablesink.File]{}
	runner, err = pipeline.New(pipeline.Config{
		Name:            serviceName,
		Target:          rawtable.Name,
		BatchMaxRows:    cfg.BatchMaxRows,
		BatchMaxBytes:   cfg.BatchMaxBytes,
		BatchMaxAge:     cfg.BatchMaxAge,
		RunOnce:         cfg.RunOnce,
		MaxLinks:        cfg.MaxTraceLinks,
		ShutdownTimeout: cfg.Shared.ShutdownTimeout,
	}, src, pipeline.Batch[[]tablesink.File](rows), sink, kit.Logger, pipeline.NewMetrics(serviceName, kit.Metrics), kit.Tracing.Provider.Tracer(tracerName))
	if err != nil {
		return err
	}
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, pipelinesvc.New(control{runner, src, started}, kit.Logger))

	// Run-once ends the service when the runner is done.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func(ctx context.Context) error {
		defer stop()
		client := catalogv1.NewCatalogServiceClient(conn)
		var target *tablesink.Target
		err := backoff.Retry(ctx, backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}, kit.Logger,
			"open the raw table through the catalog", runner.ReportError,
			func(ctx context.Context) error {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				var err error
				target, err = tablesink.Open(cctx, client, ingester.Table, kit.Logger)
				if errors.Is(err, tablesink.ErrUnsupportedLocation) {
					return backoff.Permanent(err)
				}
				return err
			})
		if err != nil {
			return err
		}
		sink.Set(tablesink.Single{T: target})
		if err := runner.Run(ctx); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if cfg.RunOnce {
			attrs := []any{"waited_for_records", src.PollWait().Round(time.Millisecond)}
			if kib, err := peakRSSKiB(); err == nil {
				attrs = append(attrs, "peak_rss_kib", kib)
			}
			kit.Logger.Info("run-once: done", attrs...)
		}
		return nil
	}
	health := func(ctx context.Context) error {
		pipelinesvc.WatchHealth(ctx, 500*time.Millisecond, runner.Healthy, kit.GRPC.SetServing)
		return nil
	}
	return kit.Run(runCtx, loop, health)
}

// ensureTopics creates the topics that do not exist yet, retrying while
// Kafka does not answer.
func ensureTopics(ctx context.Context, admin *kafka.AdminClient, topics []string, cfg config.Config, log *slog.Logger, onErr func(error)) error {
	specs := make([]kafkatopic.Spec, len(topics))
	for i, t := range topics {
		specs[i] = kafkatopic.Spec{Name: t, Partitions: cfg.Shared.KafkaPartitions, Retention: cfg.KafkaRetention}
	}
	return backoff.Retry(ctx, backoff.Default, log, "create missing Kafka topics", onErr, func(ctx context.Context) error {
		res, err := kafkatopic.Ensure(ctx, admin, specs...)
		for _, r := range res {
			if r.Outcome != kafkatopic.Existed {
				log.Info("kafka topic", "topic", r.Topic, "outcome", r.Outcome.String(), "max_message_bytes", r.MaxMessageBytes)
			}
		}
		return err
	})
}

// peakRSSKiB is the process's peak resident set size so far (VmHWM in
// /proc/self/status, Linux only), in KiB. It counts this program only,
// unlike the rusage a parent gets from wait4: a child started by vfork (as
// Go's os/exec starts it) shares its parent's memory until exec, and exec
// folds that memory's high-water mark into the child's maxrss.
func peakRSSKiB() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: VmHWM %q: %w", v, err)
			}
			return kib, nil
		}
	}
	return 0, errors.New("peak RSS: no VmHWM in /proc/self/status")
}
