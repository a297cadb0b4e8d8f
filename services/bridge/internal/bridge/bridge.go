package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"crypto/tls"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/plantlake/plantlake/servicekit/backoff"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/kafkalog"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
	"github.com/plantlake/plantlake/servicekit/kafkatrace"
	"github.com/plantlake/plantlake/servicekit/mqttconn"
)

// Errors callers branch on.
var (
	// ErrNotRunning is returned by calls that need the Kafka producer before
	// [Bridge.Run] has created it or after it has closed it.
	ErrNotRunning = errors.New("bridge is not running")
	// ErrKafkaFatal wraps a fatal producer error (for example a broken
	// idempotence sequence). The bridge stops: unacknowledged readings are
	// redelivered by the broker to the next process.
	ErrKafkaFatal = errors.New("fatal Kafka producer error")
	// ErrMQTTStuck reports that the MQTT client stopped working: a
	// connection open but silent for longer than keep-alive allows, or a
	// lost connection paho does not try to restore. The bridge stops so
	// that its supervisor starts a new process; the broker keeps the
	// session and redelivers what was not acknowledged.
	ErrMQTTStuck = errors.New("MQTT client stuck")
)

// tracerName is the instrumentation scope of the bridge's spans.
const tracerName = "github.com/plantlake/plantlake/services/bridge"

// Options are the collaborators of a Bridge; nil fields get working
// defaults (a discarding logger, no tracing, a private registry, W3C trace
// context).
type Options struct {
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// Bridge moves readings from an MQTT subscription to Kafka. Create it with
// [New], run it with [Bridge.Run]; the other methods are safe to call from
// any goroutine while it runs.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	mapper  *mapper
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	latency prometheus.Histogram
	rates   rates

	counters counters

	// mqttTLS and mqttPassword are read from their files by New.
	mqttTLS      *tls.Config
	mqttPassword string

	// inbox hands readings from the goroutine that reads MQTT to the pump.
	inbox *inbox
	// acks sends the current connection's PUBACKs in arrival order.
	acks ackQueue
	// readsHeld is true while the connection does not read because the
	// bridge holds MaxUnacked readings (holdReads).
	readsHeld atomic.Bool
	// inFlight counts readings produced and not yet settled; the pump
	// waits while it is at MaxInFlight.
	inFlight atomic.Int64
	// pumpWaiting is true while the pump waits for an in-flight slot;
	// finish then signals slotFreed.
	pumpWaiting atomic.Bool
	slotFreed   chan struct{}
	// retries carries readings whose delivery failed to the retry loop.
	retries chan *reading
	// stopping is closed when Run begins to shut down.
	stopping chan struct{}
	stopOnce sync.Once
	// fatal receives the first fatal producer error.
	fatal chan error

	// gen is the MQTT connection generation; see doc.go.
	gen atomic.Uint64
	// resumedGen is the generation whose CONNACK said the broker kept the
	// session (0: none); see accept.
	resumedGen atomic.Uint64
	connected  atomic.Uint64 // successful connections so far
	mqttUp     atomic.Bool
	kafkaUp    atomic.Bool
	topicsUp   atomic.Bool  // the topics exist and their limits are known
	kafkaOKAt  atomic.Int64 // unix nanos of the last successful delivery
	// The watchdog's clocks (unix nanos): the last read from the broker's
	// socket, the last connection attempt, the last connection lost.
	mqttReadAt atomic.Int64
	attemptAt  atomic.Int64
	lostAt     atomic.Int64
	// mqttClient is Run's paho client, for the watchdog (nil before).
	mqttClient atomic.Pointer[mqtt.Client]
	pausedFlag atomic.Bool
	startedAt  time.Time
	flushes    atomic.Uint64
	// gathered counts the readings the pump held back to gather a batch.
	gathered atomic.Uint64

	pauseMu sync.Mutex
	wake    chan struct{} // closed and replaced when the paused state changes

	producerMu sync.RWMutex
	producer   *kafka.Producer

	errMu     sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

// reading is one MQTT message on its way through the bridge. Its Kafka
// record and the record's headers live in the same allocation.
type reading struct {
	msg mqtt.Message
	// pub is msg when the connection read the reading itself (onPublish).
	pub mqttconn.Publish
	gen uint64
	// seq is the reading's place in its connection's ack order (acks);
	// queued is false when it has none (it arrived on a connection older
	// than the queue's and is never acknowledged).
	seq      uint64
	queued   bool
	kmsg     *kafka.Message
	record   kafka.Message
	headers  [maxHeaders]kafka.Header
	sentAt   time.Time // last Produce call
	attempts int
	diverted bool
	span     trace.Span
}

// New checks cfg and prepares a Bridge; nothing connects until Run.
func New(cfg Config, opts Options) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = noop.NewTracerProvider()
	}
	if opts.Propagator == nil {
		opts.Propagator = propagation.TraceContext{}
	}
	b := &Bridge{
		cfg:    cfg,
		log:    opts.Logger,
		mapper: newMapper(cfg),
		tracer: opts.TracerProvider.Tracer(tracerName),
		prop:   opts.Propagator,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "plantlake", Subsystem: "bridge", Name: "produce_latency_seconds",
			Help:    "Time from Produce to Kafka's successful delivery report.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms … 16 s
		}),
		inbox:     newInbox(cfg.QueueSize),
		slotFreed: make(chan struct{}, 1),
		retries:   make(chan *reading, cfg.MaxInFlight),
		stopping:  make(chan struct{}),
		fatal:     make(chan error, 1),
		wake:      make(chan struct{}),
		startedAt: time.Now(),
	}
	var err error
	if b.mqttTLS, err = cfg.mqttTLSConfig(); err != nil {
		return nil, err
	}
	if b.mqttPassword, err = cfg.mqttPassword(); err != nil {
		return nil, err
	}
	if err := b.registerMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	return b, nil
}

