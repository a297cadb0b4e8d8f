package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/services/catalog/internal/catalog"
	"github.com/plantlake/plantlake/services/catalog/internal/events"
	"github.com/plantlake/plantlake/services/catalog/internal/server"
)

// Options are what tests change about how Run serves.
type Options struct {
	// GRPCListener and MetricsListener, if set, replace the configured
	// addresses (tests listen on free ports).
	GRPCListener, MetricsListener net.Listener
	// LogOutput is where logs go; nil means stderr.
	LogOutput io.Writer
}

// Run serves the catalog until ctx ends.
func Run(ctx context.Context, cfg *Config, opts Options) error {
	kit, err := servicekit.New(ctx, servicekit.Options{
		Name: "catalog", Config: &cfg.Shared, LogOutput: opts.LogOutput, MapError: server.MapError,
		Scopes: server.MethodScopes,
		// Calls run on goroutines that stay, whose stacks have grown
		// already, instead of a new goroutine each: a commit's call chain
		// grew a new goroutine's stack several times, on every commit's
		// critical path.
		GRPCServerOptions: []grpc.ServerOption{grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0)))},
	})
	if err != nil {
		return err
	}
	kit.UnixSocket = cfg.UnixSocket
	log := kit.Logger
	cfg.Memory.Apply()

	dir, err := WarehouseDir(cfg.Shared.Warehouse)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	var ann catalog.Announcer
	var pub *events.Publisher
	if cfg.Announce {
		pub, err = events.New(events.Config{
			Brokers: cfg.Shared.KafkaBrokers, Topic: cfg.CommitTopic, Partitions: cfg.Shared.KafkaPartitions,
			Kafka: cfg.Shared.KafkaConfig,
		}, log.With("component", "events"))
		if err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		defer pub.Close()
		ann = &announcer{pub: pub, log: log}
	}
	cat, err := catalog.New(catalog.Config{
		Warehouse: dir, MaxGroup: cfg.MaxGroupCommit, MaintenanceWorkers: cfg.MaintenanceWorkers,
		MaintenanceTick: cfg.MaintenanceInterval, AutoMaintenance: cfg.AutoMaintenance,
		MaxOptimizeFiles: cfg.MaxOptimizeFiles, MaxOptimizeBytes: cfg.MaxOptimizeBytes,
		MinVacuumRetention: cfg.MinVacuumRetention, StitchMinRowGroupRows: cfg.StitchMinRowGroupRows,
	}, ann, log)
	if err != nil {
		return err
	}
	defer cat.Close()
	registerMetrics(kit.Metrics, cat, pub)

	server.New(cat, log, server.Limits{MaxCommitActions: cfg.MaxCommitActions}).Register(kit.GRPC)
	kit.GRPC.SetServing(true) // the warehouse is open; Kafka is not needed to serve
	log.Info("catalog ready", "warehouse", cat.Root(), "announce", cfg.Announce, "auto_maintenance", cfg.AutoMaintenance)

	loops := []servicekit.Loop{cat.Run}
	if pub != nil {
		loops = append(loops, pub.Run)
	}
	svc := kit.Service(loops...)
	svc.GRPCListener = opts.GRPCListener
	svc.MetricsListener = opts.MetricsListener
	return servicekit.Run(ctx, svc)
}

// announcer encodes commit events as TableCommitEvent protobufs.
type announcer struct {
	pub *events.Publisher
	log *slog.Logger
}

// Announce implements catalog.Announcer; it never blocks.
func (a *announcer) Announce(ev catalog.CommitEvent) {
	b, err := proto.Marshal(server.CommitEventProto(ev))
	if err != nil {
		a.log.Error("encoding commit event", "table", ev.Table, "version", ev.Version, "err", err)
		return
	}
	a.pub.Publish(events.Event{Table: ev.Table, Version: ev.Version, Value: b})
}

func registerMetrics(reg *prometheus.Registry, cat *catalog.Catalog, pub *events.Publisher) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	counter("plantlake_catalog_commit_requests_total", "Commit calls that were committed.", func() float64 { return float64(cat.Stats().Requests) })
	counter("plantlake_catalog_versions_total", "Table versions written by commits.", func() float64 { return float64(cat.Stats().Versions) })
	counter("plantlake_catalog_commit_conflicts_total", "Commit calls aborted by a conflict.", func() float64 { return float64(cat.Stats().Conflicts) })
	if pub != nil {
		counter("plantlake_catalog_events_delivered_total", "Table commit events Kafka acknowledged.", func() float64 { return float64(pub.Stats().Delivered) })
		counter("plantlake_catalog_events_failed_total", "Table commit events that failed (announced again later).", func() float64 { return float64(pub.Stats().Failed) })
	}
}
