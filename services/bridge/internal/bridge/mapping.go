package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// Kafka header keys the bridge writes. Values are UTF-8 text: numbers in
// decimal, booleans true/false.
const (
	HeaderMQTTTopic     = "mqtt_topic"
	HeaderMQTTQoS       = "mqtt_qos"
	HeaderMQTTRetain    = "mqtt_retain"
	HeaderMQTTDup       = "mqtt_dup"
	HeaderBridgeTSMs    = "bridge_ts_ms"
	HeaderOversizedSize = "oversized_bytes"
	HeaderTraceparent   = "traceparent"
)

const (
	// recordOverhead, maxTopicBytes and maxFixedHeaderBytes are the parts of
	// a record beside its payload; kafkatopic sizes the topics with them.
	recordOverhead      = kafkatopic.RecordOverhead
	maxTopicBytes       = kafkatopic.MaxMQTTTopicBytes
	maxFixedHeaderBytes = kafkatopic.MaxFixedHeaderBytes
	// minPayloadLimit keeps a cut payload meaningful.
	minPayloadLimit = 1024
)

// ErrInvalidFilter is wrapped by errors about malformed MQTT topic filters.
var ErrInvalidFilter = errors.New("invalid MQTT topic filter")

// producerMessageMaxBytes is librdkafka's message.max.bytes for a payload
// limit: room for a full-size payload plus the longest key and headers.
func producerMessageMaxBytes(maxPayload int) int {
	return kafkatopic.MaxMessageBytes(maxPayload)
}

var (
	textTrue  = []byte("true")
	textFalse = []byte("false")
	textQoS   = [3][]byte{[]byte("0"), []byte("1"), []byte("2")}
)

func boolText(b bool) []byte {
	if b {
		return textTrue
	}
	return textFalse
}

// inbound is what the mapper needs from an MQTT message.
type inbound struct {
	topic    string
	qos      byte
	retained bool
	dup      bool
	payload  []byte
}

// mapper turns MQTT messages into Kafka records: it picks the topic, copies
// the MQTT metadata into headers and diverts oversized payloads.
type mapper struct {
	routes         []Route
	defaultTopic   *string
	routeTopics    []*string
	oversizedTopic *string
	maxPayload     int
	// topicLimits holds the max.message.bytes of the topics written, as
	// the brokers last reported them; a record a topic would refuse is
	// diverted before it is produced. Replaced whole, read by the pump.
	topicLimits atomic.Pointer[map[string]int]
	// tsMs and tsText cache the bridge_ts_ms header value (read-only once
	// made) of the current millisecond; see recordInto.
	tsMs   int64
	tsText []byte
}

// setTopicLimits records the topics' max.message.bytes.
func (m *mapper) setTopicLimits(limits map[string]int) { m.topicLimits.Store(&limits) }

// recordLimit is the largest record (key, value, headers and batch overhead)
// that topic accepts: its max.message.bytes when known, else what the
// payload limit leaves room for.
func (m *mapper) recordLimit(topic *string) int {
	limit := producerMessageMaxBytes(m.maxPayload)
	if limits := m.topicLimits.Load(); limits != nil {
		if n, ok := (*limits)[*topic]; ok && n < limit {
			limit = n
		}
	}
	return limit
}

func newMapper(cfg Config) *mapper {
	m := &mapper{
		routes:         cfg.Routes,
		defaultTopic:   &cfg.KafkaTopic,
		oversizedTopic: &cfg.OversizedTopic,
		maxPayload:     cfg.MaxPayloadBytes,
	}
	for i := range cfg.Routes {
		m.routeTopics = append(m.routeTopics, &cfg.Routes[i].Topic)
	}
	return m
}

// topicFor returns the Kafka topic for an MQTT topic: the first matching
// route's, else the default.
func (m *mapper) topicFor(mqttTopic string) *string {
	for i, r := range m.routes {
		if matchFilter(r.Filter, mqttTopic) {
			return m.routeTopics[i]
		}
	}
	return m.defaultTopic
}

