package bridge

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the bridge's running totals. They are the single source for
// both GetStatus and the Prometheus metrics.
type counters struct {
	received   atomic.Uint64 // readings taken from MQTT
	produced   atomic.Uint64 // records Kafka acknowledged
	acked      atomic.Uint64 // MQTT PUBACKs sent
	failed     atomic.Uint64 // failed delivery reports (each produce attempt)
	retried    atomic.Uint64 // records produced again after a failure
	oversized  atomic.Uint64 // readings diverted to the oversized topic
	stale      atomic.Uint64 // acks dropped because the connection changed
	holds      atomic.Uint64 // times reads were held at MaxUnacked
	reconnects atomic.Uint64 // MQTT connections made after the first
	replays    atomic.Uint64 // retained copies a resumed session's SUBSCRIBE sent again, acked unforwarded
}

// snapshot is a copy of the counters at one moment.
type snapshot struct {
	at                                                           time.Time
	received, produced, acked, failed, retried, oversized, stale uint64
}

func (c *counters) snapshot(now time.Time) snapshot {
	return snapshot{
		at:        now,
		received:  c.received.Load(),
		produced:  c.produced.Load(),
		acked:     c.acked.Load(),
		failed:    c.failed.Load(),
		retried:   c.retried.Load(),
		oversized: c.oversized.Load(),
		stale:     c.stale.Load(),
	}
}

// rateWindow is how far back the rates in [Status] look.
const rateWindow = 5 * time.Second

// rates keeps recent snapshots to turn the counters into per-second rates.
type rates struct {
	mu    sync.Mutex
	ring  []snapshot // oldest first, at most rateWindow apart from newest
	delta Rates
}

// Rates are per-second rates over the last few seconds.
type Rates struct {
	Received, Produced, Acked, Failed float64
}

func (r *rates) add(s snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring = append(r.ring, s)
	for len(r.ring) > 2 && s.at.Sub(r.ring[0].at) > rateWindow {
		r.ring = r.ring[1:]
	}
	old := r.ring[0]
	secs := s.at.Sub(old.at).Seconds()
	if secs <= 0 {
		return
	}
	r.delta = Rates{
		Received: float64(s.received-old.received) / secs,
		Produced: float64(s.produced-old.produced) / secs,
		Acked:    float64(s.acked-old.acked) / secs,
		Failed:   float64(s.failed-old.failed) / secs,
	}
}

func (r *rates) get() Rates {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delta
}

// metrics registers the bridge's Prometheus collectors. Counters read the
// atomics directly, so the two views never disagree.
func (b *Bridge) registerMetrics(reg prometheus.Registerer) error {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "plantlake", Subsystem: "bridge", Name: name, Help: help,
		}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "plantlake", Subsystem: "bridge", Name: name, Help: help,
		}, f)
	}
	boolGauge := func(v *atomic.Bool) func() float64 {
		return func() float64 {
			if v.Load() {
				return 1
			}
			return 0
		}
	}
	c := &b.counters
	collectors := []prometheus.Collector{
		counter("readings_received_total", "MQTT readings taken from the broker.", &c.received),
		counter("records_produced_total", "Records Kafka acknowledged.", &c.produced),
		counter("readings_acked_total", "MQTT acknowledgements sent after Kafka stored the record.", &c.acked),
		counter("delivery_failures_total", "Failed Kafka delivery reports; the reading is produced again or redelivered.", &c.failed),
		counter("records_retried_total", "Records produced again after a failed delivery.", &c.retried),
		counter("readings_oversized_total", "Readings diverted to the oversized topic.", &c.oversized),
		counter("stale_acks_dropped_total", "Acks dropped because the MQTT connection changed; the broker redelivers.", &c.stale),
		counter("mqtt_reconnects_total", "MQTT connections made after the first.", &c.reconnects),
		counter("retained_replays_skipped_total", "Retained messages the broker sent again on a resumed session's SUBSCRIBE, acknowledged without forwarding.", &c.replays),
		counter("deep_queue_gathers_total", "Times the pump gathered readings for --deep-linger because the queue was deep.", &b.gathered),
		gauge("in_flight", "Readings produced and not yet settled.", func() float64 { return float64(b.inFlight.Load()) }),
		gauge("queued", "Readings in the handoff queue.", func() float64 { return float64(b.inbox.len()) }),
		counter("read_holds_total", "Times the bridge stopped reading from the broker because it held --max-unacked readings.", &c.holds),
		gauge("reads_held", "1 while the bridge does not read from the broker because it holds --max-unacked readings.", boolGauge(&b.readsHeld)),
		gauge("unacked", "Readings of the current MQTT connection not yet acknowledged (the broker's in-flight window in use).",
			func() float64 { return float64(b.acks.len()) }),
		gauge("mqtt_connected", "1 while the MQTT session is up and subscribed.", boolGauge(&b.mqttUp)),
		gauge("kafka_reachable", "1 while Kafka answers.", boolGauge(&b.kafkaUp)),
		gauge("paused", "1 while the bridge is paused.", boolGauge(&b.pausedFlag)),
		b.latency,
	}
	for _, col := range collectors {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("register bridge metrics: %w", err)
		}
	}
	return nil
}
