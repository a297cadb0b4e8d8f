// Package kafkasource is the pipeline source of a Kafka consumer group: it
// reads its topics' records into the runner's batch and keeps the position
// of every assigned partition as the target table stores it (txn app id
// per partition, version = last offset written).
//
// # Exactly once
//
// The target table, not Kafka, is the record of what has been processed. On
// every partition assignment the source reads the partitions' offsets from
// the table (through the runner, from the sink) and starts each partition
// right after its offset; the group's committed offsets are written after
// each acknowledged commit, for lag tools, but never read.
//
// A commit reads the txn app ids of every partition the source is assigned,
// at the table version its positions are current at. If another worker
// committed a txn for one of them since (a partition moved while this
// worker still held a batch for it), the catalog answers Aborted: the runner
// drops the batch, reads the positions again and the source seeks, so no
// row is written twice.
//
// # Rebalancing
//
// The consumer uses the eager protocol (roundrobin): on revocation every
// partition is given up at once, after the batch is committed (the conflict
// check above makes that safe even if the partition has moved already); on
// assignment every partition's position is read afresh.
package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/servicekit/config"
)

// Records is the hop's side of the batch: it turns a Kafka record into a row.
type Records interface {
	// Append adds m, read at now, to the batch. It reports whether m
	// carries a W3C traceparent header (a sampled reading) so that the
	// source links the commit's span to it.
	Append(m *kafka.Message, now time.Time) (traced bool)
}

// Config says what to consume.
type Config struct {
	// Brokers is Kafka's bootstrap servers.
	Brokers string
	// KafkaConfig holds extra librdkafka settings (SASL, TLS, tuning); they
	// override the source's defaults except the ones exactly-once depends on.
	KafkaConfig map[string]string
	// GroupID is the consumer group.
	GroupID string
	// Topics are the topics to consume.
	Topics []string
	// AppID names a partition's position in the target table.
	AppID func(topic string, partition int32) string
	// EnsureTopics creates the topics that are missing (nil: they must exist).
	EnsureTopics func(ctx context.Context, admin *kafka.AdminClient, topics []string) error
	// RunOnce makes the source Done once every assigned partition reached
	// the end offset it had at Start.
	RunOnce bool
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Brokers == "":
		return errors.New("kafka brokers: empty")
	case c.GroupID == "":
		return errors.New("consumer group: empty")
	case len(c.Topics) == 0:
		return errors.New("topics: none")
	case c.AppID == nil:
		return errors.New("app id function: nil")
	}
	return nil
}

// partKey names a Kafka partition.
type partKey struct {
	topic     string
	partition int32
}

// partState is what the source knows of one assigned partition.
type partState struct {
	key   partKey
	appID string
	// tableOffset is the last offset in the table; -1 if none.
	tableOffset int64
	// next is the lowest offset the source still accepts: records below it
	// are in the table or in the batch already.
	next int64
	// batchLast is the partition's last offset in the batch, -1 if none;
	// batchRows how many of its records the batch holds.
	batchLast int64
	batchRows int
	// target is the run-once end offset; done is set when it is reached.
	target int64
	done   bool
	// Last commit of this partition.
	lastRows    int
	lastFiles   int
	lastVersion int64
	lastTime    time.Time
}

// Source is a consumer-group member feeding a pipeline runner.
type Source struct {
	cfg     Config
	records Records
	log     *slog.Logger
	metrics *Metrics

	// Owned by the runner's goroutine.
	host     pipeline.Host
	consumer *kafka.Consumer
	parts    map[partKey]*partState
	assigned bool // an assignment was received (run-once waits for one)
	targets  map[partKey]int64
	paused   bool
	runCtx   context.Context
	now      time.Time
	fatal    error
	pollWait time.Duration

	statusMu   sync.Mutex
	partitions []PartitionStatus
}

// New returns a source that consumes per cfg into records. metrics may be nil.
func New(cfg Config, records Records, log *slog.Logger, metrics *Metrics) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka source config: %w", err)
	}
	if metrics == nil {
		metrics = NewMetrics("kafka", nil)
	}
	return &Source{cfg: cfg, records: records, log: log, metrics: metrics, parts: map[partKey]*partState{}}, nil
}

// Bounds of what librdkafka prefetches (see consumerConfig); --kafka-config
// overrides them.
const (
	// QueuedKiB bounds the payload bytes of the prefetched records
	// (queued.max.messages.kbytes).
	QueuedKiB = 2 << 10
	// QueuedRecords bounds how many records are prefetched
	// (queued.min.messages).
	QueuedRecords = 16 << 10
	// FetchMaxBytes bounds one fetch response (fetch.max.bytes); a
	// partition's share of it is a quarter (max.partition.fetch.bytes).
	FetchMaxBytes = 4 << 20
)

