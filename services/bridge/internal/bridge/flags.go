package bridge

import (
	"flag"
	"strings"
)

// RegisterFlags adds the bridge's own flags to fs, with c's current values
// as defaults. The shared ones (--mqtt-broker, --kafka-brokers,
// --kafka-config, --kafka-partitions, --shutdown-timeout) come from the
// service kit and are copied into c by the caller. Each flag's environment
// default is PLANTLAKE_ + its name in upper snake case.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ClientID, "mqtt-client-id", c.ClientID,
		"MQTT client id; stable across restarts and different for every replica (the persistent session is keyed by it)")
	fs.StringVar(&c.ShareGroup, "mqtt-share-group", c.ShareGroup,
		"subscribe as $share/<group>/<filter> so replicas split the load (empty: plain subscription)")
	fs.Var(&filterFlag{dst: &c.TopicFilters}, "mqtt-topic-filter",
		"MQTT topic filter to subscribe at QoS 1 (repeatable or comma-separated)")
	fs.DurationVar(&c.KeepAlive, "mqtt-keepalive", c.KeepAlive, "MQTT keep-alive interval")
	fs.StringVar(&c.MQTTUsername, "mqtt-username", c.MQTTUsername, "MQTT user name (empty: connect without one)")
	fs.StringVar(&c.MQTTPassword, "mqtt-password", c.MQTTPassword,
		"MQTT password; prefer --mqtt-password-file or the environment, which the process list does not show")
	fs.StringVar(&c.MQTTPasswordFile, "mqtt-password-file", c.MQTTPasswordFile, "file whose first line is the MQTT password")
	fs.StringVar(&c.MQTTCA, "mqtt-ca", c.MQTTCA,
		"PEM file of CA certificates that verify the MQTT broker on ssl:// and mqtts:// (empty: the system's roots)")
	fs.StringVar(&c.MQTTClientCert, "mqtt-client-cert", c.MQTTClientCert, "PEM client certificate for MQTT over TLS (with --mqtt-client-key)")
	fs.StringVar(&c.MQTTClientKey, "mqtt-client-key", c.MQTTClientKey, "PEM private key of --mqtt-client-cert")
	fs.StringVar(&c.KafkaTopic, "kafka-topic", c.KafkaTopic, "Kafka topic for readings no --kafka-topic-map entry matches")
	fs.Var((*routeList)(&c.Routes), "kafka-topic-map",
		"filter=topic: readings whose MQTT topic matches filter go to topic (repeatable; first match wins; the filter is subscribed too)")
	fs.DurationVar(&c.KafkaRetention, "kafka-retention", c.KafkaRetention,
		"retention of a Kafka topic the bridge creates (negative: keep forever); existing topics keep theirs")
	fs.StringVar(&c.OversizedTopic, "kafka-oversized-topic", c.OversizedTopic, "Kafka topic for payloads over --max-payload-bytes, cut to fit")
	fs.IntVar(&c.MaxPayloadBytes, "max-payload-bytes", c.MaxPayloadBytes,
		"largest payload forwarded whole; a larger one is cut so its whole record fits in this many bytes and goes to the oversized topic")
	fs.Float64Var(&c.TraceSampleRatio, "trace-sample-ratio", c.TraceSampleRatio,
		"fraction of readings that get a span and a W3C traceparent header (0 … 1)")
	fs.IntVar(&c.QueueSize, "queue-size", c.QueueSize,
		"readings the producing loop takes from the MQTT handler at once; more wait behind them, in order")
	fs.DurationVar(&c.Linger, "linger", c.Linger,
		"librdkafka's linger.ms: how long a batch waits to fill in the producer (--kafka-config linger.ms wins)")
	fs.DurationVar(&c.DeepLinger, "deep-linger", c.DeepLinger,
		"while at least --deep-queue readings wait, gather readings this long before producing them (bigger batches, less Kafka CPU per reading); 0: never")
	fs.IntVar(&c.DeepQueue, "deep-queue", c.DeepQueue,
		"readings waiting in the bridge (not yet produced, or produced and not yet stored) from which it gathers for --deep-linger")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight,
		"readings produced to Kafka and not yet acknowledged, at most (also librdkafka's queue.buffering.max.messages)")
	fs.IntVar(&c.MaxUnacked, "max-unacked", c.MaxUnacked,
		"readings of the MQTT connection held unacknowledged, at most: at it the bridge stops reading from the broker until acknowledgements make room (the broker's max_inflight_messages should stay below it)")
}

// filterFlag is a repeatable, comma-separated list flag. The first Set
// replaces the default; later ones append.
type filterFlag struct {
	dst     *[]string
	touched bool
}

// String is the flag.Value form: the filters, comma-separated.
func (f *filterFlag) String() string {
	if f == nil || f.dst == nil {
		return ""
	}
	return strings.Join(*f.dst, ",")
}

// Set adds the comma-separated filters of one flag value.
func (f *filterFlag) Set(v string) error {
	if !f.touched {
		*f.dst = nil
		f.touched = true
	}
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*f.dst = append(*f.dst, part)
		}
	}
	return nil
}

// routeList is the repeatable filter=topic flag.
type routeList []Route

// String is the flag.Value form: filter=topic pairs, comma-separated.
func (l *routeList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, r := range *l {
		parts[i] = r.Filter + "=" + r.Topic
	}
	return strings.Join(parts, ",")
}

// Set adds the filter=topic pairs of one flag value.
func (l *routeList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := ParseRoute(part)
		if err != nil {
			return err
		}
		*l = append(*l, r)
	}
	return nil
}
