// Package kafkatopic creates the Kafka topics plantlake writes, all in one
// way: whoever finds a topic missing (the bridge, ingest, the catalog's
// event publisher, `make up`, the tests and benchmarks) creates it with
// [Ensure], so that a topic is the same whichever component made it.
//
// A topic gets its partitions, room for the largest record the bridge
// writes (max.message.bytes = [MaxMessageBytes] of the payload limit), a
// retention of [DefaultRetention] unless told otherwise, and the cluster's
// default replication factor. A topic that exists keeps its partitions and
// retention; only a max.message.bytes it inherits from the broker and that
// is too small is raised (see [Ensure]).
//
// Typical use, in a loop that retries while Kafka is unreachable:
//
//	admin, _ := kafka.NewAdminClientFromProducer(producer)
//	results, err := kafkatopic.Ensure(ctx, admin,
//		kafkatopic.Spec{Name: kafkatopic.Raw, Partitions: 6},
//		kafkatopic.Spec{Name: kafkatopic.Oversized, Partitions: 6})
//
// The package uses only the Kafka client, so that any plantlake module can
// import it.
package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// The topics of the pipeline (DESIGN.md sections 1 and 4), named once here.
const (
	// Raw carries MQTT readings from the bridge to ingest (key = MQTT
	// topic, value = payload bytes).
	Raw = "plant_sensor_readings_raw"
	// Oversized carries readings larger than the bridge's payload limit,
	// cut to it, with the oversized_bytes header.
	Oversized = "plant_sensor_readings_oversized"
	// TableCommits carries the catalog's TableCommitEvents (key = table).
	TableCommits = "plantlake.table-commits"
)

// Defaults of a [Spec]'s zero fields.
const (
	// DefaultPartitions is the partition count of a created topic.
	DefaultPartitions = 6
	// DefaultRetention is how long a created topic keeps records: 14 days,
	// the original design's Kafka retention, long enough to reprocess two
	// weeks of readings after a downstream bug.
	DefaultRetention = 14 * 24 * time.Hour
	// DefaultMaxPayloadBytes is the bridge's default --max-payload-bytes
	// (1 MiB), the payload a created topic makes room for by default.
	DefaultMaxPayloadBytes = 1 << 20
)

// The parts of a plantlake record beside its payload, for [MaxMessageBytes].
const (
	// MaxMQTTTopicBytes is the longest MQTT topic name (a 16-bit length
	// prefix); it appears twice in a record, as key and as the mqtt_topic
	// header.
	MaxMQTTTopicBytes = 65535
	// MaxFixedHeaderBytes bounds every header of a record but mqtt_topic.
	MaxFixedHeaderBytes = 512
	// RecordOverhead is what Kafka adds around one record's key, value and
	// headers when it is alone in a batch: the v2 batch header (61 bytes)
	// plus the record's length, attributes, deltas and the varint lengths of
	// key, value and each header, rounded up generously.
	RecordOverhead = 256
)

// MaxMessageBytes returns the max.message.bytes that a topic needs so that
// a record carrying a payload of maxPayload bytes passes whole, whatever its
// MQTT topic and headers: maxPayload + 2×MaxMQTTTopicBytes +
// MaxFixedHeaderBytes + RecordOverhead (1,180,414 for 1 MiB).
func MaxMessageBytes(maxPayload int) int {
	return maxPayload + 2*MaxMQTTTopicBytes + MaxFixedHeaderBytes + RecordOverhead
}

// Spec describes a topic. Zero fields take the defaults above.
type Spec struct {
	// Name is the topic name; required.
	Name string
	// Partitions of the topic when it is created; 0 means DefaultPartitions.
	Partitions int
	// ReplicationFactor when it is created; 0 means the cluster's
	// default.replication.factor (1 on a default or devstack broker).
	ReplicationFactor int
	// MaxMessageBytes is the largest record the topic must accept; 0 means
	// MaxMessageBytes(DefaultMaxPayloadBytes).
	MaxMessageBytes int
	// Retention is the topic's retention.ms when it is created; 0 means
	// DefaultRetention, a negative value keeps records forever.
	Retention time.Duration
	// Config holds further topic settings applied when the topic is created
	// (e.g. message.timestamp.type); max.message.bytes and retention.ms
	// come from the fields above.
	Config map[string]string
}

