// Package grpcserver builds the gRPC server every plantlake service runs:
// OpenTelemetry tracing (otelgrpc), server reflection, the grpc.health.v1
// health service, optional TLS with client certificates, and one
// interceptor that authenticates the caller (package identity), checks the
// method's scope, logs each call with its identity, recovers panics as
// Internal, maps domain errors to status codes and counts calls in
// Prometheus. Memory a big request made the process grow is handed back to
// the operating system when the call ends.
package grpcserver

import (
	"context"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/servicekit/identity"
)

// DefaultMaxMessageSize is the largest message the server receives unless
// Options.MaxMessageSize says otherwise: commits of big tables exceed
// gRPC's 4 MiB default, and a request larger than this is refused with
// ResourceExhausted before it is read.
const DefaultMaxMessageSize = 16 << 20

// Options configure New.
type Options struct {
	// Logger receives one record per call (debug when OK, info for client
	// errors, error for server errors and panics). Required.
	Logger *slog.Logger
	// Identities, when set, says who may call and with which scopes: every
	// call except health and reflection must carry a bearer token
	// ("authorization: Bearer <token>") or a verified client certificate
	// of an identity, or fail with Unauthenticated; a call whose method
	// needs a scope the identity lacks fails with PermissionDenied.
	Identities *identity.Store
	// AuthToken, when Identities is nil and it is not empty, is the one
	// bearer token that proves an admin (the shared-token mode); a
	// verified client certificate proves one too.
	AuthToken string
	// TLS, when set, serves TLS; with a client CA, a verified client
	// certificate proves an identity.
	TLS *TLS
	// Scopes are the scopes the service's methods need (see
	// RequireScopes); PipelineScopes are always in force.
	Scopes map[string]identity.Scope
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
	// ReleaseAfterBytes is the request size from which the memory of a call
	// is returned to the operating system when it ends; 0 means
	// DefaultReleaseAfterBytes, negative never.
	ReleaseAfterBytes int64
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

	anonymous *identity.Identity
	gate      *decodeGate

	mu       sync.Mutex
	services []string
	scopes   map[string]identity.Scope
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
	if opts.ReleaseAfterBytes == 0 {
		opts.ReleaseAfterBytes = DefaultReleaseAfterBytes
	}
	s := &Server{
		health: health.NewServer(), logger: opts.Logger, opts: opts,
		anonymous: identity.NewAdmin(AnonymousIdentity), scopes: map[string]identity.Scope{},
	}
	s.RequireScopes(PipelineScopes)
	s.RequireScopes(opts.Scopes)
	s.gate = newDecodeGate(opts.ReleaseAfterBytes, int64(opts.MaxMessageSize))
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
		grpc.StatsHandler(&releaser{threshold: opts.ReleaseAfterBytes}),
		grpc.MaxRecvMsgSize(opts.MaxMessageSize),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(opts.TLS.Config())))
	}
	if s.gate != nil {
		serverOpts = append(serverOpts, grpc.ForceServerCodecV2(gatedCodec{CodecV2: encoding.GetCodecV2("proto"), gate: s.gate}))
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
		s.gate.shutDown()
		s.grpc.Stop()
		<-done
		return false
	}
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer s.gate.release(req)
	id, err := s.authorize(ctx, info.FullMethod)
	defer func() { s.observe(info.FullMethod, id, start, err) }()
	if err != nil {
		return nil, err
	}
	if id != nil {
		ctx = identity.NewContext(ctx, id)
	}
	defer s.recoverPanic(info.FullMethod, &err)
	resp, err = handler(ctx, req)
	return resp, s.toStatus(err)
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	id, err := s.authorize(ss.Context(), info.FullMethod)
	defer func() { s.observe(info.FullMethod, id, start, err) }()
	if err != nil {
		return err
	}
	ctx := ss.Context()
	if id != nil {
		ctx = identity.NewContext(ctx, id)
	}
	ss = serverStream{ServerStream: ss, ctx: ctx, gate: s.gate}
	defer s.recoverPanic(info.FullMethod, &err)
	return s.toStatus(handler(srv, ss))
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
	if errors.Is(err, identity.ErrPermissionDenied) {
		return status.Error(codes.PermissionDenied, err.Error())
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

// observe logs and counts one finished call. Refusals of who called are
// warnings, with the identity when there is one.
func (s *Server) observe(method string, id *identity.Identity, start time.Time, err error) {
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
	case code == codes.PermissionDenied || code == codes.Unauthenticated:
		level = slog.LevelWarn
	case code != codes.OK:
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("method", method), slog.String("code", code.String()), slog.Duration("elapsed", elapsed)}
	if id != nil {
		attrs = append(attrs, slog.String("identity", id.Name))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", status.Convert(err).Message()))
	}
	s.logger.LogAttrs(context.Background(), level, "grpc call", attrs...)
}
