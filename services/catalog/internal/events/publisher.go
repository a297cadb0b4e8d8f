// Package events announces new table versions on Kafka. Announcements are
// wake-up hints delivered at least once: Publish never blocks the commit that
// calls it, failed deliveries are retried with the table's newest version, and
// after a Kafka outage the newest version of every table is announced again.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/kafkalog"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// DefaultTopic is the topic table commits are announced on.
const DefaultTopic = kafkatopic.TableCommits

// Event is one announcement: the table it is about (the record key), the
// version it announces, and the encoded record value.
type Event struct {
	Table   string
	Version int64
	Value   []byte
}

// Config says where and how to publish.
type Config struct {
	// Brokers is Kafka's bootstrap server list.
	Brokers string
	// Topic defaults to DefaultTopic.
	Topic string
	// Partitions is used when the topic is missing and the publisher creates it.
	Partitions int
	// Retention is the retention of the topic when the publisher creates it;
	// 0 means kafkatopic.DefaultRetention (14 days).
	Retention time.Duration
	// Kafka holds extra librdkafka settings; they override the defaults here.
	Kafka map[string]string
	// RetryInterval is how often undelivered tables are announced again
	// (default 1s).
	RetryInterval time.Duration
}

// Stats counts what the publisher did, for metrics and tests.
type Stats struct {
	Produced, Delivered, Failed, Retried uint64
}

// Publisher produces events asynchronously. Create it with New, run Run in a
// goroutine owned by the caller, and call Close after Run returned.
type Publisher struct {
	log      *slog.Logger
	producer *kafka.Producer
	topic    string
	parts    int
	keep     time.Duration // retention of a created topic
	retry    time.Duration

	mu       sync.Mutex
	latest   map[string]Event // newest event handed to Publish, per table
	dirty    map[string]bool  // tables whose newest event is not known to be delivered
	retrying map[string]bool  // tables with a retry in flight
	outage   bool             // a delivery failed and none has succeeded since
	stats    Stats
}

// pending travels with a message as its Opaque.
type pending struct {
	ev    Event
	retry bool
}

// New creates the producer. It does not contact Kafka; a Kafka that is down
// only delays delivery.
func New(cfg Config, log *slog.Logger) (*Publisher, error) {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	cm := kafka.ConfigMap{
		"bootstrap.servers": cfg.Brokers,
		// Bound how long an event waits for a broker, so an outage is noticed
		// and the table's newest version is announced again afterwards.
		"message.timeout.ms":     "30000",
		"linger.ms":              "5",
		"acks":                   "all",
		"go.delivery.reports":    true,
		"go.logs.channel.enable": true, // librdkafka's logs go to slog, not stderr
	}
	for k, v := range cfg.Kafka {
		cm[k] = config.KafkaValue(k, v)
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("events: create producer: %w", err)
	}
	return &Publisher{
		log:      log,
		producer: p,
		topic:    cfg.Topic,
		parts:    cfg.Partitions,
		keep:     cfg.Retention,
		retry:    cfg.RetryInterval,
		latest:   map[string]Event{},
		dirty:    map[string]bool{},
		retrying: map[string]bool{},
	}, nil
}

// Publish hands an event to the producer without waiting for Kafka. An event
// older than one already published for the same table replaces nothing.
func (p *Publisher) Publish(ev Event) {
	p.mu.Lock()
	if cur, ok := p.latest[ev.Table]; ok && cur.Version > ev.Version {
		p.mu.Unlock()
		return
	}
	p.latest[ev.Table] = ev
	p.mu.Unlock()
	p.produce(ev, false)
}

func (p *Publisher) produce(ev Event, retry bool) {
	topic := p.topic
	err := p.producer.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            []byte(ev.Table),
		Value:          ev.Value,
		Opaque:         &pending{ev: ev, retry: retry},
	}, nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// Queue full or producer closing: the retry loop announces the
		// table's newest version later.
		p.dirty[ev.Table] = true
		if retry {
			p.retrying[ev.Table] = false
		}
		p.stats.Failed++
		return
	}
	p.stats.Produced++
	if retry {
		p.stats.Retried++
	}
}

