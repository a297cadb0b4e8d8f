package kafkalog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func TestLevel(t *testing.T) {
	for _, tc := range []struct {
		syslog int
		want   slog.Level
	}{
		{0, slog.LevelError}, {3, slog.LevelError}, {4, slog.LevelWarn},
		{5, slog.LevelInfo}, {6, slog.LevelInfo}, {7, slog.LevelDebug},
	} {
		if got := Level(tc.syslog); got != tc.want {
			t.Errorf("Level(%d) = %v, want %v", tc.syslog, got, tc.want)
		}
	}
}

func TestForward(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	logs := make(chan kafka.LogEvent, 3)
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "FAIL", Message: "broker down", Level: 3}
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "REQTMOUT", Message: "timed out", Level: 4}
	logs <- kafka.LogEvent{Name: "rdkafka#consumer-1", Tag: "FETCH", Message: "fetching", Level: 7}
	close(logs)
	Forward(log, logs) // returns because the channel is closed
	out := buf.String()
	for _, want := range []string{
		`level=ERROR msg="librdkafka: broker down" facility=FAIL client=rdkafka#consumer-1`,
		`level=WARN msg="librdkafka: timed out" facility=REQTMOUT`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fetching") {
		t.Errorf("a debug line passed an info logger:\n%s", out)
	}
}
