package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/servicekit/grpcserver"
)

// errPaused is a domain error the test's MapError knows.
var errPaused = errors.New("stage is paused")

// pipelineServer answers GetStatus with a fixed status, and fails its
// other calls in ways the interceptor must translate.
type pipelineServer struct {
	pipelinev1.UnimplementedPipelineServiceServer
}

func (pipelineServer) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: &pipelinev1.Status{Service: "test", State: pipelinev1.State_STATE_RUNNING}}, nil
}

func (pipelineServer) Pause(context.Context, *pipelinev1.PauseRequest) (*pipelinev1.PauseResponse, error) {
	panic("boom")
}

func (pipelineServer) Resume(context.Context, *pipelinev1.ResumeRequest) (*pipelinev1.ResumeResponse, error) {
	return nil, fmt.Errorf("resume: %w", errPaused)
}

func (pipelineServer) TriggerCommit(context.Context, *pipelinev1.TriggerCommitRequest) (*pipelinev1.TriggerCommitResponse, error) {
	return nil, fmt.Errorf("commit: %w", context.DeadlineExceeded)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv  *grpcserver.Server
	addr string
	reg  *prometheus.Registry
	logs *syncBuffer
}

// start serves a server with the test service on a loopback port until the
// test ends.
func start(t *testing.T, token string) *fixture {
	t.Helper()
	return startWith(t, grpcserver.Options{AuthToken: token})
}

// startWith is start with more options; the logger, MapError and
// Registerer are the fixture's. register adds services before serving.
func startWith(t *testing.T, opts grpcserver.Options, register ...func(*grpcserver.Server)) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.MapError = func(err error) *status.Status {
		if errors.Is(err, errPaused) {
			return status.New(codes.FailedPrecondition, err.Error())
		}
		return nil
	}
	opts.Registerer = reg
	srv := grpcserver.New(opts)
	pipelinev1.RegisterPipelineServiceServer(srv, pipelineServer{})
	for _, r := range register {
		r(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &fixture{srv: srv, addr: lis.Addr().String(), reg: reg, logs: logs}
}

func dial(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcclient.Dial(addr, grpcclient.Options{AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestAuth(t *testing.T) {
	f := start(t, "s3cret")
	f.srv.SetServing(true)
	tests := []struct {
		name     string
		token    string // sent by grpcclient; "" sends none
		header   string // raw authorization header instead, when set
		call     string // "status" or "health"
		wantCode codes.Code
	}{
		{name: "no token", call: "status", wantCode: codes.Unauthenticated},
		{name: "wrong token", token: "guess", call: "status", wantCode: codes.Unauthenticated},
		{name: "right token", token: "s3cret", call: "status", wantCode: codes.OK},
		{name: "not bearer", header: "Basic s3cret", call: "status", wantCode: codes.Unauthenticated},
		{name: "lower-case scheme", header: "bearer s3cret", call: "status", wantCode: codes.OK},
		{name: "health needs no token", call: "health", wantCode: codes.OK},
		{name: "health with a wrong token", token: "guess", call: "health", wantCode: codes.OK},
	}
	calls := map[string]func(context.Context, *grpc.ClientConn) error{
		"status": func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := pipelinev1.NewPipelineServiceClient(conn).GetStatus(ctx, &pipelinev1.GetStatusRequest{})
			return err
		},
		"health": func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, f.addr, tt.token)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.header != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tt.header)
			}
			err := calls[tt.call](ctx, conn)
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
		})
	}
}

