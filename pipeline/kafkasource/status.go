package kafkasource

import (
	"context"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/servicekit/kafkatrace"
)

// PartitionStatus is the state of one assigned partition.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// OffsetInTable is the last offset in the target table; -1 if none.
	OffsetInTable int64
	// EndOffset is the partition's high watermark as last fetched; -1 if unknown.
	EndOffset int64
	// Lag is how many records are not in the table yet.
	Lag int64
	// BatchRows is how many of its records are in the batch being built.
	BatchRows int
	// Of the last commit that carried this partition.
	LastCommitRows    int
	LastCommitFiles   int
	LastCommitVersion int64 // -1: none since assignment
	LastCommitTime    time.Time
}

// Partitions returns the assigned partitions as of the last refresh.
func (s *Source) Partitions() []PartitionStatus {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	return append([]PartitionStatus(nil), s.partitions...)
}

// Refresh updates the partitions' status and metrics from the runner's
// goroutine and returns the total lag.
func (s *Source) Refresh() int64 {
	parts := s.sortedParts()
	ps := make([]PartitionStatus, 0, len(parts))
	var lag int64
	s.metrics.tableOffset.Reset()
	s.metrics.endOffset.Reset()
	s.metrics.lag.Reset()
	for _, p := range parts {
		st := PartitionStatus{
			Topic: p.key.topic, Partition: p.key.partition,
			OffsetInTable: p.tableOffset, EndOffset: -1, BatchRows: p.batchRows,
			LastCommitRows: p.lastRows, LastCommitFiles: p.lastFiles, LastCommitVersion: p.lastVersion, LastCommitTime: p.lastTime,
		}
		if s.consumer != nil {
			if low, high, err := s.consumer.GetWatermarkOffsets(p.key.topic, p.key.partition); err == nil && high >= 0 {
				st.EndOffset = high
				from := p.tableOffset + 1
				if p.tableOffset < 0 && low > 0 {
					from = low
				}
				st.Lag = max(0, high-from)
			}
		}
		lag += st.Lag
		labels := []string{p.key.topic, strconv.Itoa(int(p.key.partition))}
		s.metrics.tableOffset.WithLabelValues(labels...).Set(float64(p.tableOffset))
		if st.EndOffset >= 0 {
			s.metrics.endOffset.WithLabelValues(labels...).Set(float64(st.EndOffset))
			s.metrics.lag.WithLabelValues(labels...).Set(float64(st.Lag))
		}
		ps = append(ps, st)
	}
	s.statusMu.Lock()
	s.partitions = ps
	s.statusMu.Unlock()
	return lag
}

// Metrics are the Kafka source's Prometheus metrics, named plantlake_<hop>_….
type Metrics struct {
	skipped     prometheus.Counter
	pollWait    prometheus.Counter
	rebalances  *prometheus.CounterVec
	tableOffset *prometheus.GaugeVec
	endOffset   *prometheus.GaugeVec
	lag         *prometheus.GaugeVec
}

// NewMetrics creates the source's metrics for the hop named hop and
// registers them with reg (nil: not registered).
func NewMetrics(hop string, reg prometheus.Registerer) *Metrics {
	const ns = "plantlake"
	sub := hop
	m := &Metrics{
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_skipped_total",
			Help: "Records received that were already in the table or batch, or for a partition no longer assigned."}),
		pollWait: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "poll_wait_seconds_total",
			Help: "Time spent waiting for Kafka records; high while busy means the fetcher, not the hop, is the limit."}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rebalances_total",
			Help: "Consumer group rebalance events by kind (assigned, revoked)."}, []string{"kind"}),
		tableOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "offset_in_table",
			Help: "Last Kafka offset of an assigned partition that is in the table (-1: none)."}, []string{"topic", "partition"}),
		endOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "end_offset",
			Help: "High watermark of an assigned partition, as last fetched."}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "lag_records",
			Help: "Records of an assigned partition not yet in the table."}, []string{"topic", "partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.skipped, m.pollWait, m.rebalances, m.tableOffset, m.endOffset, m.lag)
	}
	return m
}

// w3c extracts trace context itself rather than through the global
// propagator, which is a no-op until telemetry is set up.
var w3c = propagation.TraceContext{}

// linkFromHeaders returns a link to the sampled span whose context m's
// headers carry, with the record's Kafka position as attributes.
func linkFromHeaders(ctx context.Context, m *kafka.Message) (trace.Link, bool) {
	sc := trace.SpanContextFromContext(w3c.Extract(ctx, kafkatrace.HeaderCarrier{Headers: &m.Headers}))
	if !sc.IsValid() || !sc.IsSampled() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
		attribute.String("messaging.destination.name", *m.TopicPartition.Topic),
		attribute.Int("messaging.destination.partition.id", int(m.TopicPartition.Partition)),
		attribute.Int64("messaging.kafka.offset", int64(m.TopicPartition.Offset)),
	}}, true
}
