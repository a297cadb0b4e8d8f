package tablesource

import (
	"context"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/protobuf/proto"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/kafkalog"
)

// assignRetry is how long Run waits before it looks for the events topic
// again after it found it missing or Kafka unreachable.
const assignRetry = 2 * time.Second

// Run listens for TableCommitEvents about the table until ctx ends and wakes
// a waiting Next when one announces a version newer than the follower knows.
// It reads every partition of the events topic from its end at the time it
// finds the topic, commits no offsets and joins no consumer group: events are
// hints, and a follower that starts or restarts finds what it missed through
// GetChanges. While Kafka is down or the topic is missing it retries every
// few seconds and Next keeps polling. It returns nil when ctx ends (within
// the few seconds a metadata request to an unreachable Kafka may take), or an
// error if the consumer cannot be created (bad Kafka settings). Without
// Brokers it only waits for ctx.
func (f *Follower) Run(ctx context.Context) error {
	if f.cfg.Brokers == "" {
		<-ctx.Done()
		return nil
	}
	cm := kafka.ConfigMap{
		"bootstrap.servers": f.cfg.Brokers,
		// Required by librdkafka for a consumer; partitions are assigned
		// directly, so the group is never joined and nothing is committed.
		"group.id":               "plantlake-tablesource",
		"enable.auto.commit":     false,
		"enable.partition.eof":   false,
		"go.logs.channel.enable": true,
	}
	for k, v := range f.cfg.Kafka {
		cm[k] = config.KafkaValue(k, v)
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("tablesource: events consumer for %s: %w", f.cfg.Table, err)
	}
	defer c.Close()
	defer f.setListening(false)
	for ctx.Err() == nil {
		f.drainLogs(c)
		if !f.Stats().Listening {
			if err := f.assign(c); err != nil {
				f.log.Debug("events topic not assigned; polling only", "topic", f.cfg.EventsTopic, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(assignRetry):
				}
				continue
			}
			f.setListening(true)
		}
		switch e := c.Poll(100).(type) {
		case *kafka.Message:
			f.handle(e)
		case kafka.Error:
			f.log.Debug("events consumer", "err", e)
			if e.Code() == kafka.ErrUnknownTopicOrPart || e.Code() == kafka.ErrUnknownTopic {
				f.setListening(false) // deleted: find it again when it is back
			}
		}
	}
	return nil
}

// assign points the consumer at the end of every partition of the topic.
// Offsets are fixed here, not resolved at the first fetch, so every event
// produced after assign returns is seen.
func (f *Follower) assign(c *kafka.Consumer) error {
	topic := f.cfg.EventsTopic
	md, err := c.GetMetadata(&topic, false, 5000)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	tm, ok := md.Topics[topic]
	if !ok || tm.Error.Code() != kafka.ErrNoError || len(tm.Partitions) == 0 {
		return fmt.Errorf("topic %s missing: %v", topic, tm.Error)
	}
	parts := make([]kafka.TopicPartition, 0, len(tm.Partitions))
	for _, p := range tm.Partitions {
		_, high, err := c.QueryWatermarkOffsets(topic, p.ID, 5000)
		if err != nil {
			return fmt.Errorf("end offset of %s/%d: %w", topic, p.ID, err)
		}
		parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.Offset(high)})
	}
	if err := c.Assign(parts); err != nil {
		return fmt.Errorf("assign %s: %w", topic, err)
	}
	f.log.Debug("listening for table commit events", "topic", topic, "partitions", len(parts))
	return nil
}

// handle wakes Next for an event about the table newer than the latest
// version known. Duplicates and stale events cost nothing; an event for a
// version the catalog does not show (yet) costs one GetChanges.
func (f *Follower) handle(m *kafka.Message) {
	if string(m.Key) != f.cfg.Table {
		return
	}
	var ev catalogv1.TableCommitEvent
	if err := proto.Unmarshal(m.Value, &ev); err != nil || ev.GetTable() != f.cfg.Table {
		f.log.Debug("ignored undecodable table commit event", "offset", m.TopicPartition.Offset, "err", err)
		return
	}
	f.mu.Lock()
	f.stats.Events++
	f.stats.Announced = max(f.stats.Announced, ev.GetVersion())
	newer := ev.GetVersion() > f.stats.LatestVersion
	if newer {
		f.stats.Wakeups++
	}
	f.mu.Unlock()
	if newer {
		select {
		case f.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

func (f *Follower) setListening(on bool) {
	f.mu.Lock()
	f.stats.Listening = on
	f.mu.Unlock()
}

// drainLogs forwards the consumer's pending librdkafka log lines.
func (f *Follower) drainLogs(c *kafka.Consumer) {
	for {
		select {
		case l := <-c.Logs():
			kafkalog.Log(f.log, l)
		default:
			return
		}
	}
}
