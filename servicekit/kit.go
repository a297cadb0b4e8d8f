package servicekit

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/servicekit/grpcserver"
	"github.com/plantlake/plantlake/servicekit/identity"
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
	// Scopes are the scopes the service's gRPC methods need (see
	// grpcserver.Server.RequireScopes); PipelineService's are built in.
	Scopes map[string]identity.Scope
	// GRPCServerOptions are added to the gRPC server's own (see
	// grpcserver.Options.ServerOptions).
	GRPCServerOptions []grpc.ServerOption
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
	// UnixSocket, if set, is a path where Run serves the gRPC server on a
	// Unix socket too (see Service.UnixSocket).
	UnixSocket string

	grpcAddr   string
	identities *identity.Store
	serverTLS  *grpcserver.TLS
	clientTLS  *tls.Config
	hangup     chan os.Signal
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
	k := &Kit{Name: opts.Name, Config: opts.Config, Logger: logger, Tracing: tracing, Metrics: metrics.NewRegistry()}
	if err := k.setUpSecurity(); err != nil {
		return nil, fmt.Errorf("servicekit: %s: %w", opts.Name, err)
	}
	k.GRPC = grpcserver.New(grpcserver.Options{
		Logger:         logger,
		Identities:     k.identities,
		AuthToken:      opts.Config.AuthToken,
		TLS:            k.serverTLS,
		Scopes:         opts.Scopes,
		MapError:       opts.MapError,
		Registerer:     k.Metrics,
		MaxMessageSize: opts.Config.MaxRequestBytes,
		ServerOptions:  opts.GRPCServerOptions,
	})
	return k, nil
}

// setUpSecurity loads the identities file and the TLS files, picks the
// gRPC listen address (loopback only when nothing is secured) and says at
// start how callers are checked.
func (k *Kit) setUpSecurity() error {
	cfg := k.Config
	var err error
	if cfg.Identities != "" {
		if k.identities, err = identity.Open(cfg.Identities); err != nil {
			return err
		}
	}
	if cfg.TLSCert != "" {
		files := grpcserver.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, ClientCA: cfg.TLSClientCA}
		if k.serverTLS, err = grpcserver.LoadTLS(files); err != nil {
			return err
		}
	}
	if cfg.TLSCA != "" || cfg.TLSClientCert != "" {
		if k.clientTLS, err = grpcclient.LoadTLS(cfg.TLSCA, cfg.TLSClientCert, cfg.TLSClientKey); err != nil {
			return err
		}
	}
	if k.identities != nil || k.serverTLS != nil {
		// Registered now, not when the reload loop starts, so that a SIGHUP
		// sent right after start cannot end the process.
		k.hangup = make(chan os.Signal, 1)
		signal.Notify(k.hangup, syscall.SIGHUP)
	}

	addr, loopbackOnly := cfg.ListenAddr()
	k.grpcAddr = addr
	switch {
	case !cfg.Secured() && loopbackOnly:
		k.Logger.Warn("no --identities, --auth-token or --tls-cert: gRPC listens on loopback only, and anyone on this machine may call every method", "grpc", addr)
	case !cfg.Secured():
		k.Logger.Warn("--insecure-listen-any: gRPC listens without credentials or TLS, and anyone who reaches it may call every method", "grpc", addr)
	case k.identities == nil && cfg.AuthToken == "" && cfg.TLSClientCA == "":
		k.Logger.Warn("TLS without --identities, --auth-token or --tls-client-ca: connections are encrypted, but anyone who reaches the server may call every method", "grpc", addr)
	default:
		attrs := []any{"grpc", addr, "tls", k.serverTLS != nil, "client_certificates", cfg.TLSClientCA != ""}
		if k.identities != nil {
			attrs = append(attrs, "identities", cfg.Identities, "identity_count", k.identities.Current().Len())
		} else if cfg.AuthToken != "" {
			attrs = append(attrs, "shared_token", true)
		}
		k.Logger.Info("gRPC callers are checked", attrs...)
	}
	return nil
}

// reloadOnHangup reloads the identities file and the TLS files on every
// SIGHUP until ctx ends. A file that fails to load is logged and the
// settings in force stay.
func (k *Kit) reloadOnHangup(ctx context.Context) error {
	defer signal.Stop(k.hangup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.hangup:
		}
		if k.identities != nil {
			if set, err := k.identities.Reload(); err != nil {
				k.Logger.Error("SIGHUP: identities not reloaded; the previous ones stay in force", "err", err)
			} else {
				k.Logger.Info("SIGHUP: identities reloaded", "identities", k.identities.Path(), "identity_count", set.Len())
			}
		}
		if k.serverTLS != nil {
			if err := k.serverTLS.Reload(); err != nil {
				k.Logger.Error("SIGHUP: TLS files not reloaded; the previous ones stay in force", "err", err)
			} else {
				k.Logger.Info("SIGHUP: TLS certificate reloaded", "cert", k.Config.TLSCert)
			}
		}
	}
}

// Service returns the Service that Run serves for the kit: its servers on
// the configured addresses, with the given loops (and the loop that
// reloads the identities and TLS files on SIGHUP).
func (k *Kit) Service(loops ...Loop) Service {
	if k.hangup != nil {
		loops = append([]Loop{k.reloadOnHangup}, loops...)
	}
	return Service{
		Logger:          k.Logger,
		GRPC:            k.GRPC,
		GRPCAddr:        k.grpcAddr,
		Metrics:         k.Metrics,
		MetricsAddr:     k.Config.MetricsAddr,
		Pprof:           k.Config.Pprof,
		ShutdownTimeout: k.Config.ShutdownTimeout,
		Loops:           loops,
		Tracing:         k.Tracing,
		OnListen:        k.OnListen,
		UnixSocket:      k.UnixSocket,
	}
}

// Run serves the kit's gRPC server and metrics and runs the loops until ctx
// ends (see the package function Run).
func (k *Kit) Run(ctx context.Context, loops ...Loop) error {
	return Run(ctx, k.Service(loops...))
}

// Dial connects to another plantlake service (e.g. Config.CatalogAddr)
// with tracing, the service's --auth-token and the client TLS of --tls-ca
// and --tls-client-cert.
func (k *Kit) Dial(target string) (*grpc.ClientConn, error) {
	return grpcclient.Dial(target, grpcclient.Options{AuthToken: k.Config.AuthToken, TLS: k.clientTLS})
}