// consumerConfig is the librdkafka configuration: defaults, then the
// user's settings, then what exactly-once depends on.
func (s *Source) consumerConfig() kafka.ConfigMap {
	cm := kafka.ConfigMap{
		"bootstrap.servers": s.cfg.Brokers,
		// Eager rebalancing: revocation takes every partition, assignment
		// gives the whole new set, and both are seen by the callback.
		"partition.assignment.strategy": "roundrobin",
		"auto.offset.reset":             "earliest",
		// Fetch in large chunks; the batch is committed every BatchMaxAge
		// anyway, so latency is bounded by that, not by the fetch. The
		// prefetch queue keeps records ready while a batch is encoded.
		// librdkafka waits fetch.queue.backoff.ms (default 1s) before
		// fetching again once the queue was full: at 1s a full queue
		// starves the loop, so the source asks again after 5 ms (see the
		// benchmark in services/ingest/bench).
		//
		// What librdkafka holds is bounded whatever the records look
		// like: by bytes (the queue's payloads, one fetch response, one
		// partition's share of it) and by count (queued.min.messages,
		// which bounds the ~300 bytes of bookkeeping each queued record
		// costs besides its payload: with small records the count, not
		// the bytes, is what fills memory). Queued records pin their
		// whole fetch response, so the queue costs up to a response more
		// than it says. Smaller than this, and the loop starts waiting
		// for records (see docs/decisions.md, Ingest).
		"fetch.min.bytes":            1 << 20,
		"fetch.wait.max.ms":          100,
		"queued.max.messages.kbytes": QueuedKiB,
		"queued.min.messages":        QueuedRecords,
		"fetch.queue.backoff.ms":     5,
		"fetch.max.bytes":            FetchMaxBytes,
		"max.partition.fetch.bytes":  FetchMaxBytes / 4,
		"statistics.interval.ms":     0,
		// librdkafka's own logs stay on stderr: the log channel's
		// goroutine sits in a blocking cgo poll, and with GOMAXPROCS=1 it
		// holds the only P until sysmon takes it back (11% less throughput
		// in ingest's benchmark).
		"go.logs.channel.enable":          false,
		"session.timeout.ms":              10000,
		"heartbeat.interval.ms":           1000,
		"socket.keepalive.enable":         true,
		"go.application.rebalance.enable": true,
	}
	for k, v := range s.cfg.KafkaConfig {
		cm[k] = config.KafkaValue(k, v)
	}
	cm["group.id"] = s.cfg.GroupID
	cm["enable.auto.commit"] = false
	cm["enable.auto.offset.store"] = false
	cm["enable.partition.eof"] = s.cfg.RunOnce
	return cm
}

// Start creates the consumer, the missing topics, and subscribes.
func (s *Source) Start(ctx context.Context, h pipeline.Host) error {
	s.host = h
	s.runCtx = ctx
	cm := s.consumerConfig()
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	s.consumer = c
	if s.cfg.EnsureTopics != nil {
		admin, err := kafka.NewAdminClientFromConsumer(c)
		if err != nil {
			return fmt.Errorf("kafka admin client: %w", err)
		}
		err = s.cfg.EnsureTopics(ctx, admin, s.cfg.Topics)
		admin.Close()
		if err != nil {
			return err
		}
	}
	if s.cfg.RunOnce {
		if s.targets, err = endOffsets(ctx, c, s.cfg.Topics); err != nil {
			return err
		}
		s.log.Info("run-once: end offsets at start", "partitions", len(s.targets))
	}
	if err := c.SubscribeTopics(s.cfg.Topics, s.rebalance); err != nil {
		return fmt.Errorf("subscribe to %v: %w", s.cfg.Topics, err)
	}
	h.ReportOK()
	s.log.Info("consuming", "topics", s.cfg.Topics, "group", s.cfg.GroupID, "run_once", s.cfg.RunOnce)
	return nil
}

// Close leaves the group; the revoke callback it runs finds the batch
// empty or commits it.
func (s *Source) Close() error {
	if s.consumer == nil {
		return nil
	}
	if err := s.consumer.Close(); err != nil {
		return fmt.Errorf("close kafka consumer: %w", err)
	}
	return nil
}

// burst is how many events are handled in one Poll; clockEvery how many
// records share one reading of the clock.
const (
	burst      = 512
	clockEvery = 64
)

