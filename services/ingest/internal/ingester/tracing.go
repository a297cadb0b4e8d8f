package ingester

import (
	"context"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plantlake/plantlake/servicekit/kafkatrace"
)

// traceparentHeader is the W3C trace context header the bridge sets on
// sampled readings.
const traceparentHeader = "traceparent"

// w3c extracts trace context itself rather than through the global
// propagator, which is a no-op until telemetry is set up.
var w3c = propagation.TraceContext{}

// linkFromHeaders returns a link to the sampled span whose context m's
// headers carry.
func linkFromHeaders(ctx context.Context, m *kafka.Message) (trace.Link, bool) {
	sc := trace.SpanContextFromContext(w3c.Extract(ctx, kafkatrace.HeaderCarrier{Headers: &m.Headers}))
	if !sc.IsValid() || !sc.IsSampled() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

func noopTracer() trace.Tracer { return noop.NewTracerProvider().Tracer("ingest") }
