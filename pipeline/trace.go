package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// One trace per sampled reading: the bridge starts it and writes its W3C
// traceparent into the Kafka headers (kept in raw's headers column and in
// bronze's traceparent column). Each hop's source hands the runner a link
// per sampled record it appends (Host.Link); when the batch closes, the
// runner starts the batch's commit span, linked to those records, and for
// each of them a span in the record's own trace ("<hop>.record", from the
// moment the record was appended until its batch is committed) linked to
// the commit span. The commit RPC carries the commit span's context, so the
// catalog's span of that commit is in the batch's trace: reached from every
// reading's trace through the link, never a child of any one reading.

// sampled is a sampled record of the batch being built.
type sampled struct {
	link trace.Link
	// at is when the record was appended: its span starts there.
	at time.Time
}

// batchLinks returns links to the records' own spans, for the commit span.
func batchLinks(s []sampled) []trace.Link {
	links := make([]trace.Link, len(s))
	for i, r := range s {
		links[i] = r.link
	}
	return links
}

// startRecordSpans starts, for every sampled record, a span in the record's
// trace that links to the batch's commit span.
func (r *Runner[D]) startRecordSpans(batch trace.Span, recs []sampled) []trace.Span {
	if len(recs) == 0 {
		return nil
	}
	link := trace.Link{SpanContext: batch.SpanContext(), Attributes: []attribute.KeyValue{
		attribute.String("plantlake.link", "batch commit"),
	}}
	spans := make([]trace.Span, len(recs))
	for i, rec := range recs {
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), rec.link.SpanContext)
		_, spans[i] = r.tracer.Start(ctx, r.cfg.Name+".record",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithTimestamp(rec.at),
			trace.WithLinks(link),
			trace.WithAttributes(rec.link.Attributes...),
			trace.WithAttributes(attribute.String("plantlake.table", r.cfg.Target)))
	}
	return spans
}

// endRecordSpans ends the records' spans with their batch's outcome.
func endRecordSpans(spans []trace.Span, version int64, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, "batch not committed")
		} else {
			s.SetAttributes(attribute.Int64("plantlake.table.version", version))
		}
		s.End()
	}
}

// w3c parses traceparent values itself rather than through the global
// propagator, which is a no-op until telemetry is set up.
var w3c = propagation.TraceContext{}

// LinkFromTraceparent returns a link to the sampled span that a W3C
// traceparent value names (as the bridge writes it into a reading's Kafka
// headers and deserialize into bronze), and false for an invalid or
// unsampled one. attrs describe the record (e.g. its table version).
func LinkFromTraceparent(traceparent string, attrs ...attribute.KeyValue) (trace.Link, bool) {
	if traceparent == "" {
		return trace.Link{}, false
	}
	carrier := propagation.MapCarrier{"traceparent": traceparent}
	sc := trace.SpanContextFromContext(w3c.Extract(context.Background(), carrier))
	if !sc.IsValid() || !sc.IsSampled() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc, Attributes: attrs}, true
}