// Run connects to Kafka and MQTT and forwards readings until ctx ends or
// the producer fails fatally. On the way out it stops taking readings,
// waits up to ShutdownTimeout for the deliveries in flight (acknowledging
// each stored one), and disconnects. A Bridge runs once.
func (b *Bridge) Run(ctx context.Context) error {
	producer, err := kafka.NewProducer(b.producerConfig())
	if err != nil {
		return fmt.Errorf("create Kafka producer: %w", err)
	}
	b.producerMu.Lock()
	b.producer = producer
	b.producerMu.Unlock()

	deliveryDone := make(chan struct{})
	go func() { // owner: Run, which waits on deliveryDone; ends when the producer closes its channels
		defer close(deliveryDone)
		logsDone := make(chan struct{})
		go func() { defer close(logsDone); kafkalog.Forward(b.log, producer.Logs()) }()
		b.deliveryLoop(producer)
		<-logsDone
	}()
	var loops sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(context.Background())
	loops.Add(2)
	go func() { defer loops.Done(); b.retryLoop(loopCtx, producer) }()
	go func() { defer loops.Done(); b.monitorLoop(loopCtx, producer) }()

	// Connect first: while Kafka is away the readings wait unacknowledged
	// in this session's in-flight window rather than in the broker's
	// offline queue, which max_queued_messages may cap.
	client := mqtt.NewClient(b.mqttOptions())
	b.mqttClient.Store(&client)
	// With ConnectRetry the token completes only once connected (or on
	// Disconnect); progress is visible in Status, so do not wait here.
	client.Connect()
	b.log.Info("bridge started", "mqtt", b.cfg.MQTTBroker, "client_id", b.cfg.ClientID,
		"subscriptions", b.cfg.subscribeFilters(), "kafka", b.cfg.KafkaBrokers, "topic", b.cfg.KafkaTopic)
	runErr := b.ensureTopics(ctx, producer)
	if runErr == nil {
		b.topicsUp.Store(true)
		runErr = b.pump(ctx, producer)
	}

	if errors.Is(runErr, ErrMQTTStuck) {
		// A stuck client may block in Disconnect too; the process ends
		// and the broker drops the connection.
		client = nil
	}
	b.shutdown(client, producer)
	stopLoops()
	loops.Wait()
	// Whatever is still queued in librdkafka is not acknowledged; purging
	// keeps Close from waiting for a Kafka that may be gone.
	b.producerMu.Lock()
	b.producer = nil
	b.producerMu.Unlock()
	producer.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
	producer.Close()
	<-deliveryDone
	b.log.Info("bridge stopped", "received", b.counters.received.Load(), "acked", b.counters.acked.Load(),
		"in_flight_abandoned", b.inFlight.Load())
	if errors.Is(runErr, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return runErr
}

// shutdown stops taking input and waits, bounded, for in-flight deliveries
// to settle, then disconnects from MQTT so the last PUBACKs go out first.
func (b *Bridge) shutdown(client mqtt.Client, producer *kafka.Producer) {
	b.stopOnce.Do(func() { close(b.stopping) })
	deadline := time.Now().Add(b.cfg.ShutdownTimeout)
	for b.inFlight.Load() > 0 && time.Now().Before(deadline) {
		producer.Flush(100)
	}
	if n := b.inFlight.Load(); n > 0 {
		b.log.Warn("stopping with deliveries in flight; the broker redelivers them", "in_flight", n)
	}
	if client != nil {
		client.Disconnect(500)
	}
	b.mqttUp.Store(false)
}

// producerConfig assembles librdkafka's settings; the README explains each.
func (b *Bridge) producerConfig() *kafka.ConfigMap {
	cm := kafka.ConfigMap{
		"bootstrap.servers":            b.cfg.KafkaBrokers,
		"client.id":                    "plantlake-bridge-" + b.cfg.ClientID,
		"linger.ms":                    int(b.cfg.Linger.Milliseconds()), // short; gather.go lengthens batches under load
		"message.timeout.ms":           0,                                // infinite: never fail a record because Kafka is away
		"queue.buffering.max.messages": b.cfg.MaxInFlight,
		"queue.buffering.max.kbytes":   262144, // 256 MiB
		"message.max.bytes":            producerMessageMaxBytes(b.cfg.MaxPayloadBytes),
		"partitioner":                  "murmur2_random", // same partition per key as Java clients
		"retry.backoff.max.ms":         1000,
		"reconnect.backoff.max.ms":     1000,
		"go.delivery.report.fields":    "none", // the reading keeps its own record
		"go.logs.channel.enable":       true,   // librdkafka logs go to slog, not stderr
	}
	for k, v := range b.cfg.KafkaConfig {
		cm[k] = config.KafkaValue(k, v)
	}
	// The no-loss guarantee rests on these; they cannot be overridden.
	cm["enable.idempotence"] = true
	cm["acks"] = "all"
	// One produce request in flight per broker. With more, a later batch of
	// a partition can succeed while an earlier one failed with a retriable
	// error (NOT_LEADER just after a topic is created or a leader moves);
	// the broker accepts the later sequence from a producer it has no state
	// for, and librdkafka then counts the earlier batch as "implicitly
	// acked" and reports it delivered though it is not in the log (seen in
	// TestBridge: docs/decisions.md). Costs about 3% of throughput here.
	cm["max.in.flight.requests.per.connection"] = 1
	cm["go.delivery.reports"] = true
	return &cm
}

// ensureTopics creates the topics the bridge writes when they are missing
// (kafkatopic.Ensure: room for a full-size payload, the configured
// retention; an inherited limit too small is raised), retrying while Kafka
// is unreachable, until ctx ends.
func (b *Bridge) ensureTopics(ctx context.Context, producer *kafka.Producer) error {
	admin, err := kafka.NewAdminClientFromProducer(producer)
	if err != nil {
		return fmt.Errorf("create Kafka admin client: %w", err)
	}
	defer admin.Close()
	var specs []kafkatopic.Spec
	for _, t := range b.cfg.topics() {
		specs = append(specs, kafkatopic.Spec{
			Name:            t,
			Partitions:      b.cfg.KafkaPartitions,
			MaxMessageBytes: producerMessageMaxBytes(b.cfg.MaxPayloadBytes),
			Retention:       b.cfg.KafkaRetention,
		})
	}
	return backoff.Retry(ctx, backoff.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}, b.log,
		"ensure Kafka topics", b.setError, func(ctx context.Context) error {
			results, err := kafkatopic.Ensure(ctx, admin, specs...)
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.Outcome != kafkatopic.Existed {
					b.log.Info("Kafka topic", "topic", r.Topic, "outcome", r.Outcome.String(), "max_message_bytes", r.MaxMessageBytes)
				}
			}
			return b.learnTopicLimits(ctx, admin)
		})
}

