package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// measurements of the seed, each with a unit it allows and a base value.
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

// reading returns reading seq's MQTT topic and payload, stamped some
// seconds before now, and whether it is broken: every 100th is, in one of
// five ways, each of which Job 2's checks and deserialize's rules refuse.
func reading(seq int, now time.Time) (topic, payload []byte, broken bool) {
	m := measurements[seq%len(measurements)]
	device := fmt.Sprintf("press%03d", seq%sensors)
	topic = fmt.Appendf(nil, "plant/line%d/%s/%s", seq%sensors%7, device, m.name)
	ts := now.Add(-time.Duration(seq%3600) * time.Second).UnixMicro()
	sec, frac := ts/1_000_000, ts%1_000_000
	value := fmt.Sprintf("%d.%03d", m.base+seq%40, seq%1000)
	unit := m.unit
	if seq%100 == 42 {
		broken = true
		switch seq / 100 % 5 {
		case 0: // not JSON: cut short
			return topic, fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%s,"un`, device, m.name, value), true
		case 1: // a required field missing
			return topic, fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%s,"ts":%d.%06d}`, device, m.name, value, sec, frac), true
		case 2: // not a finite number
			value = `"NaN"`
		case 3: // outside the ts window
			sec -= 30 * 86400
		case 4: // a unit the measurement does not allow
			unit = "furlong"
		}
	}
	payload = fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%s,"unit":%q,"ts":%d.%06d}`, device, m.name, value, unit, sec, frac)
	return topic, payload, broken
}

// produce sends n readings to the raw topic as the bridge would (key and
// mqtt_topic header the MQTT topic, the bridge's other headers), waits until
// every one is acknowledged, and returns how many are broken.
func produce(ctx context.Context, brokers string, n int, now time.Time) (int, error) {
	p, err := ckafka.NewProducer(&ckafka.ConfigMap{
		"bootstrap.servers":      brokers,
		"enable.idempotence":     true,
		"linger.ms":              5,
		"batch.size":             1 << 20,
		"go.logs.channel.enable": false,
	})
	if err != nil {
		return 0, fmt.Errorf("kafka producer: %w", err)
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
	topic := rawTopic
	broken := 0
	bridgeMillis := strconv.AppendInt(nil, now.UnixMilli(), 10)
	for seq := range n {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		key, payload, bad := reading(seq, now)
		if bad {
			broken++
		}
		msg := &ckafka.Message{
			TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
			Key:            key,
			Value:          payload,
			Headers: []ckafka.Header{
				{Key: "mqtt_topic", Value: key},
				{Key: "mqtt_qos", Value: []byte("1")},
				{Key: "mqtt_retain", Value: []byte("false")},
				{Key: "mqtt_dup", Value: []byte("false")},
				{Key: "bridge_ts_ms", Value: bridgeMillis},
			},
		}
		for {
			err := p.Produce(msg, delivery)
			if err == nil {
				break
			}
			if kerr, ok := err.(ckafka.Error); !ok || kerr.Code() != ckafka.ErrQueueFull {
				return 0, fmt.Errorf("produce: %w", err)
			}
			p.Flush(100)
		}
	}
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("delivery: %w", err)
	}
	return broken, nil
}