// Stats returns a copy of the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Run handles delivery reports, creates the topic if it is missing, and
// retries undelivered tables until ctx ends; then it waits up to a few
// seconds for events in flight.
func (p *Publisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.ensureTopic(ctx)
	}()
	defer wg.Wait()

	tick := time.NewTicker(p.retry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.drain(5 * time.Second)
			return nil
		case e := <-p.producer.Events():
			p.handle(e)
		case l := <-p.producer.Logs():
			kafkalog.Log(p.log, l)
		case <-tick.C:
			p.retryDirty()
		}
	}
}

// drain waits up to timeout for the events in flight, handling their
// delivery reports (the producer counts undrained reports as in flight).
func (p *Publisher) drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for p.producer.Len() > 0 && time.Now().Before(deadline) {
		select {
		case e := <-p.producer.Events():
			p.handle(e)
		case <-p.producer.Logs():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close releases the producer. Call it after Run returned.
func (p *Publisher) Close() { p.producer.Close() }

func (p *Publisher) handle(e kafka.Event) {
	switch e := e.(type) {
	case *kafka.Message:
		pd, _ := e.Opaque.(*pending)
		if pd == nil {
			return
		}
		p.delivered(pd, e.TopicPartition.Error)
	case kafka.Error:
		if e.Code() == kafka.ErrAllBrokersDown {
			p.mu.Lock()
			p.outage = true
			p.mu.Unlock()
		}
		p.log.Warn("kafka producer error", "err", e)
	}
}

func (p *Publisher) delivered(pd *pending, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	table := pd.ev.Table
	if pd.retry {
		p.retrying[table] = false
	}
	if err != nil {
		p.stats.Failed++
		if !p.outage {
			p.log.Warn("table commit event not delivered; will announce again", "table", table, "version", pd.ev.Version, "err", err)
		}
		p.outage = true
		p.dirty[table] = true
		return
	}
	p.stats.Delivered++
	if p.outage {
		// Kafka is back: consumers may have missed any table's versions.
		p.outage = false
		for t := range p.latest {
			p.dirty[t] = true
		}
		p.log.Info("kafka reachable again; announcing every table's latest version", "tables", len(p.latest))
	}
	if p.latest[table].Version <= pd.ev.Version {
		delete(p.dirty, table)
	}
}

func (p *Publisher) retryDirty() {
	p.mu.Lock()
	var evs []Event
	for _, t := range slices.Sorted(maps.Keys(p.dirty)) {
		if p.retrying[t] {
			continue
		}
		p.retrying[t] = true
		evs = append(evs, p.latest[t])
	}
	p.mu.Unlock()
	for _, ev := range evs {
		p.produce(ev, true)
	}
}

// ensureTopic creates the topic if the cluster does not have it, retrying
// until it succeeds or ctx ends.
func (p *Publisher) ensureTopic(ctx context.Context) {
	admin, err := kafka.NewAdminClientFromProducer(p.producer)
	if err != nil {
		p.log.Warn("kafka admin client", "err", err)
		return
	}
	defer admin.Close()
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := p.createTopic(ctx, admin)
		if err == nil {
			return
		}
		p.log.Warn("ensuring topic", "topic", p.topic, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (p *Publisher) createTopic(ctx context.Context, admin *kafka.AdminClient) error {
	res, err := kafkatopic.Ensure(ctx, admin, kafkatopic.Spec{Name: p.topic, Partitions: p.parts, Retention: p.keep})
	if err != nil {
		return err
	}
	if res[0].Outcome != kafkatopic.Existed {
		p.log.Info("Kafka topic", "topic", p.topic, "outcome", res[0].Outcome.String(), "partitions", p.parts)
	}
	return nil
}