// learnTopicLimits reads the max.message.bytes of every topic the bridge
// writes, so that a record a topic would refuse is diverted before it is
// produced. A refusal is handled too (the record is diverted on the failed
// delivery), but it is a permanent produce error, after which the idempotent
// producer drains and bumps its epoch. Topics that already exist keep their
// own limit. It runs before the pump starts and then every topicLimitsEvery.
func (b *Bridge) learnTopicLimits(ctx context.Context, admin *kafka.AdminClient) error {
	opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resources []kafka.ConfigResource
	for _, t := range b.cfg.topics() {
		resources = append(resources, kafka.ConfigResource{Type: kafka.ResourceTopic, Name: t})
	}
	results, err := admin.DescribeConfigs(opCtx, resources)
	if err != nil {
		return fmt.Errorf("describe topic configs: %w", err)
	}
	limits := make(map[string]int, len(results))
	for _, r := range results {
		if r.Error.Code() != kafka.ErrNoError {
			return fmt.Errorf("describe topic %s: %w", r.Name, r.Error)
		}
		entry, ok := r.Config["max.message.bytes"]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(entry.Value)
		if err != nil {
			return fmt.Errorf("topic %s: max.message.bytes %q: %w", r.Name, entry.Value, err)
		}
		limits[r.Name] = n
	}
	b.mapper.setTopicLimits(limits)
	b.log.Debug("Kafka topic size limits", "max_message_bytes", limits)
	return nil
}