// record builds the Kafka record for one reading. The payload is used
// untouched unless it exceeds the limit; then the record goes to the
// oversized topic, cut so that the whole record (key, headers and batch
// overhead included) fits in maxPayload bytes, with the original size in the
// oversized_bytes header. oversized tells the caller which happened.
func (m *mapper) record(in inbound, now time.Time) (msg *kafka.Message, oversized bool) {
	return m.recordInto(new(kafka.Message), make([]kafka.Header, 0, maxHeaders), in, now)
}

// maxHeaders is the most headers a record gets: the five MQTT ones,
// oversized_bytes and traceparent.
const maxHeaders = 7

// recordInto is record writing into msg, with the headers appended to
// headers (give it room for maxHeaders so that nothing is allocated). The
// bridge_ts_ms text is shared by the records of one millisecond, so only
// one goroutine may call it (the pump).
func (m *mapper) recordInto(msg *kafka.Message, headers []kafka.Header, in inbound, now time.Time) (*kafka.Message, bool) {
	key := []byte(in.topic)
	qos := in.qos
	if qos > 2 {
		qos = 2
	}
	if ms := now.UnixMilli(); ms != m.tsMs || m.tsText == nil {
		m.tsMs, m.tsText = ms, strconv.AppendInt(nil, ms, 10)
	}
	headers = append(headers,
		kafka.Header{Key: HeaderMQTTTopic, Value: key},
		kafka.Header{Key: HeaderMQTTQoS, Value: textQoS[qos]},
		kafka.Header{Key: HeaderMQTTRetain, Value: boolText(in.retained)},
		kafka.Header{Key: HeaderMQTTDup, Value: boolText(in.dup)},
		kafka.Header{Key: HeaderBridgeTSMs, Value: m.tsText},
	)
	*msg = kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: m.topicFor(in.topic), Partition: kafka.PartitionAny},
		Key:            key,
		Value:          in.payload,
		Headers:        headers,
	}
	if len(in.payload) > m.maxPayload || recordSize(msg) > m.recordLimit(msg.TopicPartition.Topic) {
		m.divert(msg, len(in.payload))
		return msg, true
	}
	return msg, false
}

// recordSize bounds the bytes msg takes in a batch of its own.
func recordSize(msg *kafka.Message) int {
	return len(msg.Key) + len(msg.Value) + headerBytes(msg.Headers) + recordOverhead
}

// divert turns msg into its oversized form: oversized topic, payload cut to
// fit, and the original size in a header. It is also used when Kafka refuses
// a record as too large.
func (m *mapper) divert(msg *kafka.Message, originalSize int) {
	msg.TopicPartition.Topic = m.oversizedTopic
	msg.Headers = append(msg.Headers, kafka.Header{
		Key:   HeaderOversizedSize,
		Value: strconv.AppendInt(nil, int64(originalSize), 10),
	})
	budget := min(m.maxPayload, m.recordLimit(m.oversizedTopic)) - len(msg.Key) - headerBytes(msg.Headers) - recordOverhead
	budget = max(budget, 0)
	if len(msg.Value) > budget {
		msg.Value = msg.Value[:budget]
	}
}

func headerBytes(hs []kafka.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// validateFilter checks an MQTT topic filter against the MQTT 3.1.1 rules:
// '#' only as the whole last level, '+' only as a whole level.
func validateFilter(filter string) error {
	if filter == "" {
		return fmt.Errorf("%w: empty filter", ErrInvalidFilter)
	}
	if strings.HasPrefix(filter, "$share/") {
		return fmt.Errorf("%w: %q: give the filter without $share/, and the group with --mqtt-share-group", ErrInvalidFilter, filter)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("%w: %q: '#' must be the last level", ErrInvalidFilter, filter)
		case l != "#" && strings.Contains(l, "#"):
			return fmt.Errorf("%w: %q: '#' must fill a whole level", ErrInvalidFilter, filter)
		case l != "+" && strings.Contains(l, "+"):
			return fmt.Errorf("%w: %q: '+' must fill a whole level", ErrInvalidFilter, filter)
		}
	}
	return nil
}

// matchFilter reports whether an MQTT topic name matches a topic filter.
// As MQTT requires, wildcards at the first level do not match topics that
// start with '$'.
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" matches "a": the parent level.
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
