package tablesource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/pipeline"
)

// Rows is the hop's side of a table source's batch: it derives its rows
// from the followed table's rows.
type Rows interface {
	// Append derives rows from rec, rows that version of the followed
	// table added, and adds them to the batch. rec is released when Append
	// returns. An error wrapping pipelinesvc.ErrHalted (a "fail" rule)
	// halts the runner; any other error drops the batch and the versions
	// are read again.
	Append(ctx context.Context, version int64, rec arrow.RecordBatch) error
}

// Traced is implemented by Rows whose rows may be sampled readings (rows
// with a W3C traceparent, see pipeline.LinkFromTraceparent): Start hands
// them the runner's Host.Link, which they call from Append, on the runner's
// goroutine, for each sampled row they add.
type Traced interface {
	SetLink(link func(trace.Link))
}

// SourceConfig says how a Source reads its Follower.
type SourceConfig struct {
	// AppID names the position in the targets' txns, e.g.
	// "deserialize/raw.plant_sensor_readings".
	AppID string
	// Columns are the columns to read (nil: all).
	Columns []string
	// Limit, when set, returns the highest version the next batch may
	// reach after the position after, so that a batch never spans a
	// target's position (tablesink.Multi.Limit); ok false means no limit.
	Limit func(appID string, after int64) (limit int64, ok bool)
	// Wait bounds one wait for new versions; the runner's poll timeout
	// bounds it too.
	Wait time.Duration
	// RunOnce makes the source Done once it found no newer version.
	RunOnce bool
}

// Source is the pipeline source of a followed table: a batch is whole
// versions, and its position is the last version whose rows it holds,
// stored as the targets' txn (app id SourceConfig.AppID).
type Source struct {
	f    *Follower
	cfg  SourceConfig
	rows Rows
	log  *slog.Logger

	// Owned by the runner's goroutine.
	host    pipeline.Host
	next    int64 // last version in the targets or the batch; -1: none
	acked   int64 // last version in the targets; -1: none
	batchTo int64 // last version in the batch; -1: none
	// batchFrom is the position the batch being built started after.
	batchFrom int64
	paused    bool
	idle      bool // the last Next found nothing new
	stop      context.CancelFunc
	done      chan error

	mu   sync.Mutex
	snap SourceStatus
}

// SourceStatus is the source's position for status reports.
type SourceStatus struct {
	// Position is the last version of the followed table in the targets (-1: none).
	Position int64
	// Latest is the followed table's latest version as last seen (-1: unknown).
	Latest int64
	// Listening is true while commit events wake the source.
	Listening bool
}

// NewSource returns a source reading f's table into rows.
func NewSource(f *Follower, cfg SourceConfig, rows Rows, log *slog.Logger) (*Source, error) {
	if cfg.AppID == "" {
		return nil, fmt.Errorf("%w: no app id", ErrInvalidConfig)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Second
	}
	return &Source{f: f, cfg: cfg, rows: rows, log: log, next: -1, acked: -1, batchTo: -1,
		snap: SourceStatus{Position: -1, Latest: -1}}, nil
}

// Start runs the follower's event listener and reads the position from the targets.
func (s *Source) Start(ctx context.Context, h pipeline.Host) error {
	s.host = h
	if t, ok := s.rows.(Traced); ok {
		t.SetLink(h.Link)
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.done = stop, make(chan error, 1)
	go func() { s.done <- s.f.Run(lctx) }()
	pos, err := h.ReadPositions(ctx, []string{s.cfg.AppID})
	if err != nil {
		return err
	}
	return s.Seek(ctx, pos)
}

// Close stops the event listener and waits for it.
func (s *Source) Close() error {
	if s.stop == nil {
		return nil
	}
	s.stop()
	if err := <-s.done; err != nil {
		return fmt.Errorf("table commit events of %s: %w", s.f.cfg.Table, err)
	}
	return nil
}

// Poll waits up to timeout for versions after the position and appends
// their rows to the batch, whole versions at a time.
func (s *Source) Poll(ctx context.Context, timeout time.Duration) error {
	if s.paused {
		select {
		case <-ctx.Done():
		case <-time.After(min(timeout, 100*time.Millisecond)):
		}
		return nil
	}
	if s.atTargetPosition() {
		// The batch ends where a target's position is: it must be
		// committed before versions past that position join it, or that
		// target would get the batch's rows again (see tablesink.Multi).
		if err := s.host.CommitNow(ctx, "target position"); err != nil {
			s.host.DropBatch()
			pos, err := s.host.ReadPositions(ctx, s.AppIDs())
			if err != nil {
				if ctx.Err() != nil {
					return nil // shutting down
				}
				return err
			}
			return s.Seek(ctx, pos)
		}
	}
	b, err := s.f.Next(ctx, s.next, min(timeout, s.cfg.Wait))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.host.ReportError(fmt.Errorf("follow %s: %w", s.f.cfg.Table, err))
		s.pause(ctx)
		return nil
	}
	s.host.ReportOK() // the catalog answered: healthy again after an error, also while idle
	s.idle = b.Empty()
	if b.Empty() {
		return nil
	}
	if s.cfg.Limit != nil {
		if lim, ok := s.cfg.Limit(s.cfg.AppID, s.next); ok && b.ToVersion > lim {
			b = truncate(b, lim)
		}
	}
	if b.Files() == 0 && s.batchTo < 0 {
		// Versions that add no rows (a compaction, a txn-only or metadata
		// commit) while no batch is being built: there is nothing to
		// commit, so the position moves past them here (a run-once ends,
		// the lag is 0). The targets' txns keep the last version that
		// added rows; after a restart these versions are read again, as
		// nothing.
		s.next, s.acked = b.ToVersion, b.ToVersion
		s.idle = true
		return nil
	}
	if err := b.Read(ctx, s.cfg.Columns, func(v int64, rec arrow.RecordBatch) error {
		return s.rows.Append(ctx, v, rec)
	}); err != nil {
		// Rows of the versions read so far are in the batch: drop it and
		// read again from the targets' position.
		s.host.DropBatch()
		s.next, s.batchTo = s.acked, -1
		if isHalt(err) {
			return err
		}
		if ctx.Err() == nil {
			s.host.ReportError(fmt.Errorf("read versions %d..%d of %s: %w", b.FromVersion, b.ToVersion, s.f.cfg.Table, err))
			s.log.Error("reading the followed table failed; retrying", "table", s.f.cfg.Table,
				"from", b.FromVersion, "to", b.ToVersion, "err", err)
			s.pause(ctx)
		}
		return nil
	}
	if s.batchTo < 0 {
		s.batchFrom = b.FromVersion - 1
	}
	s.next, s.batchTo = b.ToVersion, b.ToVersion
	s.host.ReportOK()
	return nil
}

