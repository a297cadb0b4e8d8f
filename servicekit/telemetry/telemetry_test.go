package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/plantlake/plantlake/servicekit/telemetry"
)

// collector is a real OTLP/gRPC trace receiver that records the
// service.name and span names it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans map[string][]string // service.name → span names
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans[service] = append(c.spans[service], s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) received(service string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans[service]...)
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	c := &collector{spans: map[string][]string{}}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

func TestSetupExportsWhenEndpointSet(t *testing.T) {
	c, addr := startCollector(t)
	tests := []struct {
		name        string
		env         map[string]string
		wantService string
	}{
		{name: "generic endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr}, wantService: "svc-a"},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://" + addr}, wantService: "svc-b"},
		{name: "OTEL_SERVICE_NAME wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr, "OTEL_SERVICE_NAME": "renamed"}, wantService: "renamed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx := context.Background()
			tr, err := telemetry.Setup(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), []string{"svc-a", "svc-b", "svc-c"}[i])
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled {
				t.Fatal("tracing off with an endpoint set")
			}
			_, span := otel.Tracer("test").Start(ctx, tt.name)
			span.End()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil { // flushes
				t.Fatal(err)
			}
			got := c.received(tt.wantService)
			if len(got) != 1 || got[0] != tt.name {
				t.Errorf("collector got spans %v for service %q, want [%q]", got, tt.wantService, tt.name)
			}
		})
	}
}

func TestSetupOffWithoutEndpoint(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{name: "no endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
			tr, err := telemetry.Setup(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), "svc")
			if err != nil {
				t.Fatal(err)
			}
			if tr.Enabled {
				t.Error("tracing on without an endpoint")
			}
			_, span := otel.Tracer("test").Start(context.Background(), "x")
			if span.IsRecording() {
				t.Error("span records with tracing off")
			}
			span.End()
			// The propagators are installed anyway, so trace context passes through.
			fields := otel.GetTextMapPropagator().Fields()
			slices.Sort(fields)
			if want := []string{"baggage", "traceparent", "tracestate"}; !slices.Equal(fields, want) {
				t.Errorf("propagator fields = %v, want %v", fields, want)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSetupDropsRootClientSpans: by default a client call outside any trace
// (a poll) exports nothing, while one inside a trace is exported with its
// parent; OTEL_TRACES_SAMPLER=always_on keeps both.
func TestSetupDropsRootClientSpans(t *testing.T) {
	c, addr := startCollector(t)
	tests := []struct {
		service, sampler string
		want             []string
	}{
		{service: "default-sampler", want: []string{"child call", "batch"}},
		{service: "always-on", sampler: "always_on", want: []string{"poll", "child call", "batch"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
			t.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
			ctx := context.Background()
			tr, err := telemetry.Setup(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), tt.service)
			if err != nil {
				t.Fatal(err)
			}
			tracer := otel.Tracer("test")
			_, poll := tracer.Start(ctx, "poll", trace.WithSpanKind(trace.SpanKindClient))
			poll.End()
			bctx, batch := tracer.Start(ctx, "batch")
			_, call := tracer.Start(bctx, "child call", trace.WithSpanKind(trace.SpanKindClient))
			call.End()
			batch.End()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil {
				t.Fatal(err)
			}
			if got := c.received(tt.service); !slices.Equal(got, tt.want) {
				t.Errorf("collector got spans %v, want %v", got, tt.want)
			}
		})
	}
}
