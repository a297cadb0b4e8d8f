package ingester

import (
	"strconv"
	"time"
)

// State is the engine's lifecycle state.
type State string

// States.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
)

// PartitionStatus is the state of one assigned partition.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// OffsetInTable is the last offset in the raw table; -1 if none.
	OffsetInTable int64
	// EndOffset is the partition's high watermark as last fetched; -1 if unknown.
	EndOffset int64
	// Lag is how many records are not in the table yet (EndOffset - OffsetInTable - 1).
	Lag int64
	// BatchRows is how many of its records are in the batch being built.
	BatchRows int
	// Of the last commit that carried this partition.
	LastCommitRows    int
	LastCommitFiles   int
	LastCommitVersion int64 // -1: none since assignment
	LastCommitTime    time.Time
}

// Status is a snapshot of the engine, refreshed every half second and after
// every commit and rebalance.
type Status struct {
	State State
	// TableVersion is the raw table version the engine's positions are current at.
	TableVersion int64
	BatchRows    int
	BatchBytes   int
	// Totals since start.
	Received      int64 // records taken into batches
	RowsCommitted int64
	RowsDropped   int64 // rows of failed commits, consumed again
	Commits       int64
	FailedCommits int64
	// Rates per second over about the last minute.
	ReceivedPerSecond, CommittedPerSecond, DroppedPerSecond float64
	LastCommit                                              CommitInfo
	Lag                                                     int64
	LastError                                               string
	LastErrorTime                                           time.Time
	Partitions                                              []PartitionStatus
	UpdatedAt                                               time.Time
	NewestDataTime                                          time.Time // ingest time of the newest committed row's batch
}

// CommitInfo describes one commit.
type CommitInfo struct {
	Version  int64 // -1: none yet
	Rows     int
	Files    int
	Bytes    int64
	Time     time.Time
	Duration time.Duration
}

// Status returns the latest snapshot of the engine's state.
func (e *Engine) Status() Status {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	s := e.status
	s.Partitions = append([]PartitionStatus(nil), s.Partitions...)
	return s
}

func (e *Engine) setState(st State) {
	e.statusMu.Lock()
	e.status.State = st
	e.statusMu.Unlock()
}

func (e *Engine) setLastError(err error) {
	e.statusMu.Lock()
	e.status.LastError = err.Error()
	e.status.LastErrorTime = time.Now()
	e.statusMu.Unlock()
}

// refreshStatus rebuilds the snapshot from the Run goroutine's state.
func (e *Engine) refreshStatus() {
	parts := e.sortedParts()
	ps := make([]PartitionStatus, 0, len(parts))
	var lag int64
	e.metrics.tableOffset.Reset()
	e.metrics.endOffset.Reset()
	e.metrics.lag.Reset()
	for _, p := range parts {
		st := PartitionStatus{
			Topic: p.key.topic, Partition: p.key.partition,
			OffsetInTable: p.tableOffset, EndOffset: -1, BatchRows: p.batchRows,
			LastCommitRows: p.lastRows, LastCommitFiles: p.lastFiles, LastCommitVersion: p.lastVersion, LastCommitTime: p.lastTime,
		}
		if e.consumer != nil {
			if low, high, err := e.consumer.GetWatermarkOffsets(p.key.topic, p.key.partition); err == nil && high >= 0 {
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
		e.metrics.tableOffset.WithLabelValues(labels...).Set(float64(p.tableOffset))
		if st.EndOffset >= 0 {
			e.metrics.endOffset.WithLabelValues(labels...).Set(float64(st.EndOffset))
			e.metrics.lag.WithLabelValues(labels...).Set(float64(st.Lag))
		}
		ps = append(ps, st)
	}
	e.metrics.batchRows.Set(float64(e.builder.Rows()))

	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	s := &e.status
	if s.State == StateRunning && e.paused {
		s.State = StatePaused
	} else if s.State == StatePaused && !e.paused {
		s.State = StateRunning
	}
	s.TableVersion = e.readVersion
	s.BatchRows, s.BatchBytes = e.builder.Rows(), e.builder.Bytes()
	s.Received, s.RowsCommitted, s.RowsDropped = e.totals.received, e.totals.rows, e.totals.rowsDropped
	s.Commits, s.FailedCommits = e.totals.commits, e.totals.failed
	s.ReceivedPerSecond, s.CommittedPerSecond, s.DroppedPerSecond = e.rates.update(time.Now(), e.totals)
	lc := e.lastCommit
	s.LastCommit = CommitInfo{Version: lc.version, Rows: lc.rows, Files: lc.files, Bytes: lc.bytes, Time: lc.at, Duration: lc.elapsed}
	if lc.rows == 0 {
		s.LastCommit.Version = -1
	}
	s.Lag = lag
	s.Partitions = ps
	s.UpdatedAt = time.Now()
	s.NewestDataTime = lc.newest
}

// rateWindow keeps samples of the totals to compute rates over about a minute.
type rateWindow struct {
	samples []rateSample
}

type rateSample struct {
	at time.Time
	t  totals
}

const rateSpan = time.Minute

// update records the totals at now (at most one sample a second) and
// returns the received, committed and dropped rows per second since the
// oldest sample within rateSpan.
func (w *rateWindow) update(now time.Time, t totals) (received, committed, dropped float64) {
	if n := len(w.samples); n == 0 || now.Sub(w.samples[n-1].at) >= time.Second {
		w.samples = append(w.samples, rateSample{now, t})
	}
	i := 0
	for i < len(w.samples)-1 && now.Sub(w.samples[i].at) > rateSpan {
		i++
	}
	w.samples = w.samples[i:]
	old := w.samples[0]
	secs := now.Sub(old.at).Seconds()
	if secs <= 0 {
		return 0, 0, 0
	}
	return float64(t.received-old.t.received) / secs, float64(t.rows-old.t.rows) / secs, float64(t.rowsDropped-old.t.rowsDropped) / secs
}