// atTargetPosition reports whether the batch holds versions and ends at a
// target's position that lies inside it.
func (s *Source) atTargetPosition() bool {
	if s.cfg.Limit == nil || s.batchTo < 0 {
		return false
	}
	lim, ok := s.cfg.Limit(s.cfg.AppID, s.batchFrom)
	return ok && lim <= s.batchTo
}

// pause waits a little after an error, so that a persistent one (a
// vacuumed version, the catalog down) is retried without spinning.
func (s *Source) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

// isHalt reports whether err asks the runner to halt.
func isHalt(err error) bool { return errors.Is(err, pipeline.ErrHalted) }

// truncate keeps b's versions up to lim.
func truncate(b Batch, lim int64) Batch {
	out := b
	out.Versions, out.Rows, out.Bytes = nil, 0, 0
	for _, v := range b.Versions {
		if v.Version > lim {
			break
		}
		out.Versions = append(out.Versions, v)
		out.Rows += v.Rows
		out.Bytes += v.Bytes
	}
	out.ToVersion = lim
	return out
}

// AppIDs is the source's one app id.
func (s *Source) AppIDs() []string { return []string{s.cfg.AppID} }

// Cut takes the last version whose rows are in the batch.
func (s *Source) Cut() pipeline.Cut {
	c := pipeline.Cut{ReadAppIDs: []string{s.cfg.AppID}}
	if s.batchTo >= 0 {
		c.Txns = []pipeline.Txn{{AppID: s.cfg.AppID, Version: s.batchTo}}
		s.batchTo = -1
	}
	return c
}

// Ack moves the position past the committed versions.
func (s *Source) Ack(_ context.Context, c pipeline.Cut, _ pipeline.Committed) {
	for _, t := range c.Txns {
		if t.AppID == s.cfg.AppID && t.Version > s.acked {
			s.acked = t.Version
		}
	}
}

// Seek restarts reading after the targets' position.
func (s *Source) Seek(_ context.Context, pos pipeline.Positions) error {
	v, ok := pos.Versions[s.cfg.AppID]
	if !ok {
		v = -1
	}
	s.next, s.acked, s.batchTo = v, v, -1
	s.idle = false
	s.log.Info("following", "table", s.f.cfg.Table, "after_version", v, "app_id", s.cfg.AppID)
	return nil
}

// Pause stops reading new versions until Resume.
func (s *Source) Pause() error { s.paused = true; return nil }

// Resume undoes Pause.
func (s *Source) Resume() error { s.paused = false; return nil }

// Done reports, in run-once mode, that the last look found no newer version.
func (s *Source) Done() bool { return s.cfg.RunOnce && s.idle && s.batchTo < 0 }

// Refresh updates the status snapshot and returns the lag in versions.
func (s *Source) Refresh() int64 {
	st := s.f.Stats()
	latest := st.LatestVersion
	if latest >= 0 {
		// Events announce versions Next has not asked for yet (none while
		// paused).
		latest = max(latest, st.Announced)
	}
	lag := int64(-1)
	if latest >= 0 {
		lag = max(0, latest-s.acked)
	}
	s.mu.Lock()
	s.snap = SourceStatus{Position: s.acked, Latest: latest, Listening: st.Listening}
	s.mu.Unlock()
	return lag
}

// Status returns the position as of the last refresh.
func (s *Source) Status() SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}