// mqttOptions configures paho for at-least-once: fixed client id, persistent
// session, manual acks, unordered handlers, automatic reconnects.
func (b *Bridge) mqttOptions() *mqtt.ClientOptions {
	opts := mqtt.NewClientOptions()
	pingTimeout := mqttPingTimeout
	if mqttconn.Dialable(b.cfg.MQTTBroker) {
		opts.SetCustomOpenConnectionFn(b.openConn)
		// The bridge writes its PUBACKs to the connection directly, which
		// paho does not see: it pings every keep-alive, and a PINGRESP
		// can wait behind held reads or a deep backlog. The connection
		// judges liveness instead (mqttconn.Options.MaxSilence: any
		// bytes from the broker count, held reads do not).
		pingTimeout = time.Duration(math.MaxInt64)
	}
	if b.mqttTLS != nil {
		opts.SetTLSConfig(b.mqttTLS)
	}
	if b.cfg.MQTTUsername != "" {
		opts.SetUsername(b.cfg.MQTTUsername).SetPassword(b.mqttPassword)
	}
	return opts.
		AddBroker(b.cfg.MQTTBroker).
		SetClientID(b.cfg.ClientID).
		SetCleanSession(false).
		SetStore(discardStore{}).
		SetAutoAckDisabled(true).
		// The handler never blocks (see inbox), so paho may run it on its
		// router goroutine instead of starting a goroutine per message.
		SetOrderMatters(true).
		SetResumeSubs(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(mqttMaxReconnect).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(b.cfg.KeepAlive).
		SetPingTimeout(pingTimeout).
		SetWriteTimeout(10 * time.Second).
		// Queued readings of a persistent session arrive right after
		// CONNACK, before any Subscribe returns: the default handler takes them.
		SetDefaultPublishHandler(b.onMessage).
		SetConnectionAttemptHandler(b.onConnectAttempt).
		SetConnectionNotificationHandler(b.onConnectionNotification).
		SetOnConnectHandler(b.onConnect).
		SetConnectionLostHandler(b.onConnectionLost)
}

// onConnectAttempt runs synchronously before each network connection, so a
// new generation starts before the new connection delivers anything.
func (b *Bridge) onConnectAttempt(_ *url.URL, cfg *tls.Config) *tls.Config {
	b.attemptAt.Store(time.Now().UnixNano())
	gen := b.gen.Add(1)
	// Readings of the old connection stored in Kafka but still waiting
	// for their turn are never acknowledged; the broker redelivers them.
	b.counters.stale.Add(uint64(b.acks.restart(gen)))
	return cfg
}

// openConn dials a connection whose CONNACK tells which generation resumed
// a session. paho calls it right after onConnectAttempt, so the generation
// read here is the new connection's.
func (b *Bridge) openConn(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
	gen := b.gen.Load()
	conn, err := mqttconn.Open(uri, opts, mqttconn.Options{
		OnConnack: func(sessionPresent bool) {
			if sessionPresent {
				b.resumedGen.Store(gen)
			}
		},
		ReadAt: &b.mqttReadAt,
		Hold:   b.holdReads,
		// paho's ping timeout never ends (see mqttOptions): the
		// connection fails when the broker has sent nothing, not even a
		// PINGRESP, for a keep-alive and a ping timeout.
		MaxSilence: b.cfg.KeepAlive + mqttPingTimeout,
		OnPublish: func(p mqttconn.Publish) {
			r := &reading{pub: p}
			r.msg = &r.pub
			b.accept(r, gen)
		},
	})
	if err != nil {
		return nil, err
	}
	b.acks.useConn(gen, conn.(*mqttconn.Conn))
	return conn, nil
}

// holdReads reports whether the bridge holds Config.MaxUnacked readings of
// its MQTT connection; the connection then stops reading (mqttconn.Options.Hold).
func (b *Bridge) holdReads() bool {
	full := b.acks.len() >= b.cfg.MaxUnacked
	if full != b.readsHeld.Load() {
		b.readsHeld.Store(full)
		if full {
			b.counters.holds.Add(1)
		}
	}
	return full
}

// onConnect subscribes (again) on every connection, so that a filter added
// to the configuration is subscribed even when the broker kept the session
// of an earlier start. On a resumed session the broker answers the
// SUBSCRIBE with every retained message again; accept skips those. It
// runs in its own goroutine, started by paho.
func (b *Bridge) onConnect(c mqtt.Client) {
	if b.connected.Add(1) > 1 {
		b.counters.reconnects.Add(1)
	}
	filters := make(map[string]byte)
	for _, f := range b.cfg.subscribeFilters() {
		filters[f] = 1
	}
	for attempt := 1; c.IsConnectionOpen(); attempt++ {
		tok := c.SubscribeMultiple(filters, nil)
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			b.mqttUp.Store(true)
			b.log.Info("MQTT connected and subscribed", "filters", b.cfg.subscribeFilters(), "generation", b.gen.Load())
			return
		}
		err := tok.Error()
		if err == nil {
			err = errors.New("no SUBACK within 10s")
		}
		b.setError(fmt.Errorf("subscribe %v (attempt %d): %w", b.cfg.subscribeFilters(), attempt, err))
		select {
		case <-b.stopping:
			return
		case <-time.After(time.Second):
		}
	}
}

