// Command bridge forwards MQTT sensor readings to Kafka at least once: it
// acknowledges a reading to the MQTT broker only after Kafka has stored it.
// It serves plantlake.pipeline.v1.PipelineService (GetStatus, Pause, Resume,
// TriggerCommit) with gRPC health and reflection on --grpc-addr (default
// :7002) and Prometheus metrics on --metrics-addr (default :9102).
// Run with --help for every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/services/bridge/internal/bridge"
	"github.com/plantlake/plantlake/services/bridge/internal/pipelineapi"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		os.Exit(1)
	}
}

// run parses the settings, builds the service kit and the bridge, and
// serves until ctx ends; the bridge then drains within --shutdown-timeout.
func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	shared := config.Shared{GRPCAddr: ":7002", MetricsAddr: ":9102", ShutdownTimeout: bridge.DefaultShutdownTimeout}
	shared.Register(fs, config.Kafka, config.MQTT)
	cfg := bridge.DefaultConfig()
	cfg.ClientID = "plantlake-bridge"
	cfg.RegisterFlags(fs)
	var mem config.Memory
	mem.Register(fs, bridgeMemoryLimit, bridgeGCPercent)
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if err := mem.Validate(); err != nil {
		return err
	}
	cfg.MQTTBroker = shared.MQTTBroker
	cfg.KafkaBrokers = shared.KafkaBrokers
	cfg.KafkaConfig = shared.KafkaConfig
	cfg.KafkaPartitions = shared.KafkaPartitions
	// The kit waits the shutdown timeout (plus a second) for the loops: the
	// bridge's drain leaves room for disconnecting and closing the producer.
	cfg.ShutdownTimeout = max(shared.ShutdownTimeout-2*time.Second, time.Second)

	kit, err := servicekit.New(ctx, servicekit.Options{Name: "bridge", Config: &shared})
	if err != nil {
		return err
	}
	mem.Apply()
	b, err := bridge.New(cfg, bridge.Options{
		Logger:         kit.Logger,
		Registerer:     kit.Metrics,
		TracerProvider: kit.Tracing.Provider,
		Propagator:     otel.GetTextMapPropagator(),
	})
	if err != nil {
		return err
	}
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, pipelineapi.NewServer(b, kit.Logger))
	health := func(ctx context.Context) error {
		pipelineapi.WatchHealth(ctx, b, time.Second, kit.GRPC.SetServing)
		return nil
	}
	return kit.Run(ctx, b.Run, health)
}

// The bridge's memory defaults trade memory it does not need for CPU it
// does: the live heap is small (readings in flight), so Go's default of
// 100 % collects very often at tens of thousands of readings per second.
// Collect at 5× the live heap but keep the heap under 192 MiB (the
// service's budget is 256 MiB RSS, librdkafka included).
const (
	bridgeMemoryLimit = 192 << 20
	bridgeGCPercent   = 400
)
