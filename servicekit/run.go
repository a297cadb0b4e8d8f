package servicekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcserver"
	"github.com/plantlake/plantlake/servicekit/metrics"
	"github.com/plantlake/plantlake/servicekit/telemetry"
)

// ErrShutdownTimeout is returned by Run when a loop was still running a
// second after the shutdown deadline; Run returns anyway so that the
// process can exit within a bounded time.
var ErrShutdownTimeout = errors.New("shutdown deadline passed with loops still running")

// shutdownGrace is how long after the shutdown deadline Run still waits for
// the loops, which see their context cancelled when the shutdown starts.
const shutdownGrace = time.Second

// Loop is a service's own long-running work (consume, batch, commit). It
// runs until ctx ends, then finishes or abandons what is in flight and
// returns; an error stops the whole service.
type Loop func(ctx context.Context) error

// Service is what Run serves.
type Service struct {
	// Logger receives the life-cycle records. Required.
	Logger *slog.Logger
	// GRPC is the gRPC server. Required.
	GRPC *grpcserver.Server
	// GRPCAddr is the gRPC listen address, used when GRPCListener is nil.
	GRPCAddr string
	// GRPCListener, if set, is served instead of listening on GRPCAddr.
	GRPCListener net.Listener
	// UnixSocket, if set, is a path where the gRPC server is served too, on
	// a Unix socket (see ListenUnix): callers on the same machine skip TCP.
	// The socket is removed when Run returns.
	UnixSocket string
	// Metrics is the registry served at /metrics; nil turns the metrics
	// server off.
	Metrics *prometheus.Registry
	// MetricsAddr is the metrics listen address, used when MetricsListener
	// is nil; empty turns the metrics server off.
	MetricsAddr string
	// MetricsListener, if set, is served instead of listening on MetricsAddr.
	MetricsListener net.Listener
	// Pprof adds Go's profiles at /debug/pprof/ to the metrics server.
	Pprof bool
	// ShutdownTimeout bounds the graceful shutdown; 0 means
	// config.DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Loops run beside the servers.
	Loops []Loop
	// Tracing, if set, is flushed after everything else stopped.
	Tracing *telemetry.Tracing
	// OnListen, if set, is called with the bound addresses before serving
	// starts (metricsAddr is nil when metrics are off); tests that listen
	// on port 0 learn their ports here.
	OnListen func(grpcAddr, metricsAddr net.Addr)
}

// Run listens, then serves gRPC, the metrics and the loops under one
// errgroup until ctx ends or one of them fails. It then shuts down: every
// health status turns NOT_SERVING, the loops' context is cancelled, the
// gRPC server stops taking calls and waits for those in flight until the
// shutdown deadline, after which it closes the connections (cancelling the
// calls still running). Run returns nil after a shutdown caused by ctx, the
// first error otherwise, and ErrShutdownTimeout if a loop outlives the
// deadline by more than a second. A loop's context.Canceled after ctx ended
// counts as a clean stop.
func Run(ctx context.Context, svc Service) error {
	if svc.Logger == nil || svc.GRPC == nil {
		return errors.New("servicekit: Run needs a Logger and a GRPC server")
	}
	timeout := svc.ShutdownTimeout
	if timeout <= 0 {
		timeout = config.DefaultShutdownTimeout
	}

	grpcLis, err := listen(svc.GRPCListener, svc.GRPCAddr)
	if err != nil {
		return fmt.Errorf("servicekit: gRPC listener: %w", err)
	}
	var unixLis net.Listener
	if svc.UnixSocket != "" {
		if unixLis, err = ListenUnix(svc.UnixSocket); err != nil {
			return errors.Join(err, grpcLis.Close())
		}
		// The gRPC server closes it when it stops; this covers the errors
		// before that (closing twice is harmless).
		defer unixLis.Close()
	}
	var (
		metricsLis net.Listener
		metricsSrv *http.Server
	)
	if svc.Metrics != nil && (svc.MetricsListener != nil || svc.MetricsAddr != "") {
		if metricsLis, err = listen(svc.MetricsListener, svc.MetricsAddr); err != nil {
			return errors.Join(fmt.Errorf("servicekit: metrics listener: %w", err), grpcLis.Close())
		}
		metricsSrv = metrics.NewServer(svc.Metrics, svc.Pprof)
	}

	if svc.OnListen != nil {
		var metricsAddr net.Addr
		if metricsLis != nil {
			metricsAddr = metricsLis.Addr()
		}
		svc.OnListen(grpcLis.Addr(), metricsAddr)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := svc.GRPC.Serve(grpcLis); err != nil {
			return fmt.Errorf("servicekit: serve gRPC on %s: %w", grpcLis.Addr(), err)
		}
		return nil
	})
	attrs := []any{"grpc", grpcLis.Addr().String()}
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("servicekit: serve metrics on %s: %w", metricsLis.Addr(), err)
			}
			return nil
		})
		attrs = append(attrs, "metrics", "http://"+metricsLis.Addr().String()+metrics.Path)
	}
	if unixLis != nil {
		g.Go(func() error {
			if err := svc.GRPC.Serve(unixLis); err != nil {
				return fmt.Errorf("servicekit: serve gRPC on unix socket %s: %w", unixLis.Addr(), err)
			}
			return nil
		})
		attrs = append(attrs, "unix", unixLis.Addr().String())
	}
	for _, loop := range svc.Loops {
		g.Go(func() error {
			err := loop(gctx)
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		})
	}
	svc.Logger.Info("serving", attrs...)

	groupDone := make(chan struct{})
	var groupErr error
	go func() {
		groupErr = g.Wait()
		close(groupDone)
	}()

	<-gctx.Done()
	start := time.Now()
	svc.Logger.Info("shutting down", "reason", context.Cause(gctx), "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if !svc.GRPC.Shutdown(sctx) {
		svc.Logger.Warn("shutdown deadline passed: gRPC calls in flight cancelled", "timeout", timeout)
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(sctx); err != nil {
			_ = metricsSrv.Close() // the deadline passed; drop the scrape in flight
		}
	}
	deadline, _ := sctx.Deadline()
	hard := time.NewTimer(time.Until(deadline) + shutdownGrace)
	defer hard.Stop()
	select {
	case <-groupDone:
	case <-hard.C:
		return fmt.Errorf("servicekit: %w (after %v)", ErrShutdownTimeout, time.Since(start).Round(time.Millisecond))
	}
	if svc.Tracing != nil {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := svc.Tracing.Shutdown(tctx); err != nil {
			svc.Logger.Warn("flushing traces failed", "err", err)
		}
	}
	svc.Logger.Info("stopped", "elapsed", time.Since(start).Round(time.Millisecond))
	return groupErr
}

func listen(lis net.Listener, addr string) (net.Listener, error) {
	if lis != nil {
		return lis, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	return lis, nil
}
