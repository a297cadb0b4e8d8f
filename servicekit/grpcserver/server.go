// Package grpcserver builds the gRPC server every plantlake service runs:
// OpenTelemetry tracing (otelgrpc), server reflection, the grpc.health.v1
// health service, an optional bearer-token check, and one interceptor that
// logs each call, recovers panics as Internal, maps domain errors to status
// codes and counts calls in Prometheus.
package grpcserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// DefaultMaxMessageSize is the largest message the server receives unless
// Options.MaxMessageSize says otherwise: commits and snapshots of big
// tables exceed gRPC's 4 MiB default.
const DefaultMaxMessageSize = 64 << 20

// Method prefixes that need no bearer token: health checks and reflection
// (so that probes and `grpcurl list` work without credentials).
var authExempt = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// Options configure New.
type Options struct {
	// Logger receives one record per call (debug when OK, info for client
	// errors, error for server errors and panics). Required.
	Logger *slog.Logger
	// AuthToken, when not empty, is the bearer token every call except
	// health and reflection must carry ("authorization: Bearer <token>");
	// others fail with Unauthenticated.
	AuthToken string
	// MapError turns a handler's error that is not already a gRPC status
	// into one (e.g. ErrNotFound → codes.NotFound). It returns nil for
	// errors it does not know; those become Canceled or DeadlineExceeded
	// for context errors and Unknown otherwise.
	MapError func(error) *status.Status
	// Registerer, when set, gets the call counter and latency histogram
	// (plantlake_grpc_server_handled_total, plantlake_grpc_server_handling_seconds).
	Registerer prometheus.Registerer
	// MaxMessageSize is the largest message received; 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// ServerOptions are appended to the kit's own options.
	ServerOptions []grpc.ServerOption
}

// Server is a gRPC server with the kit's interceptors, reflection and a
// health service. It implements grpc.ServiceRegistrar, so generated
// Register functions take it directly.
type Server struct {
	grpc    *grpc.Server
	health  *health.Server
	logger  *slog.Logger
	opts    Options
	handled *prometheus.CounterVec
	latency *prometheus.HistogramVec

	mu       sync.Mutex
	services []string
}

var _ grpc.ServiceRegistrar = (*Server)(nil)

// New returns a server with reflection and health registered. The health
// status, overall ("") and of every service registered later, starts as
// NOT_SERVING: call SetServing(true) once the service can do its work.
func New(opts Options) *Server {
	if opts.Logger == nil {
		panic("grpcserver: Options.Logger is required")
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	s := &Server{health: health.NewServer(), logger: opts.Logger, opts: opts}
	if opts.Registerer != nil {
		s.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantlake_grpc_server_handled_total",
			Help: "gRPC calls completed on the server, by method and status code.",
		}, []string{"method", "code"})
		s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "plantlake_grpc_server_handling_seconds",
			Help:    "Time from the start of a gRPC call to its end on the server, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"method"})
		opts.Registerer.MustRegister(s.handled, s.latency)
	}
	serverOpts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(notHealthCheck))),
		grpc.MaxRecvMsgSize(opts.MaxMessageSize),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
	s.grpc = grpc.NewServer(append(serverOpts, opts.ServerOptions...)...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	registerReflection(s.grpc, opts.Logger)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// notHealthCheck keeps health probes out of the traces.
func notHealthCheck(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
}

// RegisterService registers a service implementation, as generated
// Register<Service>Server functions do, and adds the service to the health
// service as NOT_SERVING.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
	s.mu.Lock()
	s.services = append(s.services, desc.ServiceName)
	s.mu.Unlock()
	s.health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// GRPC returns the underlying *grpc.Server.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// SetServing sets the health status of the server as a whole ("") and of
// every registered service to SERVING or NOT_SERVING.
func (s *Server) SetServing(serving bool) {
	st := servingStatus(serving)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.health.SetServingStatus("", st)
	for _, name := range s.services {
		s.health.SetServingStatus(name, st)
	}
}

// SetServiceServing sets the health status of one service, by its full
// name (e.g. "plantlake.catalog.v1.CatalogService").
func (s *Server) SetServiceServing(service string, serving bool) {
	s.health.SetServingStatus(service, servingStatus(serving))
}

func servingStatus(serving bool) healthpb.HealthCheckResponse_ServingStatus {
	if serving {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Serve accepts connections on lis until Shutdown; it returns nil after a
// shutdown and the listener's error otherwise.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown marks every service NOT_SERVING, stops taking calls and waits
// for the calls in flight until ctx ends; then it closes every connection,
// which cancels the contexts of the calls still running. It reports whether
// the calls in flight finished in time.
func (s *Server) Shutdown(ctx context.Context) (graceful bool) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return false
	}
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() { s.observe(info.FullMethod, start, err) }()
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	defer s.recoverPanic(info.FullMethod, &err)
	resp, err = handler(ctx, req)
	return resp, s.toStatus(err)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() { s.observe(info.FullMethod, start, err) }()
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	defer s.recoverPanic(info.FullMethod, &err)
	return s.toStatus(handler(srv, ss))
}

// authorize checks the bearer token of a call.
func (s *Server) authorize(ctx context.Context, method string) error {
	if s.opts.AuthToken == "" {
		return nil
	}
	for _, prefix := range authExempt {
		if strings.HasPrefix(method, prefix) {
			return nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return status.Error(codes.Unauthenticated, "missing bearer token (metadata \"authorization: Bearer <token>\")")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") ||
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.opts.AuthToken)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	return nil
}

// recoverPanic turns a handler's panic into an Internal status, logged with
// its stack. It must be deferred directly.
func (s *Server) recoverPanic(method string, err *error) {
	if r := recover(); r != nil {
		s.logger.Error("grpc handler panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "internal error in %s", method)
	}
}

// toStatus maps a handler error to a status error, through Options.MapError.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if s.opts.MapError != nil {
		if st := s.opts.MapError(err); st != nil {
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// serverFault says which codes mean the server, not the request, failed.
func serverFault(code codes.Code) bool {
	switch code {
	case codes.Unknown, codes.Internal, codes.DataLoss, codes.Unimplemented:
		return true
	}
	return false
}

// observe logs and counts one finished call.
func (s *Server) observe(method string, start time.Time, err error) {
	elapsed := time.Since(start)
	code := status.Code(err)
	if s.handled != nil {
		s.handled.WithLabelValues(method, code.String()).Inc()
		s.latency.WithLabelValues(method).Observe(elapsed.Seconds())
	}
	level := slog.LevelDebug
	switch {
	case serverFault(code):
		level = slog.LevelError
	case code != codes.OK:
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("method", method), slog.String("code", code.String()), slog.Duration("elapsed", elapsed)}
	if err != nil {
		attrs = append(attrs, slog.String("err", status.Convert(err).Message()))
	}
	s.logger.LogAttrs(context.Background(), level, "grpc call", attrs...)
}
