// Package ingester is ingest's engine: a Kafka consumer-group member that
// batches records into raw-table rows and commits each batch, together with
// the Kafka offsets it covers, as one Delta commit through the catalog.
//
// # Exactly once
//
// The raw table, not Kafka, is the record of what has been ingested: every
// commit carries one txn per Kafka partition in the batch (app id
// ingest/<topic>/<partition>, version = last offset written). On every
// partition assignment the engine reads those offsets from the table and
// starts each partition right after its offset; the consumer group's
// committed offsets are written (after each Delta commit, for lag tools) but
// never read.
//
// A commit reads the txn app ids of every partition the engine is assigned,
// at the table version its positions are current at. If another worker
// committed a txn for one of them since (a partition moved while this worker
// still held a batch for it), the catalog answers Aborted: the engine drops
// the batch, re-reads its positions and seeks, so no row is written twice. A
// commit whose outcome is unknown (catalog unreachable, deadline) is handled
// the same way. Files of a dropped batch are never referenced; vacuum removes
// them.
//
// The one place a batch is acknowledged is [Engine.ack].
//
// # Rebalancing
//
// The consumer uses the eager protocol (roundrobin): on revocation every
// partition is given up at once, after the batch in flight is committed (the
// conflict check above makes that safe even if the partition has already
// moved); on assignment every partition's position is read afresh.
package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// Table is the raw table as the engine uses it.
type Table interface {
	// Positions returns the last Kafka offset the table holds for each of
	// appIDs, and the table version they are current at.
	Positions(ctx context.Context, appIDs []string) (rawtable.Positions, error)
	// Commit writes c's batches as data files and commits them with c's
	// txns. It returns an error wrapping rawtable.ErrAborted when a txn for
	// one of c.ReadAppIDs was committed after c.ReadVersion; any other
	// error leaves the outcome unknown.
	Commit(ctx context.Context, c rawtable.Commit) (rawtable.Committed, error)
}

// Config is what the engine needs to know besides its table.
type Config struct {
	// Brokers is Kafka's bootstrap servers.
	Brokers string
	// KafkaConfig holds extra librdkafka settings (SASL, TLS, tuning); they
	// override the engine's defaults except the ones exactly-once depends on.
	KafkaConfig map[string]string
	// GroupID is the consumer group.
	GroupID string
	// Topics are the topics to consume.
	Topics []string
	// TopicPartitions is the partition count of a topic the engine creates
	// because it is missing.
	TopicPartitions int
	// BatchMaxRows, BatchMaxBytes and BatchMaxAge close a batch: whichever
	// is reached first.
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration
	// RunOnce makes Run return once every assigned partition is committed
	// up to the end offset it had when Run started.
	RunOnce bool
	// MaxLinks caps the span links (one per sampled record) on a commit's span.
	MaxLinks int
	// ShutdownTimeout bounds the final commit when the context ends.
	ShutdownTimeout time.Duration
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
	case c.BatchMaxRows <= 0:
		return fmt.Errorf("batch max rows: %d, want > 0", c.BatchMaxRows)
	case c.BatchMaxBytes <= 0 || c.BatchMaxBytes > rawtable.MaxBatchBytes:
		return fmt.Errorf("batch max bytes: %d, want in (0, %d]", c.BatchMaxBytes, rawtable.MaxBatchBytes)
	case c.BatchMaxAge <= 0 || c.BatchMaxAge > 15*time.Minute:
		return fmt.Errorf("batch max age: %s, want in (0, 15m]", c.BatchMaxAge)
	}
	return nil
}

// partKey names a Kafka partition.
type partKey struct {
	topic     string
	partition int32
}