// Poll waits for one event (up to timeout), then handles up to burst
// events that are already there, returning early when the batch is full.
func (s *Source) Poll(ctx context.Context, timeout time.Duration) error {
	if s.fatal != nil {
		return s.fatal
	}
	ms := int(timeout.Milliseconds())
	if timeout > 0 && ms == 0 {
		ms = 1
	}
	s.runCtx = ctx
	for i := range burst {
		var waitStart time.Time
		if ms > 0 {
			waitStart = time.Now()
		}
		ev := s.consumer.Poll(ms)
		if ms > 0 {
			wait := time.Since(waitStart)
			s.pollWait += wait
			s.metrics.pollWait.Add(wait.Seconds())
		}
		ms = 0
		if i%clockEvery == 0 {
			s.now = time.Now()
		}
		switch ev := ev.(type) {
		case nil:
			return s.fatal
		case *kafka.Message:
			if s.onMessage(ev) {
				return s.fatal
			}
		case kafka.PartitionEOF:
			s.onEOF(ev)
		case kafka.Error:
			if ev.IsFatal() {
				return fmt.Errorf("kafka consumer: %w", ev)
			}
			if ev.Code() == kafka.ErrAllBrokersDown {
				s.host.ReportError(fmt.Errorf("kafka: %w", ev))
			}
			s.log.Warn("kafka consumer", "err", ev, "code", ev.Code())
		case kafka.OffsetsCommitted:
			if ev.Error != nil {
				s.log.Debug("kafka offset commit", "err", ev.Error)
			}
		default:
			s.log.Debug("kafka event", "event", ev.String())
		}
		if s.fatal != nil || ctx.Err() != nil {
			return s.fatal
		}
	}
	return nil
}

// onMessage appends m to the batch unless it is already in the table or
// the batch, or beyond the run-once end. It reports whether the batch is full.
func (s *Source) onMessage(m *kafka.Message) bool {
	tp := m.TopicPartition
	if tp.Topic == nil {
		return false
	}
	ps := s.parts[partKey{*tp.Topic, tp.Partition}]
	off := int64(tp.Offset)
	if ps == nil || off < ps.next {
		s.metrics.skipped.Inc()
		return false
	}
	if s.cfg.RunOnce && off >= ps.target {
		s.markDone(ps)
		return false
	}
	if s.records.Append(m, s.now) {
		if l, ok := linkFromHeaders(s.runCtx, m); ok {
			s.host.Link(l)
		}
	}
	ps.batchLast = off
	ps.batchRows++
	ps.next = off + 1
	if s.cfg.RunOnce && ps.next >= ps.target {
		s.markDone(ps)
	}
	return s.host.Full()
}

// onEOF marks a run-once partition done when its end is at or past the target.
func (s *Source) onEOF(ev kafka.PartitionEOF) {
	if ev.Topic == nil || !s.cfg.RunOnce {
		return
	}
	ps := s.parts[partKey{*ev.Topic, ev.Partition}]
	if ps != nil && int64(ev.Offset) >= ps.target {
		s.markDone(ps)
	}
}

func (s *Source) markDone(ps *partState) {
	if ps.done {
		return
	}
	ps.done = true
	tp := kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition}
	if err := s.consumer.Pause([]kafka.TopicPartition{tp}); err != nil {
		s.log.Warn("pause finished partition", "topic", ps.key.topic, "partition", ps.key.partition, "err", err)
	}
}

// Done reports whether run-once is finished: an assignment was received
// and every assigned partition reached its end offset.
func (s *Source) Done() bool {
	if !s.cfg.RunOnce || !s.assigned {
		return false
	}
	for _, ps := range s.parts {
		if !ps.done {
			return false
		}
	}
	return true
}

// AppIDs are the app ids of the assigned partitions, in topic and partition order.
func (s *Source) AppIDs() []string {
	parts := s.sortedParts()
	out := make([]string, len(parts))
	for i, ps := range parts {
		out[i] = ps.appID
	}
	return out
}

// cut is the source's bookkeeping of a batch.
type cut struct {
	parts  []*partState // partitions with records in the batch
	lasts  []int64      // their last offsets in the batch
	counts []int        // their rows in the batch
}

