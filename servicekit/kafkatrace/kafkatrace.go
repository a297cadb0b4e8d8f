// Package kafkatrace carries OpenTelemetry trace context in the headers of
// confluent-kafka-go messages, since confluent-kafka-go has no official
// instrumentation. It is a package of its own so that services without
// Kafka do not link librdkafka.
package kafkatrace

import (
	"context"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// HeaderCarrier adapts a message's headers to propagation.TextMapCarrier.
// Set replaces every header of the key; Get returns the first one's value.
type HeaderCarrier struct {
	// Headers points at the headers to read and write, e.g. &msg.Headers.
	Headers *[]kafka.Header
}

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the value of the first header named key, or "".
func (c HeaderCarrier) Get(key string) string {
	for _, h := range *c.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the headers named key with one holding value.
func (c HeaderCarrier) Set(key, value string) {
	hs := (*c.Headers)[:0:0]
	for _, h := range *c.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	*c.Headers = append(hs, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys returns the header names, in order, duplicates included.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, len(*c.Headers))
	for i, h := range *c.Headers {
		keys[i] = h.Key
	}
	return keys
}

// Inject writes ctx's trace context and baggage into msg's headers with the
// global propagator (a traceparent header only when ctx has a valid span
// context).
func Inject(ctx context.Context, msg *kafka.Message) {
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier{Headers: &msg.Headers})
}

// Extract returns ctx with the trace context and baggage found in msg's
// headers, as the parent for a consumer span.
func Extract(ctx context.Context, msg *kafka.Message) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier{Headers: &msg.Headers})
}