// onConnectionNotification records why a connection attempt failed (a
// refused password or certificate, a broker away), which paho's retries
// would otherwise keep to themselves, so that Status shows it.
func (b *Bridge) onConnectionNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	if f, ok := n.(mqtt.ConnectionNotificationFailed); ok && f.Reason != nil {
		err := fmt.Errorf("MQTT connect to %s: %w", b.cfg.MQTTBroker, f.Reason)
		b.errMu.Lock()
		repeated := b.lastErr == err.Error()
		b.errMu.Unlock()
		b.setError(err)
		if !repeated { // paho retries every second; log each new reason once
			b.log.Warn("MQTT connection attempt failed; retrying", "err", err)
		}
	}
}

func (b *Bridge) onConnectionLost(_ mqtt.Client, err error) {
	b.lostAt.Store(time.Now().UnixNano())
	b.mqttUp.Store(false)
	b.setError(fmt.Errorf("MQTT connection lost: %w", err))
	b.log.Warn("MQTT connection lost; paho reconnects", "err", err)
}

// onMessage is paho's handler, for readings of a connection not through
// mqttconn (websockets); the connection reads the others itself and calls
// accept (openConn). It runs on paho's router goroutine.
func (b *Bridge) onMessage(_ mqtt.Client, m mqtt.Message) {
	b.accept(&reading{msg: m}, b.gen.Load())
}

// accept takes reading r that arrived on connection gen. It never blocks:
// the reading goes to the inbox (see inbox for what happens when it is
// full), since it runs on the goroutine that reads the connection.
//
// A message with RETAIN set and DUP clear on a connection that resumed its
// session is a replay: MQTT 3.1.1 (3.3.1.3) sets RETAIN towards a client
// only for a copy sent because of a new SUBSCRIBE, never for a message
// forwarded to an existing subscription, live or queued while the bridge
// was away. The session's subscriptions existed before this connection, so
// the retained message was forwarded when it was published or when the
// session first subscribed. A copy the broker sent before a crash and sends
// again carries DUP and is forwarded, since its first PUBACK may never have
// gone out. Without this, every restart re-ingested every retained reading.
func (b *Bridge) accept(r *reading, gen uint64) {
	m := r.msg
	if m.Retained() && !m.Duplicate() && b.resumedGen.Load() == gen {
		b.skipReplay(m, gen)
		return
	}
	if b.isStopping() {
		return // not acknowledged: the broker redelivers it
	}
	r.gen = gen
	r.seq, r.queued = b.acks.enqueue(gen, m, false)
	b.counters.received.Add(1)
	b.inbox.put(r)
}

