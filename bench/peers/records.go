package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// shape is how the records of one topic look on Kafka.
type shape struct {
	// name is the shape's name in the table and the topic's suffix.
	name string
	// headers: the bridge's five headers on every record, or none (records
	// produced by something other than the bridge, as the seed is).
	headers bool
}

// shapes measured, in the table's order.
var shapes = []shape{
	{name: "bridge", headers: true},
	{name: "seed", headers: false},
}

// topic is the Kafka topic that holds the records of s.
func (s shape) topic() string { return "peers_" + s.name + "_shaped" }

// measurements of the readings, each with a unit the default rules allow
// and a base value.
var measurements = []struct {
	name, unit string
	base       int
}{
	{"temperature", "C", 20},
	{"pressure", "bar", 1},
	{"humidity", "%", 30},
	{"vibration", "mm/s", 2},
}

// sensors is how many devices the readings come from.
const sensors = 64

// reading returns reading seq's MQTT topic (the record key) and its payload
// of about 110 bytes, stamped some seconds before now. Every reading is
// valid, so that both engines must write every record as a parsed row.
func reading(seq int, now time.Time) (key, payload []byte) {
	m := measurements[seq%len(measurements)]
	device := fmt.Sprintf("press%03d", seq%sensors)
	key = fmt.Appendf(nil, "plant/line%d/%s/%s", seq%sensors%7, device, m.name)
	ts := now.Add(-time.Duration(seq%3600) * time.Second).UnixMicro()
	payload = fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%d.%03d,"unit":%q,"ts":%d.%06d}`,
		device, m.name, m.base+seq%40, seq%1000, m.unit, ts/1_000_000, ts%1_000_000)
	return key, payload
}

// produce sends n readings of shape s to its topic and returns when every
// one is acknowledged. The producer is idempotent, so each record is stored
// once and the topic's offsets count the records exactly.
func produce(ctx context.Context, brokers string, s shape, n int, now time.Time) error {
	p, err := ckafka.NewProducer(&ckafka.ConfigMap{
		"bootstrap.servers":      brokers,
		"enable.idempotence":     true,
		"linger.ms":              5,
		"batch.size":             1 << 20,
		"go.logs.channel.enable": false,
	})
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer p.Close()
	delivery := make(chan ckafka.Event, 4096)
	errc := make(chan error, 1)
	go func() {
		var first error
		for range n {
			if m, ok := (<-delivery).(*ckafka.Message); ok && m.TopicPartition.Error != nil && first == nil {
				first = m.TopicPartition.Error
			}
		}
		errc <- first
	}()
	topic := s.topic()
	bridgeMillis := strconv.AppendInt(nil, now.UnixMilli(), 10)
	for seq := range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		key, payload := reading(seq, now)
		msg := &ckafka.Message{
			TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
			Key:            key,
			Value:          payload,
		}
		if s.headers {
			msg.Headers = []ckafka.Header{
				{Key: "mqtt_topic", Value: key},
				{Key: "mqtt_qos", Value: []byte("1")},
				{Key: "mqtt_retain", Value: []byte("false")},
				{Key: "mqtt_dup", Value: []byte("false")},
				{Key: "bridge_ts_ms", Value: bridgeMillis},
			}
		}
		for {
			err := p.Produce(msg, delivery)
			if err == nil {
				break
			}
			if kerr, ok := err.(ckafka.Error); !ok || kerr.Code() != ckafka.ErrQueueFull {
				return fmt.Errorf("produce to %s: %w", topic, err)
			}
			p.Flush(100)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("delivery to %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// warmGroupCoordinator joins a throwaway consumer group once, which makes
// Kafka create its __consumer_offsets topic before any clock starts (a
// real cluster has it already).
func warmGroupCoordinator(ctx context.Context, brokers, topic string) error {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "peers-warmup", "go.logs.channel.enable": false})
	if err != nil {
		return fmt.Errorf("warm-up consumer: %w", err)
	}
	defer c.Close()
	if err := c.Subscribe(topic, nil); err != nil {
		return fmt.Errorf("warm-up consumer: subscribe %s: %w", topic, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c.Poll(100)
		if parts, err := c.Assignment(); err == nil && len(parts) > 0 {
			return nil
		}
	}
	return fmt.Errorf("warm-up consumer got no assignment of %s", topic)
}

// endOffsets asks the broker for the high watermark of each partition of
// topic: the offset its next record will get. The producer is idempotent and
// not transactional, so no control record takes an offset and a partition's
// records are its offsets 0 to end - 1.
func endOffsets(brokers, topic string) (map[int32]int64, error) {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "peers-end-offsets", "go.logs.channel.enable": false})
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10_000)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: metadata: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok || t.Error.Code() != ckafka.ErrNoError || len(t.Partitions) == 0 {
		return nil, fmt.Errorf("end offsets of %s: no partitions in the metadata (%v)", topic, t.Error)
	}
	ends := make(map[int32]int64, len(t.Partitions))
	for _, p := range t.Partitions {
		_, high, err := c.QueryWatermarkOffsets(topic, p.ID, 10_000)
		if err != nil {
			return nil, fmt.Errorf("end offsets of %s: partition %d: %w", topic, p.ID, err)
		}
		ends[p.ID] = high
	}
	return ends, nil
}