// partState is what the engine knows of one assigned partition.
type partState struct {
	key   partKey
	appID string
	// tableOffset is the last offset in the table; -1 if none.
	tableOffset int64
	// next is the lowest offset the engine still accepts: records below it
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

// Engine consumes, batches and commits. Create it with New, then call Run
// once; the control methods (Status, Pause, Resume, TriggerCommit) may be
// called from any goroutine.
type Engine struct {
	cfg     Config
	table   Table
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	// Owned by the Run goroutine.
	consumer    *kafka.Consumer
	parts       map[partKey]*partState
	assigned    bool // an assignment was received (run-once waits for one)
	readVersion int64
	builder     *rawtable.Builder
	batchStart  time.Time
	links       []trace.Link
	row         rawtable.Row
	targets     map[partKey]int64
	paused      bool
	runCtx      context.Context
	// now is the clock as last read; records take it as their ingest time.
	now        time.Time
	fatal      error
	lastCommit commitSummary
	// inflight is the batch being committed in the background, if any.
	inflight *pendingCommit
	totals   totals
	rates    rateWindow
	done     chan struct{}

	controls chan control

	statusMu sync.Mutex
	status   Status
}

// New returns an engine that consumes per cfg and commits into table.
// metrics and tracer may be nil.
func New(cfg Config, table Table, log *slog.Logger, metrics *Metrics, tracer trace.Tracer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingester config: %w", err)
	}
	if cfg.MaxLinks <= 0 {
		cfg.MaxLinks = 128
	}
	if cfg.TopicPartitions <= 0 {
		cfg.TopicPartitions = 6
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	if tracer == nil {
		tracer = noopTracer()
	}
	return &Engine{
		cfg:         cfg,
		table:       table,
		log:         log,
		metrics:     metrics,
		tracer:      tracer,
		parts:       map[partKey]*partState{},
		readVersion: -1,
		builder:     rawtable.NewBuilder(nil),
		controls:    make(chan control),
		done:        make(chan struct{}),
		status:      Status{State: StateStarting},
	}, nil
}

// consumerConfig is the librdkafka configuration: defaults, then the
// user's settings, then what exactly-once depends on.
func (e *Engine) consumerConfig() kafka.ConfigMap {
	cm := kafka.ConfigMap{
		"bootstrap.servers": e.cfg.Brokers,
		// Eager rebalancing: revocation takes every partition, assignment
		// gives the whole new set, and both are seen by the callback.
		"partition.assignment.strategy": "roundrobin",
		"auto.offset.reset":             "earliest",
		// Fetch in large chunks; the batch is committed every BatchMaxAge
		// anyway, so latency is bounded by that, not by the fetch. The
		// prefetch queue keeps records ready while a batch is encoded;
		// queued messages pin whole fetch buffers, so it costs more memory
		// than it says. librdkafka waits fetch.queue.backoff.ms (default
		// 1s) before fetching again once the queue was full: at 1s a full
		// queue starves the loop, so ingest asks again after 5 ms (see the
		// benchmark in services/ingest/bench).
		"fetch.min.bytes":            1 << 20,
		"fetch.wait.max.ms":          100,
		"queued.max.messages.kbytes": 8 << 10,
		"fetch.queue.backoff.ms":     5,
		"fetch.max.bytes":            8 << 20,
		"max.partition.fetch.bytes":  2 << 20,
		"statistics.interval.ms":     0,
		// librdkafka's own logs stay on stderr: the log channel's
		// goroutine sits in a blocking cgo poll, and with GOMAXPROCS=1 it
		// holds the only P until sysmon takes it back (11% less throughput
		// in the benchmark).
		"go.logs.channel.enable":          false,
		"session.timeout.ms":              10000,
		"heartbeat.interval.ms":           1000,
		"socket.keepalive.enable":         true,
		"go.application.rebalance.enable": true,
	}
	for k, v := range e.cfg.KafkaConfig {
		cm[k] = config.KafkaValue(k, v)
	}
	cm["group.id"] = e.cfg.GroupID
	cm["enable.auto.commit"] = false
	cm["enable.auto.offset.store"] = false
	cm["enable.partition.eof"] = e.cfg.RunOnce
	return cm
}

// Run consumes until ctx ends (or, in run-once mode, until caught up),
// then commits the batch in flight and leaves the group.
func (e *Engine) Run(ctx context.Context) (err error) {
	defer close(e.done)
	defer e.builder.Release()
	c, err := kafka.NewConsumer(ptr(e.consumerConfig()))
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	e.consumer = c
	e.runCtx = ctx
	defer func() {
		e.setState(StateStopped)
		// Close leaves the group; the revoke callback it runs finds the
		// batch empty. Its context must outlive ctx.
		e.runCtx = context.WithoutCancel(ctx)
		if _, err := e.await(); err != nil {
			e.log.Info("last commit failed; its records are read again after a restart", "err", err)
		}
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close kafka consumer: %w", cerr)
		}
	}()
	if err := ensureTopics(ctx, c, e.cfg.Topics, e.cfg.TopicPartitions, e.log); err != nil {
		return err
	}
	if e.cfg.RunOnce {
		if e.targets, err = endOffsets(ctx, c, e.cfg.Topics); err != nil {
			return err
		}
		e.log.Info("run-once: end offsets at start", "partitions", len(e.targets))
	}
	if err := c.SubscribeTopics(e.cfg.Topics, e.rebalance); err != nil {
		return fmt.Errorf("subscribe to %v: %w", e.cfg.Topics, err)
	}
	e.setState(StateRunning)
	e.log.Info("consuming", "topics", e.cfg.Topics, "group", e.cfg.GroupID, "run_once", e.cfg.RunOnce)

	lastRefresh := time.Time{}
	for {
		if ctx.Err() != nil {
			return e.shutdown(ctx)
		}
		if e.fatal != nil {
			return e.fatal
		}
		// Housekeeping runs between bursts of events, not per record.
		e.now = time.Now()
		select {
		case ctl := <-e.controls:
			ctl.run(e)
		default:
		}
		if e.builder.Rows() > 0 && e.now.Sub(e.batchStart) >= e.cfg.BatchMaxAge {
			e.commitInBackground(ctx, "age")
		}
		e.settleIfDone(ctx)
		if e.now.Sub(lastRefresh) >= 500*time.Millisecond {
			e.refreshStatus()
			lastRefresh = e.now
		}
		if e.cfg.RunOnce && e.caughtUp() {
			if e.builder.Rows() > 0 || e.inflight != nil {
				e.ackOrReposition(ctx, "run-once")
				continue // an aborted commit re-reads positions: check again
			}
			e.refreshStatus()
			e.log.Info("run-once: caught up", "version", e.readVersion, "rows", e.totals.rows, "commits", e.totals.commits,
				"waited_for_records", e.totals.pollWait.Round(time.Millisecond))
			return nil
		}
		if err := e.pollBurst(ctx); err != nil {
			return err
		}
	}
}

