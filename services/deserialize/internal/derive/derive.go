// Package derive turns one row of the raw table into either a bronze row or
// a dead letter: it checks the payload's size, parses it, maps its MQTT topic
// and applies the rules.
//
// Derivation is deterministic: the same raw row, raw version and rules give
// the same output, whenever and however often it runs. Nothing reads the
// clock: the ts window is measured from raw's ingest_ts, and a dead letter's
// failed_at is raw's ingest_ts too (not the moment deserialize ran), so that a
// batch re-derived after a crash, or by Reprocess with unchanged rules, writes
// the very same rows.
package derive

import (
	"fmt"

	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// Kafka headers deserialize reads (set by the bridge).
const (
	HeaderMQTTTopic      = "mqtt_topic"
	HeaderBridgeTS       = "bridge_ts_ms"
	HeaderOversizedBytes = "oversized_bytes"
	HeaderTraceparent    = "traceparent"
)

// Header is one Kafka header of a raw row; a nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// Raw is one row of raw.plant_sensor_readings, as DESIGN.md section 2 has
// it. Times are Unix microseconds.
type Raw struct {
	KafkaTopic     string
	KafkaPartition int32
	KafkaOffset    int64
	// KafkaTimestamp is null unless KafkaTimestampValid.
	KafkaTimestamp      int64
	KafkaTimestampValid bool
	// KafkaKey is the MQTT topic; nil is null.
	KafkaKey []byte
	Headers  []Header
	// BridgeTS is null unless BridgeTSValid.
	BridgeTS      int64
	BridgeTSValid bool
	// RawPayload is the payload as it came; nil is null.
	RawPayload []byte
	IngestTS   int64
}

// header returns the value of the first header named key.
func (r *Raw) header(key string) ([]byte, bool) {
	for i := range r.Headers {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// Outcome says which table a raw row goes to.
type Outcome int

// Outcomes.
const (
	// ToBronze: Output.Reading holds the bronze row.
	ToBronze Outcome = iota + 1
	// ToDeadLetters: Output.DeadLetter holds the dead letter.
	ToDeadLetters
)

// Output holds what Derive made of a raw row. Its strings and byte slices
// may alias the raw row and the Deriver's memory until the next Derive; the
// bronze Builders copy them.
type Output struct {
	Reading    bronze.Reading
	DeadLetter bronze.DeadLetter
}

// Deriver derives raw rows with one rule set at a time. It is not safe for
// concurrent use; it is cheap to make one per goroutine.
type Deriver struct {
	pattern *parse.TopicPattern
	parser  *parse.Parser
	eval    *rules.Evaluator

	reading parse.Reading
	topic   parse.Topic
	in      rules.Input
	// topics reuses MQTT topic strings: a plant has a bounded set of them.
	topics map[string]string
}

// maxTopics bounds the MQTT topics a Deriver keeps for reuse.
const maxTopics = 16384

// topicString returns b as a string, reusing an earlier equal one.
func (d *Deriver) topicString(b []byte) string {
	if s, ok := d.topics[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.topics) < maxTopics {
		d.topics[s] = s
	}
	return s
}

// New returns a Deriver that maps topics with pattern and applies set.
func New(pattern *parse.TopicPattern, set *rules.Set) *Deriver {
	return &Deriver{pattern: pattern, parser: parse.NewParser(), eval: set.NewEvaluator(), topics: make(map[string]string)}
}

// Rules returns the rule set in use.
func (d *Deriver) Rules() *rules.Set { return d.eval.Set() }

// SetRules makes set the rule set of the next rows, after publishing the
// counts of the current one. Call it between batches: a batch is derived
// with one rule set.
func (d *Deriver) SetRules(set *rules.Set) {
	d.eval.Flush()
	d.eval = set.NewEvaluator()
}

// Flush publishes the rule counts gathered since the last Flush to the rule
// set (see rules.Set.Snapshot).
func (d *Deriver) Flush() { d.eval.Flush() }

// Derive derives raw, a row of raw version rawVersion, into out and says
// which table it goes to. A rule whose action is fail returns a
// *rules.FailError naming the rule and the row; out is then undefined.
func (d *Deriver) Derive(raw *Raw, rawVersion int64, out *Output) (Outcome, error) {
	lin := bronze.Lineage{
		KafkaTopic:     raw.KafkaTopic,
		KafkaPartition: raw.KafkaPartition,
		KafkaOffset:    raw.KafkaOffset,
		RawVersion:     rawVersion,
		BridgeTS:       raw.BridgeTS,
		BridgeTSValid:  raw.BridgeTSValid,
	}
	mqttTopic := raw.KafkaKey
	if mqttTopic == nil {
		mqttTopic, _ = raw.header(HeaderMQTTTopic)
	}
	if mqttTopic != nil {
		lin.MQTTTopic, lin.MQTTTopicValid = d.topicString(mqttTopic), true
	}

	payload := raw.RawPayload
	original, oversized := raw.header(HeaderOversizedBytes)
	if v := d.eval.CheckSize(len(payload), oversized, string(original)); v.Action != "" {
		return d.reject(v, raw, &lin, out)
	}
	if payload == nil {
		v := d.eval.ParseFailed(&parse.Error{Code: parse.CodeEmpty, Detail: "the Kafka record has no value (a null payload)"})
		return d.reject(v, raw, &lin, out)
	}
	r := &d.reading
	if perr := d.parser.Parse(payload, r); perr != nil {
		return d.reject(d.eval.ParseFailed(perr), raw, &lin, out)
	}

	topicOK := lin.MQTTTopicValid && d.pattern.Match(lin.MQTTTopic, &d.topic)
	if !topicOK {
		d.topic = parse.Topic{Plant: d.pattern.Plant()}
	}
	d.in = rules.Input{
		Reading:     r,
		Topic:       &d.topic,
		TopicOK:     topicOK,
		MQTTTopic:   lin.MQTTTopic,
		Pattern:     d.pattern.String(),
		IngestTS:    raw.IngestTS,
		PayloadSize: len(payload),
	}
	if v := d.eval.Validate(&d.in); v.Action != "" {
		return d.reject(v, raw, &lin, out)
	}

	t := &d.topic
	var traceparent []byte
	if tp, ok := raw.header(HeaderTraceparent); ok && len(tp) > 0 {
		traceparent = tp
	}
	out.Reading = bronze.Reading{
		SensorID:    r.SensorID,
		Measurement: r.Measurement,
		Value:       r.Value,
		Unit:        r.Unit,
		TS:          r.TS,
		Plant:       t.Plant,
		Line:        t.Line,
		LineValid:   t.HasLine,
		Device:      t.Device,
		DeviceValid: t.HasDevice,
		Extra:       r.Extra,
		Traceparent: traceparent,
		Lineage:     lin,
	}
	return ToBronze, nil
}

// reject turns a drop verdict into a dead letter and a fail verdict into a
// FailError.
func (d *Deriver) reject(v rules.Verdict, raw *Raw, lin *bronze.Lineage, out *Output) (Outcome, error) {
	if v.Action == rules.Fail {
		return 0, &rules.FailError{
			Rule:   v.Rule,
			Code:   v.Code,
			Detail: v.Detail,
			Row: fmt.Sprintf("raw version %d, Kafka %s[%d]@%d, MQTT topic %q",
				lin.RawVersion, lin.KafkaTopic, lin.KafkaPartition, lin.KafkaOffset, lin.MQTTTopic),
		}
	}
	out.DeadLetter = bronze.DeadLetter{
		RawPayload:  raw.RawPayload,
		ErrorCode:   v.Code,
		ErrorDetail: v.Detail,
		Stage:       v.Stage,
		FailedAt:    raw.IngestTS,
		Lineage:     *lin,
	}
	return ToDeadLetters, nil
}