// pump takes readings from the inbox, a batch at a time, and produces them,
// until ctx ends or a fatal producer error. While the queue is deep it
// gathers readings first (gather.go). While paused it leaves the inbox
// alone; a batch taken before a pause is put back where it stops.
func (b *Bridge) pump(ctx context.Context, producer *kafka.Producer) error {
	for {
		b.pauseMu.Lock()
		paused, wake := b.pausedFlag.Load(), b.wake
		b.pauseMu.Unlock()
		ready := b.inbox.ready
		if paused {
			ready = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-b.fatal:
			return err
		case <-wake:
			continue
		case <-ready:
		}
		if err := b.gather(ctx, wake); err != nil {
			return err
		}
		batch := b.inbox.take()
		for i, r := range batch {
			if b.pausedFlag.Load() {
				b.inbox.putBack(batch[i:])
				break
			}
			if err := b.forward(ctx, producer, r); err != nil {
				return err
			}
		}
	}
}

// forward takes an in-flight slot for r, waiting while the window is full,
// and produces it; a reading from a connection that is gone is dropped
// unacknowledged (the broker redelivers it).
func (b *Bridge) forward(ctx context.Context, producer *kafka.Producer, r *reading) error {
	if r.gen != b.gen.Load() {
		b.counters.stale.Add(1)
		return nil
	}
	if err := b.acquireSlot(ctx); err != nil {
		return err
	}
	b.start(r)
	b.produce(producer, r)
	return nil
}

// acquireSlot takes an in-flight slot, waiting while all MaxInFlight are
// taken. finish releases it.
func (b *Bridge) acquireSlot(ctx context.Context) error {
	limit := int64(b.cfg.MaxInFlight)
	for b.inFlight.Load() >= limit {
		b.pumpWaiting.Store(true)
		// finish stores inFlight before it reads pumpWaiting: a slot freed
		// after this check finds pumpWaiting set and signals slotFreed.
		if b.inFlight.Load() < limit {
			b.pumpWaiting.Store(false)
			break
		}
		select {
		case <-b.slotFreed:
		case <-ctx.Done():
			b.pumpWaiting.Store(false)
			return ctx.Err()
		case err := <-b.fatal:
			b.pumpWaiting.Store(false)
			return err
		}
		b.pumpWaiting.Store(false)
	}
	b.inFlight.Add(1)
	return nil
}

// start builds the Kafka record for a reading and, for a sampled one,
// starts its span and writes the traceparent header.
func (b *Bridge) start(r *reading) {
	kmsg, oversized := b.mapper.recordInto(&r.record, r.headers[:0], inbound{
		topic:    r.msg.Topic(),
		qos:      r.msg.Qos(),
		retained: r.msg.Retained(),
		dup:      r.msg.Duplicate(),
		payload:  r.msg.Payload(),
	}, time.Now())
	if oversized {
		r.diverted = true
		b.counters.oversized.Add(1)
	}
	if b.cfg.TraceSampleRatio > 0 && rand.Float64() < b.cfg.TraceSampleRatio {
		ctx, span := b.tracer.Start(context.Background(), "bridge forward",
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.destination.name", *kmsg.TopicPartition.Topic),
				attribute.String("mqtt.topic", r.msg.Topic()),
				attribute.Int("messaging.message.body.size", len(r.msg.Payload())),
				attribute.Bool("mqtt.dup", r.msg.Duplicate()),
			))
		b.prop.Inject(ctx, kafkatrace.HeaderCarrier{Headers: &kmsg.Headers})
		r.span = span
	}
	kmsg.Opaque = r
	r.kmsg = kmsg
}