// burst is how many events are handled between two housekeeping rounds;
// clockEvery how many records share one reading of the clock.
const (
	burst      = 512
	clockEvery = 64
)

// pollBurst waits for one event (up to pollTimeout), then handles up to
// burst events that are already there.
func (e *Engine) pollBurst(ctx context.Context) error {
	timeout := e.pollTimeout()
	for i := range burst {
		var waitStart time.Time
		if timeout > 0 {
			waitStart = time.Now()
		}
		ev := e.consumer.Poll(timeout)
		if timeout > 0 {
			wait := time.Since(waitStart)
			e.totals.pollWait += wait
			e.metrics.pollWait.Add(wait.Seconds())
		}
		timeout = 0
		if i%clockEvery == 0 {
			e.now = time.Now()
		}
		switch ev := ev.(type) {
		case nil:
			return nil
		case *kafka.Message:
			e.onMessage(ctx, ev)
		case kafka.PartitionEOF:
			e.onEOF(ev)
		case kafka.Error:
			if ev.IsFatal() {
				return fmt.Errorf("kafka consumer: %w", ev)
			}
			e.log.Warn("kafka consumer", "err", ev, "code", ev.Code())
		case kafka.OffsetsCommitted:
			if ev.Error != nil {
				e.log.Debug("kafka offset commit", "err", ev.Error)
			}
		default:
			e.log.Debug("kafka event", "event", ev.String())
		}
		if e.fatal != nil || ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// pollTimeout is how long Poll may block: not past the batch's deadline.
func (e *Engine) pollTimeout() int {
	const idle = 100 * time.Millisecond
	if e.builder.Rows() == 0 {
		return int(idle.Milliseconds())
	}
	left := e.cfg.BatchMaxAge - time.Since(e.batchStart)
	switch {
	case left <= 0:
		return 0
	case left < idle:
		return int(left.Milliseconds()) + 1
	}
	return int(idle.Milliseconds())
}

// shutdown commits the batch in flight under a fresh deadline.
func (e *Engine) shutdown(ctx context.Context) error {
	e.setState(StateStopping)
	if e.builder.Rows() > 0 || e.inflight != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.ShutdownTimeout)
		defer cancel()
		_, _ = e.ack(sctx, "shutdown") // on failure the records are read again after a restart
	}
	e.log.Info("stopped consuming", "version", e.readVersion)
	return nil
}

