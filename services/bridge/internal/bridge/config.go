package bridge

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// Defaults for [Config]; the flags in cmd/bridge use the same values.
const (
	DefaultTopicFilter      = "plant/#"
	DefaultKafkaTopic       = kafkatopic.Raw
	DefaultOversizedTopic   = kafkatopic.Oversized
	DefaultMaxPayloadBytes  = kafkatopic.DefaultMaxPayloadBytes // 1 MiB; `make up` sizes its topics for it
	DefaultKafkaRetention   = kafkatopic.DefaultRetention
	DefaultTraceSampleRatio = 0.001
	DefaultQueueSize        = 4096
	DefaultMaxInFlight      = 50000
	DefaultMaxUnacked       = 20000
	DefaultLinger           = 5 * time.Millisecond
	DefaultDeepLinger       = 45 * time.Millisecond
	DefaultDeepQueue        = 1000
	DefaultKafkaPartitions  = 6
	DefaultShutdownTimeout  = 15 * time.Second
	DefaultKeepAlive        = 10 * time.Second
)

// ErrInvalidConfig is wrapped by every error [Config.Validate] returns.
var ErrInvalidConfig = errors.New("invalid bridge configuration")

// Route sends the readings whose MQTT topic matches Filter to the Kafka topic Topic.
type Route struct {
	// Filter is an MQTT topic filter without any $share prefix, e.g. "plant/line1/#".
	Filter string
	// Topic is the Kafka topic the matching readings are produced to.
	Topic string
}

// ParseRoute parses the "filter=topic" form of the --kafka-topic-map flag.
func ParseRoute(s string) (Route, error) {
	filter, topic, ok := strings.Cut(s, "=")
	filter, topic = strings.TrimSpace(filter), strings.TrimSpace(topic)
	if !ok || filter == "" || topic == "" {
		return Route{}, fmt.Errorf("%w: route %q is not filter=topic", ErrInvalidConfig, s)
	}
	return Route{Filter: filter, Topic: topic}, nil
}

// Config is everything the bridge needs to run. The zero value is not usable:
// start from [DefaultConfig] and override.
type Config struct {
	// MQTTBroker is the broker URL, e.g. tcp://localhost:1883.
	MQTTBroker string
	// ClientID is the MQTT client id. It must be stable across restarts (the
	// persistent session is keyed by it) and different for every replica.
	ClientID string
	// ShareGroup, when set, subscribes as $share/<ShareGroup>/<filter> so
	// that replicas split the load.
	ShareGroup string
	// TopicFilters are the MQTT filters subscribed at QoS 1.
	TopicFilters []string
	// KeepAlive is the MQTT keep-alive interval.
	KeepAlive time.Duration
	// MQTTUsername, when set, is sent in CONNECT with the password from
	// MQTTPassword or, when that is empty, from MQTTPasswordFile.
	MQTTUsername string
	// MQTTPassword is the MQTT password.
	MQTTPassword string
	// MQTTPasswordFile is a file whose first line is the MQTT password;
	// it keeps the password out of the process list and the environment.
	MQTTPasswordFile string
	// MQTTCA is a PEM file of the CA certificates that verify the broker
	// on ssl:// and mqtts:// URLs; empty means the system's roots.
	MQTTCA string
	// MQTTClientCert and MQTTClientKey are PEM files of the certificate
	// and key the bridge presents to a broker that asks for one.
	MQTTClientCert, MQTTClientKey string

	// KafkaBrokers is the bootstrap server list.
	KafkaBrokers string
	// KafkaConfig holds extra librdkafka settings (SASL, TLS, tuning); they
	// override the bridge's own producer settings except the ones that the
	// no-loss guarantee depends on (see producerConfig).
	KafkaConfig map[string]string
	// KafkaTopic receives every reading that no Route matches.
	KafkaTopic string
	// Routes map MQTT filters to Kafka topics; the first match wins.
	Routes []Route
	// OversizedTopic receives payloads longer than MaxPayloadBytes, cut down.
	OversizedTopic string
	// KafkaPartitions is the partition count of topics the bridge creates.
	KafkaPartitions int
	// KafkaRetention is the retention of topics the bridge creates; a
	// negative value keeps records forever.
	KafkaRetention time.Duration
	// MaxPayloadBytes is the largest payload forwarded whole.
	MaxPayloadBytes int

	// TraceSampleRatio is the fraction of readings that get a span and a
	// traceparent header.
	TraceSampleRatio float64
	// QueueSize is the capacity of the handoff queue between the MQTT
	// handlers and the producing loop.
	QueueSize int
	// MaxInFlight caps the readings produced but not yet settled by a
	// delivery report; it is also librdkafka's queue.buffering.max.messages.
	MaxInFlight int
	// MaxUnacked is the most readings of its MQTT connection the bridge
	// holds unacknowledged; at it the bridge stops reading from the broker
	// until acknowledgements make room. The broker's in-flight window
	// (max_inflight_messages) should keep it below; this bounds the
	// bridge's memory when the broker sends more (Mosquitto 2.0.11 does
	// under bursts of acknowledgements).
	MaxUnacked int
	// ShutdownTimeout bounds how long a stop waits for in-flight deliveries.
	ShutdownTimeout time.Duration

	// Linger is librdkafka's linger.ms, how long a batch waits to fill in
	// the producer; --kafka-config linger.ms overrides it.
	Linger time.Duration
	// DeepLinger is how long the bridge gathers readings before it
	// produces them while the queue is deep (see gather.go); 0 never
	// gathers.
	DeepLinger time.Duration
	// DeepQueue is the number of readings waiting in the bridge (not yet
	// produced, or produced and not yet stored) from which the queue is deep.
	DeepQueue int
}