func (s Spec) withDefaults() Spec {
	if s.Partitions == 0 {
		s.Partitions = DefaultPartitions
	}
	if s.ReplicationFactor == 0 {
		s.ReplicationFactor = -1 // the broker's default.replication.factor
	}
	if s.MaxMessageBytes == 0 {
		s.MaxMessageBytes = MaxMessageBytes(DefaultMaxPayloadBytes)
	}
	if s.Retention == 0 {
		s.Retention = DefaultRetention
	}
	return s
}

// retentionMs is the retention.ms value of s.Retention.
func (s Spec) retentionMs() string {
	if s.Retention < 0 {
		return "-1"
	}
	return strconv.FormatInt(s.Retention.Milliseconds(), 10)
}

// Outcome says what Ensure did with a topic.
type Outcome int

const (
	// Existed means the topic was there with enough room; nothing changed.
	Existed Outcome = iota
	// Created means Ensure created the topic.
	Created
	// Raised means the topic existed and Ensure raised its max.message.bytes.
	Raised
	// KeptSmaller means the topic existed with a max.message.bytes set on
	// the topic itself that is below the Spec's: Ensure left it as it is.
	KeptSmaller
)

// String names the outcome for logs.
func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Raised:
		return "raised max.message.bytes"
	case KeptSmaller:
		return "kept its own smaller max.message.bytes"
	default:
		return "existed"
	}
}

// Result is what Ensure did with one topic.
type Result struct {
	Topic   string
	Outcome Outcome
	// MaxMessageBytes is the topic's limit after Ensure; 0 when the client
	// may not read the settings of an existing topic.
	MaxMessageBytes int
}

// ErrInvalidSpec is wrapped by the error Ensure returns for a Spec without
// a name or with negative sizes.
var ErrInvalidSpec = errors.New("invalid topic spec")

// opTimeout bounds each admin request Ensure makes.
const opTimeout = 10 * time.Second

// Ensure makes every topic of specs exist and accept its MaxMessageBytes,
// in one attempt; callers retry while Kafka is unreachable. It returns one
// Result per Spec, in order.
//
// A missing topic is created with the Spec's partitions, replication
// factor, max.message.bytes and retention.ms. A topic that exists keeps its
// partitions, replication and retention. Its max.message.bytes is raised to
// the Spec's with IncrementalAlterConfigs when the topic inherits a smaller
// value from the broker: such a topic was created without one, by an older
// plantlake (`make up` before this package) or by hand, and without room
// the bridge would divert every payload near its limit. A value set on the
// topic itself is an operator's choice and is kept ([KeptSmaller]); the
// bridge reads it and diverts what does not fit.
func Ensure(ctx context.Context, admin *kafka.AdminClient, specs ...Spec) ([]Result, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	full := make([]Spec, len(specs))
	create := make([]kafka.TopicSpecification, len(specs))
	for i, s := range specs {
		if s.Name == "" || s.Partitions < 0 || s.MaxMessageBytes < 0 {
			return nil, fmt.Errorf("%w: %+v", ErrInvalidSpec, s)
		}
		s = s.withDefaults()
		full[i] = s
		cfg := make(map[string]string, len(s.Config)+2)
		for k, v := range s.Config {
			cfg[k] = v
		}
		cfg["max.message.bytes"] = strconv.Itoa(s.MaxMessageBytes)
		cfg["retention.ms"] = s.retentionMs()
		create[i] = kafka.TopicSpecification{
			Topic:             s.Name,
			NumPartitions:     s.Partitions,
			ReplicationFactor: s.ReplicationFactor,
			Config:            cfg,
		}
	}
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	created, err := admin.CreateTopics(cctx, create, kafka.SetAdminOperationTimeout(opTimeout/2))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("create topics: %w", err)
	}
	outcome := make(map[string]kafka.Error, len(created))
	for _, c := range created {
		outcome[c.Topic] = c.Error
	}
	results := make([]Result, len(full))
	var existing []int
	for i, s := range full {
		results[i] = Result{Topic: s.Name, Outcome: Created, MaxMessageBytes: s.MaxMessageBytes}
		kerr, ok := outcome[s.Name]
		if !ok {
			return nil, fmt.Errorf("create topics: no result for %s", s.Name)
		}
		switch kerr.Code() {
		case kafka.ErrNoError:
		case kafka.ErrTopicAlreadyExists:
			existing = append(existing, i)
		case kafka.ErrTopicAuthorizationFailed, kafka.ErrClusterAuthorizationFailed:
			// A client that may not create topics is fine where the topic
			// exists already (created by an operator).
			if !topicExists(admin, s.Name) {
				return nil, fmt.Errorf("create topic %s: %w", s.Name, kerr)
			}
			existing = append(existing, i)
		default:
			return nil, fmt.Errorf("create topic %s: %w", s.Name, kerr)
		}
	}
	if len(existing) == 0 {
		return results, nil
	}
	if err := fitExisting(ctx, admin, full, existing, results); err != nil {
		return nil, err
	}
	return results, nil
}