// onMessage appends m to the batch unless it is already in the table or
// the batch, or beyond the run-once end.
func (e *Engine) onMessage(ctx context.Context, m *kafka.Message) {
	tp := m.TopicPartition
	if tp.Topic == nil {
		return
	}
	ps := e.parts[partKey{*tp.Topic, tp.Partition}]
	off := int64(tp.Offset)
	if ps == nil || off < ps.next {
		e.metrics.skipped.Inc()
		return
	}
	if e.cfg.RunOnce && off >= ps.target {
		e.markDone(ps)
		return
	}
	r := &e.row
	r.Topic = ps.key.topic
	r.Partition = ps.key.partition
	r.Offset = off
	r.Timestamp = time.Time{}
	if m.TimestampType != kafka.TimestampNotAvailable {
		r.Timestamp = m.Timestamp
	}
	r.Key = m.Key
	r.Headers = r.Headers[:0]
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, rawtable.Header{Key: h.Key, Value: h.Value})
		if h.Key == traceparentHeader && len(e.links) < e.cfg.MaxLinks {
			if l, ok := linkFromHeaders(ctx, m); ok {
				e.links = append(e.links, l)
			}
		}
	}
	r.Payload = m.Value
	r.IngestTime = e.now
	if e.builder.Rows() == 0 {
		e.batchStart = r.IngestTime
	}
	e.builder.Append(r)
	e.totals.received++
	ps.batchLast = off
	ps.batchRows++
	ps.next = off + 1
	if e.cfg.RunOnce && ps.next >= ps.target {
		e.markDone(ps)
	}
	if e.builder.Rows() >= e.cfg.BatchMaxRows || e.builder.Bytes() >= e.cfg.BatchMaxBytes {
		e.commitInBackground(ctx, "size")
	}
}

// onEOF marks a run-once partition done when its end is at or past the target.
func (e *Engine) onEOF(ev kafka.PartitionEOF) {
	if ev.Topic == nil || !e.cfg.RunOnce {
		return
	}
	ps := e.parts[partKey{*ev.Topic, ev.Partition}]
	if ps != nil && int64(ev.Offset) >= ps.target {
		e.markDone(ps)
	}
}

func (e *Engine) markDone(ps *partState) {
	if ps.done {
		return
	}
	ps.done = true
	tp := kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition}
	if err := e.consumer.Pause([]kafka.TopicPartition{tp}); err != nil {
		e.log.Warn("pause finished partition", "topic", ps.key.topic, "partition", ps.key.partition, "err", err)
	}
}

// caughtUp reports whether run-once is finished: an assignment was
// received and every assigned partition reached its end offset.
func (e *Engine) caughtUp() bool {
	if !e.assigned {
		return false
	}
	for _, ps := range e.parts {
		if !ps.done {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

func formatOffset(o int64) string {
	if o < 0 {
		return "none"
	}
	return strconv.FormatInt(o, 10)
}