// DefaultConfig returns a Config with every default filled in except the
// client id, which each deployment must choose.
func DefaultConfig() Config {
	return Config{
		MQTTBroker:       "tcp://localhost:1883",
		TopicFilters:     []string{DefaultTopicFilter},
		KeepAlive:        DefaultKeepAlive,
		KafkaBrokers:     "localhost:9092",
		KafkaTopic:       DefaultKafkaTopic,
		OversizedTopic:   DefaultOversizedTopic,
		KafkaPartitions:  DefaultKafkaPartitions,
		KafkaRetention:   DefaultKafkaRetention,
		MaxPayloadBytes:  DefaultMaxPayloadBytes,
		TraceSampleRatio: DefaultTraceSampleRatio,
		QueueSize:        DefaultQueueSize,
		MaxInFlight:      DefaultMaxInFlight,
		MaxUnacked:       DefaultMaxUnacked,
		ShutdownTimeout:  DefaultShutdownTimeout,
		Linger:           DefaultLinger,
		DeepLinger:       DefaultDeepLinger,
		DeepQueue:        DefaultDeepQueue,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MQTTBroker == "":
		return fmt.Errorf("%w: the MQTT broker URL is empty", ErrInvalidConfig)
	case c.ClientID == "":
		return fmt.Errorf("%w: the MQTT client id is empty; give each replica a stable id of its own", ErrInvalidConfig)
	case strings.ContainsAny(c.ShareGroup, "/+#"):
		return fmt.Errorf("%w: share group %q contains one of / + #", ErrInvalidConfig, c.ShareGroup)
	case len(c.subscriptions()) == 0:
		return fmt.Errorf("%w: no MQTT topic filter", ErrInvalidConfig)
	case c.KafkaBrokers == "":
		return fmt.Errorf("%w: no Kafka brokers", ErrInvalidConfig)
	case c.KafkaTopic == "" || c.OversizedTopic == "":
		return fmt.Errorf("%w: the Kafka topic and the oversized topic must be named", ErrInvalidConfig)
	case c.KafkaRetention == 0:
		return fmt.Errorf("%w: --kafka-retention is 0; give a duration, or a negative one to keep records forever", ErrInvalidConfig)
	case c.KafkaPartitions < 1:
		return fmt.Errorf("%w: --kafka-partitions %d is below 1", ErrInvalidConfig, c.KafkaPartitions)
	case c.MaxPayloadBytes < minPayloadLimit:
		return fmt.Errorf("%w: --max-payload-bytes %d is below %d", ErrInvalidConfig, c.MaxPayloadBytes, minPayloadLimit)
	case c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1:
		return fmt.Errorf("%w: --trace-sample-ratio %v is outside [0, 1]", ErrInvalidConfig, c.TraceSampleRatio)
	case c.QueueSize < 1 || c.MaxInFlight < 1 || c.MaxUnacked < 1:
		return fmt.Errorf("%w: --queue-size, --max-in-flight and --max-unacked must be positive", ErrInvalidConfig)
	case c.Linger < 0 || c.DeepLinger < 0 || c.DeepQueue < 1:
		return fmt.Errorf("%w: --linger and --deep-linger must not be negative, --deep-queue must be positive", ErrInvalidConfig)
	case c.ShutdownTimeout <= 0 || c.KeepAlive <= 0:
		return fmt.Errorf("%w: shutdown timeout and keep-alive must be positive", ErrInvalidConfig)
	}
	if err := c.validateMQTTAuth(); err != nil {
		return err
	}
	for _, f := range c.subscriptions() {
		if err := validateFilter(f); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// subscriptions returns the MQTT filters to subscribe: the configured ones
// plus any route filter not already covered by being listed, in order.
func (c Config) subscriptions() []string {
	seen := make(map[string]bool)
	var out []string
	for _, f := range c.TopicFilters {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, r := range c.Routes {
		if !seen[r.Filter] {
			seen[r.Filter] = true
			out = append(out, r.Filter)
		}
	}
	return out
}

// subscribeFilters returns the filters as sent to the broker, with the
// shared-subscription prefix when a share group is set.
func (c Config) subscribeFilters() []string {
	subs := c.subscriptions()
	if c.ShareGroup == "" {
		return subs
	}
	out := make([]string, len(subs))
	for i, f := range subs {
		out[i] = "$share/" + c.ShareGroup + "/" + f
	}
	return out
}

// topics returns every Kafka topic the bridge produces to.
func (c Config) topics() []string {
	seen := map[string]bool{c.KafkaTopic: true, c.OversizedTopic: true}
	out := []string{c.KafkaTopic, c.OversizedTopic}
	for _, r := range c.Routes {
		if !seen[r.Topic] {
			seen[r.Topic] = true
			out = append(out, r.Topic)
		}
	}
	return out
}
