package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a runner's Prometheus metrics, named plantlake_<hop>_…
// (plantlake_ingest_commits_total).
type Metrics struct {
	commits        *prometheus.CounterVec
	commitSeconds  prometheus.Histogram
	rowsCommitted  prometheus.Counter
	bytesCommitted prometheus.Counter
	filesCommitted prometheus.Counter
	rowsPerCommit  prometheus.Histogram
	rowsDropped    prometheus.Counter
	repositions    prometheus.Counter
	tableVersion   prometheus.Gauge
	lastCommitTime prometheus.Gauge
	batchRows      prometheus.Gauge
}

// NewMetrics creates the metrics of the hop named hop and registers them
// with reg (nil: not registered).
func NewMetrics(hop string, reg prometheus.Registerer) *Metrics {
	const ns = "plantlake"
	sub := hop
	m := &Metrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "commits_total",
			Help: "Commits by outcome: ok, aborted (lost a race for a position), error (outcome unknown)."}, []string{"outcome"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_seconds",
			Help: "Time to write a batch's files and commit them through the catalog.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		rowsCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_committed_total",
			Help: "Rows committed to the target tables."}),
		bytesCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "record_bytes_committed_total",
			Help: "Bytes of the input records committed (for Kafka: payload, key, headers)."}),
		filesCommitted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "files_committed_total",
			Help: "Parquet files committed to the target tables."}),
		rowsPerCommit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "rows_per_commit",
			Help: "Rows in each committed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 12)}),
		rowsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_dropped_total",
			Help: "Batched rows dropped because their commit failed or their input was lost; they are read again."}),
		repositions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "repositions_total",
			Help: "Times the positions were read again from the targets and the source sought after a failed commit."}),
		tableVersion: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "table_version",
			Help: "Table version of the last commit."}),
		lastCommitTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_commit_timestamp_seconds",
			Help: "Unix time of the last successful commit."}),
		batchRows: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batch_rows",
			Help: "Rows in the batch being built."}),
	}
	if reg != nil {
		reg.MustRegister(m.commits, m.commitSeconds, m.rowsCommitted, m.bytesCommitted, m.filesCommitted, m.rowsPerCommit,
			m.rowsDropped, m.repositions, m.tableVersion, m.lastCommitTime, m.batchRows)
	}
	return m
}
