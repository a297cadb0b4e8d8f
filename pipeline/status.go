package pipeline

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// State is a runner's lifecycle state.
type State string

// States.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	// StateFailed: halted by a "fail" rule; waits for Resume.
	StateFailed State = "failed"
)

// Status is a snapshot of a runner, refreshed about twice a second and
// after every commit.
type Status struct {
	State State
	// ReadVersion is the target table version the positions are current at.
	ReadVersion int64
	BatchRows   int
	BatchBytes  int
	// Totals since start.
	Received      int64 // records taken into batches
	RowsCommitted int64
	RowsDropped   int64 // rows of failed commits, read again
	Commits       int64
	FailedCommits int64
	// Rates per second over about the last minute.
	ReceivedPerSecond, CommittedPerSecond, DroppedPerSecond float64
	LastCommit                                              CommitInfo
	// Lag is what the source reports not yet in the targets (-1: unknown).
	Lag           int64
	LastError     string
	LastErrorTime time.Time
	UpdatedAt     time.Time
	// NewestDataTime is the event time of the newest committed row.
	NewestDataTime time.Time

	healthy bool
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

// commitSummary describes the runner's last successful commit.
type commitSummary struct {
	version int64
	rows    int
	files   int
	bytes   int64
	at      time.Time
	elapsed time.Duration
	newest  time.Time
}

// totals counts the runner's work since start.
type totals struct {
	received    int64
	rows        int64
	commits     int64
	failed      int64
	rowsDropped int64
}

// Status returns the latest snapshot of the runner's state.
func (r *Runner[D]) Status() Status {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return r.status
}

// Proto returns the common fields of the control API's status for the hop
// named service, with started as the process start; the hop adds its detail.
func (s Status) Proto(service string, position string, started time.Time) *pipelinev1.Status {
	out := &pipelinev1.Status{
		Service:  service,
		State:    s.protoState(),
		Position: position,
		Lag:      s.Lag,
		Counts: &pipelinev1.Counts{
			Received: s.Received,
			Written:  s.RowsCommitted,
			Failed:   s.RowsDropped,
			Commits:  s.Commits,
		},
		Rates: &pipelinev1.Rates{
			ReceivedPerSecond: s.ReceivedPerSecond,
			WrittenPerSecond:  s.CommittedPerSecond,
			FailedPerSecond:   s.DroppedPerSecond,
		},
		LastError: s.LastError,
		StartTime: timestamppb.New(started),
	}
	if !s.LastErrorTime.IsZero() {
		out.LastErrorTime = timestamppb.New(s.LastErrorTime)
	}
	if !s.NewestDataTime.IsZero() {
		out.NewestDataAge = durationpb.New(time.Since(s.NewestDataTime))
	}
	return out
}

// Position formats a table position for the status: table@vN.
func Position(table string, version int64) string { return fmt.Sprintf("%s@v%d", table, version) }

// protoState maps the state; a recent error while running is DEGRADED.
func (s Status) protoState() pipelinev1.State {
	switch s.State {
	case StateStarting:
		return pipelinev1.State_STATE_STARTING
	case StatePaused:
		return pipelinev1.State_STATE_PAUSED
	case StateStopping, StateStopped:
		return pipelinev1.State_STATE_STOPPING
	case StateFailed:
		return pipelinev1.State_STATE_FAILED
	}
	if !s.LastErrorTime.IsZero() && s.LastErrorTime.After(s.LastCommit.Time) {
		return pipelinev1.State_STATE_DEGRADED
	}
	return pipelinev1.State_STATE_RUNNING
}

func (r *Runner[D]) setState(st State) {
	r.statusMu.Lock()
	r.status.State = st
	r.statusMu.Unlock()
}

// refreshStatus rebuilds the snapshot from the Run goroutine's state.
func (r *Runner[D]) refreshStatus() {
	lag := r.src.Refresh()
	r.metrics.batchRows.Set(float64(r.batch.Rows()))
	now := time.Now()

	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	s := &r.status
	if s.State == StateRunning && r.paused {
		s.State = StatePaused
	} else if s.State == StatePaused && !r.paused {
		s.State = StateRunning
	}
	s.ReadVersion = r.readVersion
	s.BatchRows, s.BatchBytes = r.batch.Rows(), r.batch.Bytes()
	r.totals.received = r.totals.rows + r.totals.rowsDropped + int64(s.BatchRows) + r.inflightRows()
	s.Received, s.RowsCommitted, s.RowsDropped = r.totals.received, r.totals.rows, r.totals.rowsDropped
	s.Commits, s.FailedCommits = r.totals.commits, r.totals.failed
	s.ReceivedPerSecond, s.CommittedPerSecond, s.DroppedPerSecond = r.rates.update(now, r.totals)
	lc := r.lastCommit
	s.LastCommit = CommitInfo{Version: lc.version, Rows: lc.rows, Files: lc.files, Bytes: lc.bytes, Time: lc.at, Duration: lc.elapsed}
	if lc.rows == 0 {
		s.LastCommit.Version = -1
	}
	s.Lag = lag
	s.UpdatedAt = now
	s.NewestDataTime = lc.newest
}

func (r *Runner[D]) inflightRows() int64 {
	if r.inflight == nil {
		return 0
	}
	return int64(r.inflight.rows)
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
