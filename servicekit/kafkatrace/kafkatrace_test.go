package kafkatrace_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/servicekit/kafkatrace"
)

func TestHeaderCarrier(t *testing.T) {
	tests := []struct {
		name     string
		headers  []kafka.Header
		set      [2]string
		wantGet  string // Get(set[0]) after the Set
		wantKeys []string
	}{
		{
			name:     "add to empty",
			set:      [2]string{"traceparent", "v1"},
			wantGet:  "v1",
			wantKeys: []string{"traceparent"},
		},
		{
			name:     "keeps other headers",
			headers:  []kafka.Header{{Key: "mqtt_topic", Value: []byte("plant/a/b/c")}, {Key: "bridge_ts_ms", Value: []byte("1")}},
			set:      [2]string{"traceparent", "v1"},
			wantGet:  "v1",
			wantKeys: []string{"mqtt_topic", "bridge_ts_ms", "traceparent"},
		},
		{
			name:     "replaces every header of the key",
			headers:  []kafka.Header{{Key: "traceparent", Value: []byte("old1")}, {Key: "mqtt_qos", Value: []byte("1")}, {Key: "traceparent", Value: []byte("old2")}},
			set:      [2]string{"traceparent", "new"},
			wantGet:  "new",
			wantKeys: []string{"mqtt_qos", "traceparent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			original := append([]kafka.Header(nil), tt.headers...)
			headers := tt.headers
			c := kafkatrace.HeaderCarrier{Headers: &headers}
			c.Set(tt.set[0], tt.set[1])
			if got := c.Get(tt.set[0]); got != tt.wantGet {
				t.Errorf("Get = %q, want %q", got, tt.wantGet)
			}
			if got := c.Keys(); !reflect.DeepEqual(got, tt.wantKeys) {
				t.Errorf("Keys = %v, want %v", got, tt.wantKeys)
			}
			if c.Get("absent") != "" {
				t.Errorf("Get(absent) = %q, want empty", c.Get("absent"))
			}
			if !reflect.DeepEqual(tt.headers, original) {
				t.Errorf("Set changed the caller's original slice: %v, was %v", tt.headers, original)
			}
		})
	}
}

func TestInjectExtract(t *testing.T) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	member, err := baggage.NewMember("plant", "north")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bag), "produce")
	defer span.End()

	msg := &kafka.Message{Headers: []kafka.Header{{Key: "mqtt_topic", Value: []byte("plant/l1/press01/temperature")}}}
	kafkatrace.Inject(ctx, msg)
	got := kafkatrace.Extract(context.Background(), msg)

	want := span.SpanContext()
	sc := trace.SpanContextFromContext(got)
	if sc.TraceID() != want.TraceID() || sc.SpanID() != want.SpanID() || !sc.IsSampled() || !sc.IsRemote() {
		t.Errorf("extracted span context %+v, want trace %s span %s sampled and remote", sc, want.TraceID(), want.SpanID())
	}
	if v := baggage.FromContext(got).Member("plant").Value(); v != "north" {
		t.Errorf("baggage plant = %q, want north", v)
	}
	if len(msg.Headers) != 3 || msg.Headers[0].Key != "mqtt_topic" {
		t.Errorf("headers = %v, want mqtt_topic, traceparent, baggage", msg.Headers)
	}
}

func TestInjectWithoutSpanAddsNoTraceparent(t *testing.T) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	msg := &kafka.Message{}
	kafkatrace.Inject(context.Background(), msg)
	if len(msg.Headers) != 0 {
		t.Errorf("headers = %v, want none", msg.Headers)
	}
}