func TestErrorsBecomeStatuses(t *testing.T) {
	f := start(t, "")
	client := pipelinev1.NewPipelineServiceClient(dial(t, f.addr, ""))
	tests := []struct {
		name     string
		call     func(context.Context) error
		method   string
		wantCode codes.Code
		wantMsg  string
		wantLog  string
	}{
		{
			name:     "panic",
			call:     func(ctx context.Context) error { _, err := client.Pause(ctx, &pipelinev1.PauseRequest{}); return err },
			method:   "/plantlake.pipeline.v1.PipelineService/Pause",
			wantCode: codes.Internal,
			wantMsg:  "internal error in /plantlake.pipeline.v1.PipelineService/Pause",
			wantLog:  `msg="grpc handler panicked" method=/plantlake.pipeline.v1.PipelineService/Pause panic=boom`,
		},
		{
			name:     "mapped domain error",
			call:     func(ctx context.Context) error { _, err := client.Resume(ctx, &pipelinev1.ResumeRequest{}); return err },
			method:   "/plantlake.pipeline.v1.PipelineService/Resume",
			wantCode: codes.FailedPrecondition,
			wantMsg:  "resume: stage is paused",
			wantLog:  `level=INFO msg="grpc call" method=/plantlake.pipeline.v1.PipelineService/Resume code=FailedPrecondition`,
		},
		{
			name: "context error",
			call: func(ctx context.Context) error {
				_, err := client.TriggerCommit(ctx, &pipelinev1.TriggerCommitRequest{})
				return err
			},
			method:   "/plantlake.pipeline.v1.PipelineService/TriggerCommit",
			wantCode: codes.DeadlineExceeded,
			wantMsg:  "commit: context deadline exceeded",
			wantLog:  `code=DeadlineExceeded`,
		},
		{
			name: "ok",
			call: func(ctx context.Context) error {
				_, err := client.GetStatus(ctx, &pipelinev1.GetStatusRequest{})
				return err
			},
			method:   "/plantlake.pipeline.v1.PipelineService/GetStatus",
			wantCode: codes.OK,
			wantLog:  `level=DEBUG msg="grpc call" method=/plantlake.pipeline.v1.PipelineService/GetStatus code=OK`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st := status.Convert(tt.call(ctx))
			if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
				t.Errorf("status = %v %q, want %v %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if !strings.Contains(f.logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, f.logs.String())
			}
			if got := handled(t, f.reg, tt.method, tt.wantCode); got != 1 {
				t.Errorf("plantlake_grpc_server_handled_total{method=%q,code=%q} = %v, want 1", tt.method, tt.wantCode, got)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	f := start(t, "")
	health := healthpb.NewHealthClient(dial(t, f.addr, ""))
	const svc = "plantlake.pipeline.v1.PipelineService"
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		return resp.GetStatus()
	}
	steps := []struct {
		name        string
		apply       func()
		wantOverall healthpb.HealthCheckResponse_ServingStatus
		wantService healthpb.HealthCheckResponse_ServingStatus
	}{
		{"initially", func() {}, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING},
		{"SetServing(true)", func() { f.srv.SetServing(true) }, healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_SERVING},
		{"one service off", func() { f.srv.SetServiceServing(svc, false) }, healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING},
		{"SetServing(false)", func() { f.srv.SetServing(false) }, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_NOT_SERVING},
	}
	for _, step := range steps {
		step.apply()
		if got := check(""); got != step.wantOverall {
			t.Errorf("%s: overall = %v, want %v", step.name, got, step.wantOverall)
		}
		if got := check(svc); got != step.wantService {
			t.Errorf("%s: %s = %v, want %v", step.name, svc, got, step.wantService)
		}
	}
}

func TestLargeMessages(t *testing.T) {
	// A pause reason of 8 MiB is above gRPC's 4 MiB default but below the
	// kit's limit; the handler panics, so reaching it proves the size passed.
	f := start(t, "")
	client := pipelinev1.NewPipelineServiceClient(dial(t, f.addr, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Pause(ctx, &pipelinev1.PauseRequest{Reason: strings.Repeat("x", 8<<20)})
	if got := status.Code(err); got != codes.Internal {
		t.Fatalf("code = %v (%v), want Internal from the handler", got, err)
	}
}

// handled reads plantlake_grpc_server_handled_total{method, code} from reg.
func handled(t *testing.T, reg *prometheus.Registry, method string, code codes.Code) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != "plantlake_grpc_server_handled_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["method"] == method && labels["code"] == code.String() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestRequestTooLarge(t *testing.T) {
	// A request over the limit is refused before it is read, whoever sends it.
	f := startWith(t, grpcserver.Options{MaxMessageSize: 64 << 10})
	client := pipelinev1.NewPipelineServiceClient(dial(t, f.addr, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Pause(ctx, &pipelinev1.PauseRequest{Reason: strings.Repeat("x", 100<<10)})
	if got := status.Code(err); got != codes.ResourceExhausted {
		t.Fatalf("code = %v (%v), want ResourceExhausted", got, err)
	}
}

// TestDecodeGateGivesBack: every large request gives its decode weight
// back however its call ends (panic, refusal, unimplemented stream), or
// the calls after it would wait forever.
func TestDecodeGateGivesBack(t *testing.T) {
	f := startWith(t, grpcserver.Options{AuthToken: "tok", MaxMessageSize: 32 << 10, ReleaseAfterBytes: 8 << 10}, withCatalogStub)
	big := strings.Repeat("x", 20<<10) // each takes 20 of the gate's 32 KiB
	calls := []struct {
		name  string
		token string
		call  func(context.Context, *grpc.ClientConn) error
		want  codes.Code
	}{
		{"handler panics", "tok", func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := pipelinev1.NewPipelineServiceClient(c).Pause(ctx, &pipelinev1.PauseRequest{Reason: big})
			return err
		}, codes.Internal},
		{"refused caller", "", func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := pipelinev1.NewPipelineServiceClient(c).Pause(ctx, &pipelinev1.PauseRequest{Reason: big})
			return err
		}, codes.Unauthenticated},
		{"stream request", "tok", func(ctx context.Context, c *grpc.ClientConn) error {
			stream, err := catalogv1.NewCatalogServiceClient(c).Scan(ctx, &catalogv1.ScanRequest{Table: big})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, codes.Unimplemented},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, f.addr, tt.token)
			for i := range 4 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := tt.call(ctx, conn)
				cancel()
				if got := status.Code(err); got != tt.want {
					t.Fatalf("call %d: %v, want %v (a call that waits out its deadline means the gate kept weight)", i, err, tt.want)
				}
			}
		})
	}
}
