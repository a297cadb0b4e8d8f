package servicekit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/servicekit/grpcserver"
	"github.com/plantlake/plantlake/servicekit/logging"
	"github.com/plantlake/plantlake/servicekit/metrics"
	"github.com/plantlake/plantlake/servicekit/telemetry"
)

// Options configure New.
type Options struct {
	// Name is the service's name ("catalog", "ingest"): the logger's
	// service attribute and the default of OTEL_SERVICE_NAME.
	Name string
	// Config holds the parsed shared settings. Required.
	Config *config.Shared
	// LogOutput is where the logger writes; nil means os.Stderr.
	LogOutput io.Writer
	// MapError maps the service's domain errors to gRPC statuses (see
	// grpcserver.Options.MapError).
	MapError func(error) *status.Status
}

// Kit is what a service's run function builds first: the logger, tracing,
// the metrics registry and the gRPC server, configured from the shared
// settings. Register the service's gRPC services on GRPC and its
// collectors on Metrics, then call Run.
type Kit struct {
	// Name is the service's name.
	Name string
	// Config holds the shared settings.
	Config *config.Shared
	// Logger is the service's logger.
	Logger *slog.Logger
	// Tracing is the installed tracer provider.
	Tracing *telemetry.Tracing
	// Metrics is the registry served at /metrics.
	Metrics *prometheus.Registry
	// GRPC is the gRPC server (reflection and health included).
	GRPC *grpcserver.Server
	// OnListen, if set, is called by Run with the bound addresses (see
	// Service.OnListen); set it to learn the ports of ":0" addresses.
	OnListen func(grpcAddr, metricsAddr net.Addr)
}

// New validates the shared settings and builds the kit.
func New(ctx context.Context, opts Options) (*Kit, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("servicekit: %s: Options.Config is required", opts.Name)
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("servicekit: %s: %w", opts.Name, err)
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	logger, err := logging.New(out, opts.Config.LogFormat, opts.Config.LogLevel, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("servicekit: %s: %w", opts.Name, err)
	}
	tracing, err := telemetry.Setup(ctx, logger, opts.Name)
	if err != nil {
		return nil, fmt.Errorf("servicekit: %s: %w", opts.Name, err)
	}
	reg := metrics.NewRegistry()
	srv := grpcserver.New(grpcserver.Options{
		Logger:     logger,
		AuthToken:  opts.Config.AuthToken,
		MapError:   opts.MapError,
		Registerer: reg,
	})
	return &Kit{Name: opts.Name, Config: opts.Config, Logger: logger, Tracing: tracing, Metrics: reg, GRPC: srv}, nil
}

// Service returns the Service that Run serves for the kit: its servers on
// the configured addresses, with the given loops.
func (k *Kit) Service(loops ...Loop) Service {
	return Service{
		Logger:          k.Logger,
		GRPC:            k.GRPC,
		GRPCAddr:        k.Config.GRPCAddr,
		Metrics:         k.Metrics,
		MetricsAddr:     k.Config.MetricsAddr,
		ShutdownTimeout: k.Config.ShutdownTimeout,
		Loops:           loops,
		Tracing:         k.Tracing,
		OnListen:        k.OnListen,
	}
}

// Run serves the kit's gRPC server and metrics and runs the loops until ctx
// ends (see the package function Run).
func (k *Kit) Run(ctx context.Context, loops ...Loop) error {
	return Run(ctx, k.Service(loops...))
}

// Dial connects to another plantlake service (e.g. Config.CatalogAddr)
// with tracing and the shared bearer token.
func (k *Kit) Dial(target string) (*grpc.ClientConn, error) {
	return grpcclient.Dial(target, grpcclient.Options{AuthToken: k.Config.AuthToken})
}