// topicExists reports whether the cluster's metadata lists topic with
// partitions.
func topicExists(admin *kafka.AdminClient, topic string) bool {
	md, err := admin.GetMetadata(&topic, false, int(opTimeout/time.Millisecond))
	if err != nil {
		return false
	}
	t, ok := md.Topics[topic]
	return ok && t.Error.Code() == kafka.ErrNoError && len(t.Partitions) > 0
}

// fitExisting reads the max.message.bytes of the topics at indexes idx and
// raises the inherited ones that are too small.
func fitExisting(ctx context.Context, admin *kafka.AdminClient, specs []Spec, idx []int, results []Result) error {
	resources := make([]kafka.ConfigResource, len(idx))
	for j, i := range idx {
		resources[j] = kafka.ConfigResource{Type: kafka.ResourceTopic, Name: specs[i].Name}
	}
	dctx, cancel := context.WithTimeout(ctx, opTimeout)
	described, err := admin.DescribeConfigs(dctx, resources)
	cancel()
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	byName := make(map[string]kafka.ConfigResourceResult, len(described))
	for _, d := range described {
		byName[d.Name] = d
	}
	var raise []kafka.ConfigResource
	for _, i := range idx {
		s := specs[i]
		d, ok := byName[s.Name]
		if !ok {
			return fmt.Errorf("describe topic %s: no result", s.Name)
		}
		switch d.Error.Code() {
		case kafka.ErrNoError:
		case kafka.ErrTopicAuthorizationFailed, kafka.ErrClusterAuthorizationFailed:
			// May not read the topic's settings: leave them alone.
			results[i] = Result{Topic: s.Name, Outcome: Existed}
			continue
		default:
			return fmt.Errorf("describe topic %s: %w", s.Name, d.Error)
		}
		entry, ok := d.Config["max.message.bytes"]
		if !ok {
			return fmt.Errorf("topic %s: no max.message.bytes in its configuration", s.Name)
		}
		have, err := strconv.Atoi(entry.Value)
		if err != nil {
			return fmt.Errorf("topic %s: max.message.bytes %q: %w", s.Name, entry.Value, err)
		}
		switch {
		case have >= s.MaxMessageBytes:
			results[i] = Result{Topic: s.Name, Outcome: Existed, MaxMessageBytes: have}
		case entry.Source == kafka.ConfigSourceDynamicTopic:
			results[i] = Result{Topic: s.Name, Outcome: KeptSmaller, MaxMessageBytes: have}
		default:
			results[i] = Result{Topic: s.Name, Outcome: Raised, MaxMessageBytes: s.MaxMessageBytes}
			raise = append(raise, kafka.ConfigResource{Type: kafka.ResourceTopic, Name: s.Name, Config: []kafka.ConfigEntry{{
				Name: "max.message.bytes", Value: strconv.Itoa(s.MaxMessageBytes), IncrementalOperation: kafka.AlterConfigOpTypeSet,
			}}})
		}
	}
	if len(raise) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, opTimeout)
	altered, err := admin.IncrementalAlterConfigs(actx, raise)
	cancel()
	if err != nil {
		return fmt.Errorf("raise max.message.bytes: %w", err)
	}
	for _, a := range altered {
		if a.Error.Code() != kafka.ErrNoError {
			return fmt.Errorf("raise max.message.bytes of %s: %w", a.Name, a.Error)
		}
	}
	return nil
}

// EnsureAt is Ensure with an admin client of its own for the Kafka at
// brokers; extra holds further librdkafka settings (SASL, TLS).
func EnsureAt(ctx context.Context, brokers string, extra map[string]string, specs ...Spec) ([]Result, error) {
	cm := kafka.ConfigMap{"bootstrap.servers": brokers, "log_level": 0}
	for k, v := range extra {
		cm[k] = v
	}
	admin, err := kafka.NewAdminClient(&cm)
	if err != nil {
		return nil, fmt.Errorf("kafka admin client for %s: %w", brokers, err)
	}
	defer admin.Close()
	return Ensure(ctx, admin, specs...)
}
