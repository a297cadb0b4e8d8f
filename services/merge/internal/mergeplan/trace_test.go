package mergeplan

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// TestAppendLinksSampledRows: Append hands the runner a link for each bronze
// row whose traceparent is sampled, and none for a null or unsampled one.
func TestAppendLinksSampledRows(t *testing.T) {
	spec, err := NewKeySpec(gold.KeyColumns)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(spec)
	var links []trace.Link
	b.SetLink(func(l trace.Link) { links = append(links, l) })
	sampled := rd("s", "l1", 0, 1, 5, "t", 0, 1)
	sampled.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	unsampled := rd("s", "l1", 1, 1, 5, "t", 0, 2)
	unsampled.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b8-00"
	plain := rd("s", "l1", 2, 1, 5, "t", 0, 3)
	rec := bronzetest.Record([]bronzetest.Reading{sampled, unsampled, plain})
	defer rec.Release()
	if err := b.Append(context.Background(), 7, rec); err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("links = %v, want one", links)
	}
	sc := links[0].SpanContext
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() {
		t.Errorf("link to %v, want the sampled row's remote span context", sc)
	}
	if len(links[0].Attributes) != 1 || links[0].Attributes[0].Value.AsInt64() != 7 {
		t.Errorf("link attributes %v, want the bronze version 7", links[0].Attributes)
	}
	if b.Rows() != 3 {
		t.Errorf("Rows() = %d, want 3", b.Rows())
	}
}
