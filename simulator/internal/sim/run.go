package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/servicekit/mqttconn"
)

// RunConfig is one simulator run.
type RunConfig struct {
	// Plan shapes the messages; Plan.Start zero means the moment the
	// publishers are connected.
	Plan PlanConfig
	// Broker is the MQTT broker URL (tcp://, ssl://, ws://, wss://).
	Broker string
	// Username and Password log in, when Username is set.
	Username, Password string
	// CAFile, when set, verifies the broker's TLS certificate.
	CAFile string
	// ClientID is the MQTT client id; publisher i > 0 appends "-<i>".
	ClientID string
	// QoS is 0, 1 or 2.
	QoS byte
	// Count stops after this many messages; Duration after this long of
	// schedule. Zero means no limit (both zero: until ctx ends).
	Count    int64
	Duration time.Duration
	// Publishers is how many MQTT connections publish in parallel.
	Publishers int
	// MaxInflight bounds each publisher's messages awaiting the broker's ack.
	MaxInflight int
	// Ledger receives one entry per message; nil writes none.
	Ledger *LedgerWriter
	// Progress is how often a progress line is logged (0: never).
	Progress time.Duration
	// Logger logs progress and reconnects.
	Logger *slog.Logger
}

// Summary is what a run published.
type Summary struct {
	// Planned is how many messages were planned; Published how many of
	// them were published (fewer when the run was interrupted); Acked how
	// many the broker acknowledged; Unacked how many were published but left
	// without an ack at the end.
	Planned, Published, Acked, Unacked int64
	// ByKind counts published messages by kind.
	ByKind map[Kind]int64
	// Retries counts publish attempts after the first.
	Retries int64
	// Elapsed is the wall time from the first due message to the last ack.
	Elapsed time.Duration
}

// Rate is the achieved messages per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Published) / s.Elapsed.Seconds()
}

// drainTimeout bounds the wait for acks after the context ends.
const drainTimeout = 5 * time.Second

// Run connects the publishers, publishes the planned messages at the rate,
// and writes the ledger. It returns when the count or duration is reached
// (after every ack arrived) or when ctx ends.
func Run(ctx context.Context, cfg RunConfig) (Summary, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Publishers < 1 {
		cfg.Publishers = 1
	}
	if cfg.MaxInflight < 1 {
		cfg.MaxInflight = 256
	}
	if cfg.QoS > 2 {
		return Summary{}, fmt.Errorf("qos must be 0, 1 or 2, got %d", cfg.QoS)
	}
	if err := cfg.Plan.Validate(); err != nil {
		return Summary{}, err
	}
	var tlsCfg *tls.Config
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return Summary{}, fmt.Errorf("read CA file: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
			return Summary{}, fmt.Errorf("CA file %s: no PEM certificate in it", cfg.CAFile)
		}
	}

	clients := make([]mqtt.Client, cfg.Publishers)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Disconnect(250)
			}
		}
	}()
	for i := range clients {
		id := cfg.ClientID
		if i > 0 {
			id = fmt.Sprintf("%s-%d", cfg.ClientID, i)
		}
		opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
			SetMaxReconnectInterval(2 * time.Second).SetOrderMatters(false).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) {
				log.Warn("mqtt connection lost; reconnecting", "client_id", id, "err", err)
			})
		if cfg.Username != "" {
			opts.SetUsername(cfg.Username).SetPassword(cfg.Password)
		}
		if tlsCfg != nil {
			opts.SetTLSConfig(tlsCfg)
		}
		if mqttconn.Dialable(cfg.Broker) {
			// Buffered reads and gathered writes: paho alone makes a write
			// per PUBLISH and three reads per PUBACK.
			opts.SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
				return mqttconn.Open(u, o, mqttconn.Options{})
			})
		}
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(30 * time.Second) {
			return Summary{}, fmt.Errorf("connect to %s as %s: timed out", cfg.Broker, id)
		}
		if err := tok.Error(); err != nil {
			return Summary{}, fmt.Errorf("connect to %s as %s: %w", cfg.Broker, id, err)
		}
		clients[i] = c
	}

	start := time.Now()
	if cfg.Plan.Start.IsZero() {
		cfg.Plan.Start = start
	}
	planner, err := NewPlanner(cfg.Plan)
	if err != nil {
		return Summary{}, err
	}
	log.Info("publishing", "broker", cfg.Broker, "series", planner.Series(), "rate", cfg.Plan.Rate,
		"count", cfg.Count, "duration", cfg.Duration, "publishers", cfg.Publishers, "qos", cfg.QoS)

	sum := Summary{ByKind: map[Kind]int64{}}
	var acked, unacked, retries atomic.Int64
	var lastAck atomic.Int64
	queues := make([]chan *Message, cfg.Publishers)
	for i := range queues {
		queues[i] = make(chan *Message, 1024)
	}

	// drainCtx outlives ctx by drainTimeout so that acks in flight are recorded.
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(drainTimeout, cancelDrain)
		context.AfterFunc(drainCtx, func() { t.Stop() })
	})
	defer stop()

	var wg sync.WaitGroup
	pubs := make([]*publisher, len(clients))
	for i, c := range clients {
		pubs[i] = &publisher{client: c, qos: cfg.QoS, ledger: cfg.Ledger, log: log, byKind: map[Kind]int64{},
			acked: &acked, unacked: &unacked, retries: &retries, lastAck: &lastAck}
		wg.Go(func() { pubs[i].run(ctx, drainCtx, start, queues[i], cfg.MaxInflight) })
	}

	var progress <-chan time.Time
	if cfg.Progress > 0 {
		t := time.NewTicker(cfg.Progress)
		defer t.Stop()
		progress = t.C
	}