// produce hands a reading's record to librdkafka. A full local queue is
// waited out; a record too large for the producer is diverted; any other
// immediate error is treated like a failed delivery.
func (b *Bridge) produce(producer *kafka.Producer, r *reading) {
	for {
		r.attempts++
		r.sentAt = time.Now()
		err := producer.Produce(r.kmsg, nil)
		if err == nil {
			return
		}
		var kerr kafka.Error
		if errors.As(err, &kerr) && kerr.Code() == kafka.ErrQueueFull {
			select {
			case <-b.stopping:
				b.abandon(r, err)
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		b.settle(r, err)
		return
	}
}

// Pause stops taking readings: the pump leaves the handoff queue alone, the
// handlers block, and Mosquitto keeps the rest in the session. Deliveries
// already in flight still settle and are acknowledged.
func (b *Bridge) Pause() { b.setPaused(true) }

// Resume undoes Pause.
func (b *Bridge) Resume() { b.setPaused(false) }

func (b *Bridge) setPaused(p bool) {
	b.pauseMu.Lock()
	defer b.pauseMu.Unlock()
	if b.pausedFlag.Load() == p {
		return
	}
	b.pausedFlag.Store(p)
	close(b.wake)
	b.wake = make(chan struct{})
	b.log.Info("bridge pause state changed", "paused", p)
}

// Flush asks librdkafka to send everything it holds now, ignoring
// linger.ms, and waits until its queue is empty or ctx ends. It returns how
// many records were still outstanding.
func (b *Bridge) Flush(ctx context.Context) (int, error) {
	b.producerMu.RLock()
	defer b.producerMu.RUnlock()
	if b.producer == nil {
		return 0, ErrNotRunning
	}
	for {
		n := b.producer.Flush(100)
		if n == 0 {
			b.flushes.Add(1)
			return 0, nil
		}
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("flush Kafka producer: %w", err)
		}
	}
}

func (b *Bridge) setError(err error) {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	b.lastErr = err.Error()
	b.lastErrAt = time.Now()
}

// Healthy reports whether the bridge can forward readings now: the MQTT
// session is up and subscribed, Kafka answers, and the topics are ensured
// with their size limits read (the pump starts only then).
func (b *Bridge) Healthy() bool { return b.mqttUp.Load() && b.kafkaUp.Load() && b.topicsUp.Load() }

// Status is a point-in-time view of the bridge for the control API.
type Status struct {
	ClientID  string
	StartedAt time.Time
	Stopping  bool
	// NewestDelivery is when Kafka last acknowledged a record (zero if never).
	NewestDelivery time.Time
	Flushes        uint64
	MQTTConnected  bool
	KafkaReachable bool
	Paused         bool
	Subscriptions  []string
	InFlight       int
	Queued         int
	Received       uint64
	Produced       uint64
	Acked          uint64
	Failed         uint64
	Retried        uint64
	Oversized      uint64
	StaleAcks      uint64
	Reconnects     uint64
	// RetainedReplays counts retained copies skipped on resumed sessions.
	RetainedReplays uint64
	Rates           Rates
	LastError       string
	LastErrorAt     time.Time
}

// Status returns the current counters, rates and state.
func (b *Bridge) Status() Status {
	s := b.counters.snapshot(time.Now())
	b.errMu.Lock()
	lastErr, lastErrAt := b.lastErr, b.lastErrAt
	b.errMu.Unlock()
	var newest time.Time
	if ns := b.kafkaOKAt.Load(); ns > 0 {
		newest = time.Unix(0, ns)
	}
	return Status{
		ClientID:        b.cfg.ClientID,
		StartedAt:       b.startedAt,
		Stopping:        b.isStopping(),
		NewestDelivery:  newest,
		Flushes:         b.flushes.Load(),
		MQTTConnected:   b.mqttUp.Load(),
		KafkaReachable:  b.kafkaUp.Load(),
		Paused:          b.pausedFlag.Load(),
		Subscriptions:   b.cfg.subscribeFilters(),
		InFlight:        int(b.inFlight.Load()),
		Queued:          b.inbox.len(),
		Received:        s.received,
		Produced:        s.produced,
		Acked:           s.acked,
		Failed:          s.failed,
		Retried:         s.retried,
		Oversized:       s.oversized,
		StaleAcks:       s.stale,
		Reconnects:      b.counters.reconnects.Load(),
		RetainedReplays: b.counters.replays.Load(),
		Rates:           b.rates.get(),
		LastError:       lastErr,
		LastErrorAt:     lastErrAt,
	}
}

// Watchdog limits. paho pings after KeepAlive without traffic, and a
// connection is dropped when no answer came mqttPingTimeout later (by
// mqttconn's MaxSilence; by paho on a websocket connection), so a connection
// that stays up but silent for 3 keep-alives plus that timeout has a
// client whose reader or pinger no longer runs. After a lost connection
// paho tries again within mqttMaxReconnect; reconnectStall allows for
// several such gaps.
const (
	mqttPingTimeout  = 10 * time.Second
	mqttMaxReconnect = 5 * time.Second
	reconnectStall   = time.Minute
)

// watchdog reports ErrMQTTStuck when the MQTT client has stopped working
// at now: an open connection through the batching wrapper that has read
// nothing for longer than keep-alive allows (the wedge of a flusher blocked
// on a broker that stopped reading, which paho never noticed, before
// mqttconn.WriteStall), or no open connection (connOpen, paho's own view) for
// reconnectStall after a loss with no connection attempt and no read from
// the broker for as long.
// paho starts its first reconnect attempt before it calls the
// connection-lost handler, so an attempt may come before lostAt: only the
// open connection and the age of the last attempt tell.
func (b *Bridge) watchdog(now time.Time, connOpen bool) error {
	silence := 3*b.cfg.KeepAlive + mqttPingTimeout
	if readAt := b.mqttReadAt.Load(); connOpen && readAt > 0 && now.Sub(time.Unix(0, readAt)) > silence {
		return fmt.Errorf("%w: nothing read from %s for %s on an open connection (keep-alive %s)",
			ErrMQTTStuck, b.cfg.MQTTBroker, now.Sub(time.Unix(0, readAt)).Round(time.Second), b.cfg.KeepAlive)
	}
	// The last read also counts: a connection that came after the last
	// loss the handler saw was alive until it read nothing more, and paho
	// may still be closing it (its lost handler runs after the close, which
	// waits up to mqttconn.WriteStall on a broker that stopped reading).
	lost, attempt, read := b.lostAt.Load(), b.attemptAt.Load(), b.mqttReadAt.Load()
	if lost > 0 && !connOpen && now.Sub(time.Unix(0, lost)) > reconnectStall && now.Sub(time.Unix(0, attempt)) > reconnectStall &&
		(read == 0 || now.Sub(time.Unix(0, read)) > reconnectStall) {
		return fmt.Errorf("%w: connection to %s lost %s ago, none open and no attempt to connect for %s",
			ErrMQTTStuck, b.cfg.MQTTBroker, now.Sub(time.Unix(0, lost)).Round(time.Second), now.Sub(time.Unix(0, attempt)).Round(time.Second))
	}
	return nil
}

// goroutineDump returns every goroutine's stack, for the log of a stuck
// client: where paho stopped is the one thing a restart loses.
func goroutineDump() string {
	var sb strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&sb, 1); err != nil {
		return "goroutine dump failed: " + err.Error()
	}
	return sb.String()
}

