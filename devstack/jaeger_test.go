package devstack

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestJaeger sends a span over OTLP/HTTP (JSON) to a real Jaeger and finds it
// through the query API.
func TestJaeger(t *testing.T) {
	j := Jaeger(t)
	const traceID = "5b8efff798038103d269b633813fc60c"
	now := time.Now()
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"devstack-test"}}]},
"scopeSpans":[{"spans":[{"traceId":%q,"spanId":"eee19b7ec3c1b174","name":"probe","kind":1,
"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`, traceID, now.UnixNano(), now.Add(time.Millisecond).UnixNano())
	resp, err := http.Post(j.OTLPHTTPEndpoint()+"/v1/traces", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatalf("OTLP post: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP post: %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ts, err := j.Traces(ctx, "devstack-test", "probe", 10)
		if err == nil && len(ts) == 1 && ts[0].TraceID == traceID {
			tr, err := j.Trace(ctx, traceID)
			if err != nil || tr == nil || len(tr.Spans) != 1 || tr.Spans[0].OperationName != "probe" || tr.Service(&tr.Spans[0]) != "devstack-test" {
				t.Fatalf("Trace(%s) = %+v, %v; want the probe span of devstack-test", traceID, tr, err)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Traces(devstack-test) = %+v, %v; want trace %s", ts, err, traceID)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