plan:
	for cfg.Count == 0 || sum.Planned < cfg.Count {
		m := planner.Next()
		if cfg.Duration > 0 && m.Due >= cfg.Duration {
			break
		}
		select {
		case queues[m.Seq%int64(len(queues))] <- m:
			sum.Planned++
		case <-ctx.Done():
			break plan
		}
		select {
		case <-progress:
			log.Info("progress", "planned", sum.Planned, "acked", acked.Load(), "retries", retries.Load(),
				"rate", float64(acked.Load())/time.Since(start).Seconds())
		default:
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	for _, p := range pubs {
		sum.Published += p.published
		for k, n := range p.byKind {
			sum.ByKind[k] += n
		}
	}
	sum.Acked, sum.Unacked, sum.Retries = acked.Load(), unacked.Load(), retries.Load()
	if last := lastAck.Load(); last > 0 {
		sum.Elapsed = time.Unix(0, last).Sub(start)
	}
	if sum.Unacked > 0 {
		return sum, fmt.Errorf("%d messages were not acknowledged by the broker before the run ended (acked: false in the ledger)", sum.Unacked)
	}
	return sum, ctx.Err()
}

// publisher publishes one share of the messages on its own connection.
type publisher struct {
	client                           mqtt.Client
	qos                              byte
	ledger                           *LedgerWriter
	log                              *slog.Logger
	acked, unacked, retries, lastAck *atomic.Int64
	// published and byKind count what this publisher published; read
	// after run returns.
	published int64
	byKind    map[Kind]int64
}

type pending struct {
	m     *Message
	entry Entry
	tok   mqtt.Token
}

// paceSlack is how early a message may go: a publisher that is ahead of
// its schedule sleeps until the next message is due and then publishes
// every message due within paceSlack at once. Sleeping for each message
// (every 200 µs at 5,000/s) cost a timer and two goroutine switches a
// reading and handed Mosquitto one packet a read: at 25,000/s over five
// connections the publisher took 24.0 µs of CPU a reading and Mosquitto
// 9.8, with 2 ms of slack 20.1 and 7.8 (medians of five interleaved 20 s
// runs). On a benchmark machine that CPU comes out of the pipeline's.
const paceSlack = 2 * time.Millisecond

// run publishes every message of q when it is due (up to paceSlack early);
// a second goroutine waits for the acks in order, republishes what failed,
// and writes the ledger.
func (p *publisher) run(ctx, drainCtx context.Context, start time.Time, q <-chan *Message, maxInflight int) {
	inflight := make(chan pending, maxInflight)
	var wg sync.WaitGroup
	wg.Go(func() {
		for pd := range inflight {
			p.settle(ctx, drainCtx, pd)
		}
	})
	defer wg.Wait()
	defer close(inflight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for m := range q {
		if wait := time.Until(start.Add(m.Due)); wait > paceSlack {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			continue // drain the queue without publishing
		}
		e := NewEntry(m)
		e.PublishedAt = time.Now().UTC()
		e.Attempts = 1
		p.published++
		p.byKind[m.Kind]++
		inflight <- pending{m: m, entry: e, tok: p.client.Publish(m.Topic, p.qos, false, m.Payload)}
	}
}

// settle waits for one message's ack, republishing the same bytes after a
// failure (a broker restart) until acked or the drain deadline passes.
func (p *publisher) settle(ctx, drainCtx context.Context, pd pending) {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-pd.tok.Done():
		case <-drainCtx.Done():
		}
		err := pd.tok.Error()
		if drainCtx.Err() != nil && !isDone(pd.tok) {
			err = errors.New("run ended before the ack")
		}
		if err == nil {
			pd.entry.Acked = true
			p.acked.Add(1)
			p.lastAck.Store(time.Now().UnixNano())
			break
		}
		if ctx.Err() != nil {
			p.unacked.Add(1)
			p.log.Warn("not acknowledged", "seq", pd.m.Seq, "topic", pd.m.Topic, "err", err)
			break
		}
		p.log.Debug("publish failed; retrying", "seq", pd.m.Seq, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		backoff = min(2*backoff, 2*time.Second)
		pd.entry.Attempts++
		p.retries.Add(1)
		pd.tok = p.client.Publish(pd.m.Topic, p.qos, false, pd.m.Payload)
	}
	if p.ledger != nil {
		p.ledger.Write(pd.entry)
	}
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
