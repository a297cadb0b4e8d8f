// Package kafkalog writes librdkafka's log lines to a slog.Logger at their
// own level. confluent-kafka-go delivers them on a channel when
// go.logs.channel.enable is set; without it librdkafka prints to stderr,
// outside the service's structured log. It is a package of its own so that
// services without Kafka do not link librdkafka.
package kafkalog

import (
	"context"
	"log/slog"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Level maps a librdkafka log level (a syslog severity: 0 emergency … 7
// debug) to a slog level.
func Level(syslog int) slog.Level {
	switch {
	case syslog <= 3: // emergency, alert, critical, error
		return slog.LevelError
	case syslog == 4: // warning
		return slog.LevelWarn
	case syslog <= 6: // notice, informational
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// Log writes one librdkafka log line to log.
func Log(log *slog.Logger, e kafka.LogEvent) {
	log.Log(context.Background(), Level(e.Level), "librdkafka: "+e.Message, "facility", e.Tag, "client", e.Name)
}

// Forward writes every log line of logs (a client's Logs() channel) to log
// and returns when the channel is closed, which the client's Close does.
func Forward(log *slog.Logger, logs <-chan kafka.LogEvent) {
	for e := range logs {
		Log(log, e)
	}
}
