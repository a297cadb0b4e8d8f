package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.opentelemetry.io/otel/codes"
)

// This file is the ack path: the only code that sends an MQTT PUBACK
// (settle for forwarded readings, skipReplay for retained replays).

// deliveryLoop consumes the producer's events until Close ends them.
func (b *Bridge) deliveryLoop(producer *kafka.Producer) {
	for ev := range producer.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			r, ok := e.Opaque.(*reading)
			if !ok {
				b.log.Error("delivery report without a reading", "topic", e.TopicPartition)
				continue
			}
			b.settle(r, e.TopicPartition.Error)
		case kafka.Error:
			b.onKafkaError(e)
		}
	}
}

// settle decides a reading's fate once its produce attempt is over; err is
// the delivery error, nil when Kafka stored the record.
//
//   - stored, and the reading came on the current MQTT connection: PUBACK,
//     in the order the readings arrived (see ackQueue).
//   - stored, but the connection changed since: no PUBACK (it would go to the
//     wrong session, paho #505); the broker redelivers and the record is
//     written again (a duplicate, which at-least-once allows).
//   - failed: never acknowledged. Produced again after a backoff, or left to
//     the broker's redelivery if the connection changed or the bridge stops.
func (b *Bridge) settle(r *reading, err error) {
	if err == nil {
		now := time.Now()
		b.kafkaOKAt.Store(now.UnixNano())
		b.kafkaUp.Store(true)
		b.counters.produced.Add(1)
		b.latency.Observe(now.Sub(r.sentAt).Seconds())
		if r.gen == b.gen.Load() && r.queued {
			// THE acknowledgement: Kafka has stored this reading. It goes
			// out once every reading that arrived before it is stored.
			if sent, ok := b.acks.done(r.gen, r.seq); ok {
				b.counters.acked.Add(uint64(sent))
			} else {
				b.counters.stale.Add(1)
			}
		} else {
			b.counters.stale.Add(1)
		}
		b.finish(r, nil)
		return
	}

	b.counters.failed.Add(1)
	b.setError(fmt.Errorf("deliver to %s: %w", topicName(r.kmsg), err))
	var kerr kafka.Error
	isKafka := errors.As(err, &kerr)
	switch {
	case b.isStopping():
		b.abandon(r, err)
	case r.gen != b.gen.Load():
		b.counters.stale.Add(1)
		b.abandon(r, err)
	case isKafka && kerr.IsFatal():
		b.abandon(r, err)
		select {
		case b.fatal <- fmt.Errorf("%w: %w", ErrKafkaFatal, err):
		default:
		}
	case isKafka && kerr.Code() == kafka.ErrMsgSizeTooLarge && !r.diverted:
		// The topic or broker allows less than the producer: divert the
		// reading to the oversized topic, cut to fit, instead of stalling.
		r.diverted = true
		b.counters.oversized.Add(1)
		b.mapper.divert(r.kmsg, len(r.msg.Payload()))
		b.retries <- r
	default:
		b.retries <- r
	}
}

// skipReplay acknowledges, without forwarding, a retained copy the broker
// sent again because the bridge subscribed on a connection that resumed its
// session (see Bridge.accept): the reading was forwarded when it was
// first published or first subscribed to. The PUBACK only goes out on the
// connection the copy came on.
func (b *Bridge) skipReplay(m mqtt.Message, gen uint64) {
	b.counters.replays.Add(1)
	if gen == b.gen.Load() {
		// Nothing to store (an earlier copy is already in Kafka): in turn.
		if seq, ok := b.acks.enqueue(gen, m, true); ok {
			forwarded, _ := b.acks.done(gen, seq)
			b.counters.acked.Add(uint64(forwarded))
		}
	}
}

// abandon gives up on a reading without acknowledging it: the broker still
// holds it in the session and delivers it again.
func (b *Bridge) abandon(r *reading, err error) {
	b.finish(r, err)
}

// finish releases the reading's in-flight slot and ends its span.
func (b *Bridge) finish(r *reading, err error) {
	if r.span != nil {
		if err != nil {
			r.span.RecordError(err)
			r.span.SetStatus(codes.Error, "not delivered; left for MQTT redelivery")
		}
		r.span.End()
	}
	if b.inFlight.Add(-1) < 0 {
		b.log.Error("in-flight slot released twice", "topic", topicName(r.kmsg))
	}
	if b.pumpWaiting.Load() {
		select {
		case b.slotFreed <- struct{}{}:
		default:
		}
	}
}

// retryBackoff is how long a failed reading waits before it is produced
// again: doubling from 100 ms up to 5 s.
func retryBackoff(attempts int) time.Duration {
	d := 100 * time.Millisecond << min(attempts-1, 6)
	return min(d, 5*time.Second)
}

// retryLoop produces failed readings again, in the order they failed, each
// after its backoff. It returns when ctx ends; readings still waiting are
// abandoned (not acknowledged).
func (b *Bridge) retryLoop(ctx context.Context, producer *kafka.Producer) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case r := <-b.retries:
					b.abandon(r, ctx.Err())
				default:
					return
				}
			}
		case r := <-b.retries:
			wait := time.Until(r.sentAt.Add(retryBackoff(r.attempts)))
			if wait > 0 {
				select {
				case <-ctx.Done():
					b.abandon(r, ctx.Err())
					continue
				case <-time.After(wait):
				}
			}
			if r.gen != b.gen.Load() {
				b.counters.stale.Add(1)
				b.abandon(r, errors.New("MQTT connection changed"))
				continue
			}
			b.counters.retried.Add(1)
			b.produce(producer, r)
		}
	}
}

// onKafkaError records client-level errors; all-brokers-down marks Kafka
// unreachable until a delivery or metadata request succeeds again.
func (b *Bridge) onKafkaError(e kafka.Error) {
	b.setError(fmt.Errorf("kafka: %w", e))
	switch {
	case e.IsFatal():
		b.log.Error("fatal Kafka error", "err", e)
		select {
		case b.fatal <- fmt.Errorf("%w: %w", ErrKafkaFatal, e):
		default:
		}
	case e.Code() == kafka.ErrAllBrokersDown:
		b.kafkaUp.Store(false)
		b.log.Warn("all Kafka brokers are down; readings stay unacknowledged", "err", e)
	default:
		b.log.Debug("Kafka client error", "err", e)
	}
}

func (b *Bridge) isStopping() bool {
	select {
	case <-b.stopping:
		return true
	default:
		return false
	}
}

func topicName(m *kafka.Message) string {
	if m == nil || m.TopicPartition.Topic == nil {
		return ""
	}
	return *m.TopicPartition.Topic
}
