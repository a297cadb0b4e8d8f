package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics.
type Metrics struct {
	commits        *prometheus.CounterVec
	commitSeconds  prometheus.Histogram
	rowsCommitted  prometheus.Counter
	bytesCommitted prometheus.Counter
	filesCommitted prometheus.Counter
	rowsPerCommit  prometheus.Histogram
	rowsDropped    prometheus.Counter
	skipped        prometheus.Counter
	repositions    prometheus.Counter
	pollWait       prometheus.Counter
	rebalances     *prometheus.CounterVec
	tableVersion   prometheus.Gauge
	lastCommitTime prometheus.Gauge
	batchRows      prometheus.Gauge
	tableOffset    *prometheus.GaugeVec
	endOffset      *prometheus.GaugeVec
	lag            *prometheus.GaugeVec
}

// NewMetrics creates the engine's metrics and registers them with reg
// (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "plantlake", "ingest"
	m := &Metrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commits_total",
			Help: "Raw table commits by outcome: ok, aborted (lost a race for a partition), error (outcome unknown)."}, []string{"outcome"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_seconds",
			Help: "Time to write a batch's files and commit them through the catalog.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		rowsCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_committed_total",
			Help: "Kafka records committed to the raw table."}),
		bytesCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "record_bytes_committed_total",
			Help: "Bytes of the Kafka records (payload, key, headers) committed to the raw table."}),
		filesCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "files_committed_total",
			Help: "Parquet files committed to the raw table."}),
		rowsPerCommit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "rows_per_commit",
			Help: "Rows in each committed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 12)}),
		rowsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_dropped_total",
			Help: "Batched rows dropped because their commit failed or their partitions were lost; they are consumed again."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_skipped_total",
			Help: "Records received that were already in the table or batch, or for a partition no longer assigned."}),
		repositions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "repositions_total",
			Help: "Times the assigned partitions were re-read from the table and sought after a failed commit."}),
		pollWait: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "poll_wait_seconds_total",
			Help: "Time spent waiting for Kafka records; high while busy means the fetcher, not ingest, is the limit."}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rebalances_total",
			Help: "Consumer group rebalance events by kind (assigned, revoked)."}, []string{"kind"}),
		tableVersion: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "table_version",
			Help: "Raw table version of the last commit."}),
		lastCommitTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_commit_timestamp_seconds",
			Help: "Unix time of the last successful commit."}),
		batchRows: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batch_rows",
			Help: "Rows in the batch being built."}),
		tableOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "offset_in_table",
			Help: "Last Kafka offset of an assigned partition that is in the raw table (-1: none)."}, []string{"topic", "partition"}),
		endOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "end_offset",
			Help: "High watermark of an assigned partition, as last fetched."}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "lag_records",
			Help: "Records of an assigned partition not yet in the raw table."}, []string{"topic", "partition"}),
	}
	if reg != nil {
		reg.MustRegister(m.commits, m.commitSeconds, m.rowsCommitted, m.bytesCommitted, m.filesCommitted, m.rowsPerCommit,
			m.rowsDropped, m.skipped, m.repositions, m.pollWait, m.rebalances, m.tableVersion, m.lastCommitTime, m.batchRows,
			m.tableOffset, m.endOffset, m.lag)
	}
	return m
}