// Cut takes the batch's last offset of every partition with records in it;
// every assigned partition's app id is read.
func (s *Source) Cut() pipeline.Cut {
	var c pipeline.Cut
	var k cut
	for _, ps := range s.sortedParts() {
		c.ReadAppIDs = append(c.ReadAppIDs, ps.appID)
		if ps.batchLast < 0 {
			continue
		}
		c.Txns = append(c.Txns, pipeline.Txn{AppID: ps.appID, Version: ps.batchLast})
		k.parts = append(k.parts, ps)
		k.lasts = append(k.lasts, ps.batchLast)
		k.counts = append(k.counts, ps.batchRows)
		ps.batchLast, ps.batchRows = -1, 0
	}
	c.Token = k
	return c
}

// Ack advances the partitions of c to their offsets in the batch and
// commits those offsets to the consumer group, which nobody relies on but
// lag tools.
func (s *Source) Ack(_ context.Context, c pipeline.Cut, res pipeline.Committed) {
	k, _ := c.Token.(cut)
	now := time.Now()
	offsets := make([]kafka.TopicPartition, 0, len(k.parts))
	for i, ps := range k.parts {
		ps.tableOffset = k.lasts[i]
		ps.lastRows, ps.lastFiles, ps.lastVersion, ps.lastTime = k.counts[i], res.Files, res.Version, now
		offsets = append(offsets, kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition, Offset: kafka.Offset(k.lasts[i] + 1)})
	}
	if len(offsets) == 0 {
		return
	}
	// A failure here loses nothing.
	if _, err := s.consumer.CommitOffsets(offsets); err != nil {
		s.log.Debug("commit offsets to the consumer group", "err", err)
	}
}

// Seek sets every assigned partition from pos and seeks it to the offset
// after the one in the table.
func (s *Source) Seek(_ context.Context, pos pipeline.Positions) error {
	parts := s.sortedParts()
	if len(parts) == 0 {
		return nil
	}
	seeks := make([]kafka.TopicPartition, len(parts))
	var resume []kafka.TopicPartition
	for i, ps := range parts {
		wasDone := ps.done
		seeks[i] = s.applyPosition(ps, pos)
		if wasDone && !ps.done && !s.paused {
			resume = append(resume, seeks[i])
		}
	}
	if _, err := s.consumer.SeekPartitions(seeks); err != nil {
		return fmt.Errorf("seek %d partitions to the table's offsets: %w", len(seeks), err)
	}
	if len(resume) > 0 {
		if err := s.consumer.Resume(resume); err != nil {
			return fmt.Errorf("resume partitions: %w", err)
		}
	}
	return nil
}

// applyPosition sets ps from the table's positions and returns where to
// start consuming it.
func (s *Source) applyPosition(ps *partState, pos pipeline.Positions) kafka.TopicPartition {
	tp := kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition, Offset: kafka.OffsetBeginning}
	ps.tableOffset, ps.next = -1, 0
	if off, ok := pos.Versions[ps.appID]; ok {
		ps.tableOffset, ps.next = off, off+1
		tp.Offset = kafka.Offset(off + 1)
	}
	ps.batchLast, ps.batchRows = -1, 0
	if s.cfg.RunOnce {
		ps.target = s.targets[ps.key]
		ps.done = ps.next >= ps.target
	}
	return tp
}

// Pause stops fetching from every assigned partition (and from partitions
// assigned later) until Resume.
func (s *Source) Pause() error {
	s.paused = true
	if err := s.consumer.Pause(s.activeParts()); err != nil {
		return fmt.Errorf("pause partitions: %w", err)
	}
	return nil
}

// Resume undoes Pause.
func (s *Source) Resume() error {
	s.paused = false
	if err := s.consumer.Resume(s.activeParts()); err != nil {
		return fmt.Errorf("resume partitions: %w", err)
	}
	return nil
}

// activeParts are the assigned partitions that are not finished (run-once).
func (s *Source) activeParts() []kafka.TopicPartition {
	var out []kafka.TopicPartition
	for _, ps := range s.sortedParts() {
		if !ps.done {
			out = append(out, kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition})
		}
	}
	return out
}

// sortedParts returns the assigned partitions in topic, partition order.
func (s *Source) sortedParts() []*partState {
	out := make([]*partState, 0, len(s.parts))
	for _, ps := range s.parts {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b *partState) int {
		if a.key.topic != b.key.topic {
			if a.key.topic < b.key.topic {
				return -1
			}
			return 1
		}
		return int(a.key.partition - b.key.partition)
	})
	return out
}

// PollWait is the time spent waiting in Poll for records to arrive.
func (s *Source) PollWait() time.Duration { return s.pollWait }

func formatOffset(o int64) string {
	if o < 0 {
		return "none"
	}
	return strconv.FormatInt(o, 10)
}