// topicLimitsEvery is how often the bridge reads its topics' size limits
// again, so that a changed max.message.bytes is soon known.
const topicLimitsEvery = time.Minute

// monitorLoop samples the counters for the rates, checks that Kafka answers
// when no delivery has succeeded lately, and rereads the topics' size limits
// every topicLimitsEvery.
func (b *Bridge) monitorLoop(ctx context.Context, producer *kafka.Producer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	limitsRead := time.Now()
	for {
		if time.Since(limitsRead) >= topicLimitsEvery && b.kafkaUp.Load() {
			limitsRead = time.Now()
			if admin, err := kafka.NewAdminClientFromProducer(producer); err == nil {
				if err := b.learnTopicLimits(ctx, admin); err != nil {
					b.log.Warn("cannot reread the Kafka topics' size limits; keeping the last ones", "err", err)
				}
				admin.Close()
			}
		}
		b.rates.add(b.counters.snapshot(time.Now()))
		open := false
		if c := b.mqttClient.Load(); c != nil {
			open = (*c).IsConnectionOpen()
		}
		if err := b.watchdog(time.Now(), open); err != nil {
			b.log.Error("stopping the bridge: the MQTT client is stuck; a new process resumes the session", "err", err,
				"goroutines", goroutineDump())
			select {
			case b.fatal <- err:
			default:
			}
			return // once: Run is stopping
		}
		if time.Since(time.Unix(0, b.kafkaOKAt.Load())) > 2*time.Second {
			_, err := producer.GetMetadata(nil, false, 1500)
			up := err == nil
			if b.kafkaUp.Swap(up) != up {
				b.log.Info("Kafka reachability changed", "reachable", up, "err", err)
			}
			if err != nil {
				b.setError(fmt.Errorf("Kafka metadata request: %w", err))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
