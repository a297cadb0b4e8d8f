// Package telemetry sets up OpenTelemetry tracing for a plantlake service
// from the standard OTEL_* environment variables: an OTLP gRPC exporter when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
// no exporter (a no-op tracer) otherwise, and in both cases the W3C trace
// context and baggage propagators installed globally, so trace context
// still passes through a service whose own tracing is off.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Environment variables that switch the exporter on, in the order checked.
var endpointEnvs = []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// Tracing is the installed tracer provider. Shutdown flushes and stops it.
type Tracing struct {
	// Provider is the provider installed as otel's global one.
	Provider trace.TracerProvider
	// Enabled says whether spans are exported.
	Enabled bool

	shutdown func(context.Context) error
}

// Setup installs the global propagator (W3C trace context + baggage), the
// global tracer provider and an error handler that logs OpenTelemetry's
// internal errors to logger. service is the default of OTEL_SERVICE_NAME.
// Tracing is off when no endpoint variable is set or OTEL_SDK_DISABLED is
// "true"; the OTLP exporter otherwise reads its settings (endpoint,
// insecure, headers, timeout) from the standard variables, and the sampler
// from OTEL_TRACES_SAMPLER; without it the sampler is parent-based and
// samples every root span except a client call's (NoRootClientSpans).
func Setup(ctx context.Context, logger *slog.Logger, service string) (*Tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", "err", err)
	}))

	endpoint := ""
	for _, env := range endpointEnvs {
		if v := os.Getenv(env); v != "" {
			endpoint = v
			break
		}
	}
	if endpoint == "" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		tp := noop.NewTracerProvider()
		otel.SetTracerProvider(tp)
		logger.Debug("tracing off: no OTEL_EXPORTER_OTLP_ENDPOINT")
		return &Tracing{Provider: tp, shutdown: func(context.Context) error { return nil }}, nil
	}

	exporter, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP trace exporter for %s: %w", endpoint, err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, errors.Join(fmt.Errorf("telemetry: resource: %w", err), exporter.Shutdown(ctx))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(NoRootClientSpans())))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	logger.Info("tracing on", "endpoint", endpoint)
	return &Tracing{Provider: tp, Enabled: true, shutdown: tp.Shutdown}, nil
}

// NoRootClientSpans returns the root sampler of Setup's default: it drops a
// client span without a parent and samples every other root span. A gRPC
// call made outside any trace — a table follower's poll for new versions, a
// status refresh, a health check, several a second per service — would
// otherwise start a trace of its own and bury the readings' traces (and,
// through the unsampled trace context it sends, the server's span goes
// too); a call made within a trace (a batch's commit) is traced as its
// parent is.
func NoRootClientSpans() sdktrace.Sampler { return noRootClient{} }

type noRootClient struct{}

func (noRootClient) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample,
		Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	if p.Kind == trace.SpanKindClient {
		res.Decision = sdktrace.Drop
	}
	return res
}

func (noRootClient) Description() string { return "NoRootClientSpans" }

// Shutdown exports the spans still buffered and stops the provider; ctx
// bounds how long it may take.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
