package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is what a runner needs to know besides its source, batch and sink.
type Config struct {
	// Name is the hop's name, for logs, spans and metric names ("ingest").
	Name string
	// Target names what the hop writes, for logs and spans (a table name).
	Target string
	// BatchMaxRows, BatchMaxBytes and BatchMaxAge close a batch: whichever
	// is reached first.
	BatchMaxRows  int
	BatchMaxBytes int
	BatchMaxAge   time.Duration
	// RunOnce makes Run return once the source is Done and its batch committed.
	RunOnce bool
	// MaxLinks caps the sampled records traced per batch: each gets a span
	// in its own trace linked to the batch's commit span, and the commit
	// span links back to it; records past the cap are not traced, so that
	// a sample rate of 1 cannot grow a batch's spans without bound.
	MaxLinks int
	// ShutdownTimeout bounds the final commit when the context ends.
	ShutdownTimeout time.Duration
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("name: empty")
	case c.BatchMaxRows <= 0:
		return fmt.Errorf("batch max rows: %d, want > 0", c.BatchMaxRows)
	case c.BatchMaxBytes <= 0:
		return fmt.Errorf("batch max bytes: %d, want > 0", c.BatchMaxBytes)
	case c.BatchMaxAge <= 0 || c.BatchMaxAge > 15*time.Minute:
		return fmt.Errorf("batch max age: %s, want in (0, 15m]", c.BatchMaxAge)
	}
	return nil
}

// Runner moves batches from a source to a sink: it builds one batch while
// at most one commit is in flight, closes a batch on size or age, and
// acknowledges it to the source only after the sink committed it (see
// ack.go). Create it with New, then call Run once; the control methods
// (Status, Pause, Resume, TriggerCommit) may be called from any goroutine.
type Runner[D any] struct {
	cfg     Config
	src     Source
	batch   Batch[D]
	sink    Sink[D]
	log     *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	// Owned by the Run goroutine.
	readVersion int64
	batchStart  time.Time
	links       []sampled
	paused      bool
	runCtx      context.Context
	now         time.Time
	fatal       error
	// halted is the error that halted the runner (state FAILED), if any.
	halted     error
	lastCommit commitSummary
	// inflight is the batch being committed in the background, if any.
	inflight *pendingCommit[D]
	totals   totals
	rates    rateWindow
	done     chan struct{}
	controls chan control

	statusMu sync.Mutex
	status   Status
}

// New returns a runner that fills batch from src and commits it to sink.
// metrics and tracer may be nil.
func New[D any](cfg Config, src Source, batch Batch[D], sink Sink[D], log *slog.Logger, metrics *Metrics, tracer trace.Tracer) (*Runner[D], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline config: %w", err)
	}
	if cfg.MaxLinks <= 0 {
		cfg.MaxLinks = 128
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if metrics == nil {
		metrics = NewMetrics(cfg.Name, nil)
	}
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer(cfg.Name)
	}
	return &Runner[D]{
		cfg:         cfg,
		src:         src,
		batch:       batch,
		sink:        sink,
		log:         log,
		metrics:     metrics,
		tracer:      tracer,
		readVersion: -1,
		controls:    make(chan control),
		done:        make(chan struct{}),
		status:      Status{State: StateStarting, LastCommit: CommitInfo{Version: -1}},
	}, nil
}

// Run reads and commits until ctx ends (or, in run-once mode, until the
// source is done), then commits the batch in flight and closes the source.
func (r *Runner[D]) Run(ctx context.Context) (err error) {
	defer close(r.done)
	r.runCtx = ctx
	if err := r.src.Start(ctx, host[D]{r}); err != nil {
		r.ReportError(err)
		r.setState(StateStopped)
		return err
	}
	defer func() {
		r.setState(StateStopped)
		// Close may run source callbacks (a Kafka revocation) that find
		// the batch empty; their context must outlive ctx.
		r.runCtx = context.WithoutCancel(ctx)
		if _, err := r.await(); err != nil {
			r.log.Info("last commit failed; its records are read again after a restart", "err", err)
		}
		if cerr := r.src.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	r.setState(StateRunning)

	lastRefresh := time.Time{}
	for {
		if ctx.Err() != nil {
			return r.shutdown(ctx)
		}
		if r.fatal != nil {
			return r.fatal
		}
		// Housekeeping runs between bursts of records, not per record.
		r.now = time.Now()
		select {
		case ctl := <-r.controls:
			ctl.run()
		default:
		}
		if r.batch.Rows() > 0 && r.batchStart.IsZero() {
			// The batch's age counts from the end of the poll that
			// brought its first record (a poll lasts at most a burst).
			r.batchStart = r.now
		}
		if r.batch.Rows() > 0 && (r.Full() || r.now.Sub(r.batchStart) >= r.cfg.BatchMaxAge) {
			reason := "age"
			if r.Full() {
				reason = "size"
			}
			r.commitInBackground(ctx, reason)
		}
		r.settleIfDone(ctx)
		if r.now.Sub(lastRefresh) >= 500*time.Millisecond {
			r.refreshStatus()
			lastRefresh = r.now
		}
		if r.cfg.RunOnce && r.src.Done() {
			if r.batch.Rows() > 0 || r.inflight != nil {
				r.ackOrReposition(ctx, "run-once")
				continue // an aborted commit re-reads positions: check again
			}
			r.refreshStatus()
			r.log.Info("run-once: caught up", "version", r.readVersion, "rows", r.totals.rows, "commits", r.totals.commits)
			return nil
		}
		if r.halted != nil {
			r.waitHalted(ctx)
			continue
		}
		if err := r.src.Poll(ctx, r.pollTimeout()); err != nil {
			if errors.Is(err, ErrHalted) {
				r.halt(err)
				continue
			}
			return err
		}
	}
}

// halt stops the runner on err (a "fail" rule): the batch is dropped, the
// state is FAILED with err as the last error, and nothing is read until
// Resume.
func (r *Runner[D]) halt(err error) {
	r.dropBatch()
	r.halted = err
	r.ReportError(err)
	r.setState(StateFailed)
	r.log.Error("halted; fix the cause, then Resume (or restart)", "err", err)
}

// waitHalted serves control calls while halted, until ctx ends.
func (r *Runner[D]) waitHalted(ctx context.Context) {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case ctl := <-r.controls:
		ctl.run()
	case <-ctx.Done():
	case <-t.C:
	}
}

// Full reports whether the batch reached its row or byte bound.
func (r *Runner[D]) Full() bool {
	return r.batch.Rows() >= r.cfg.BatchMaxRows || r.batch.Bytes() >= r.cfg.BatchMaxBytes
}

// pollTimeout is how long a poll may block: not past the batch's deadline.
func (r *Runner[D]) pollTimeout() time.Duration {
	const idle = 100 * time.Millisecond
	if r.batch.Rows() == 0 {
		return idle
	}
	if r.batchStart.IsZero() {
		return 0
	}
	left := r.cfg.BatchMaxAge - time.Since(r.batchStart)
	switch {
	case left <= 0:
		return 0
	case left < idle:
		return left + time.Millisecond
	}
	return idle
}

// shutdown commits the batch in flight under a fresh deadline.
func (r *Runner[D]) shutdown(ctx context.Context) error {
	r.setState(StateStopping)
	if r.batch.Rows() > 0 || r.inflight != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
		defer cancel()
		_, _ = r.ack(sctx, "shutdown") // on failure the records are read again after a restart
	}
	r.log.Info("stopped", "version", r.readVersion)
	return nil
}

// ReportError records err as the last error and makes the runner unhealthy
// until the next success. It may be called from any goroutine (e.g. by the
// code that opens the sink before Run).
func (r *Runner[D]) ReportError(err error) {
	r.statusMu.Lock()
	r.status.LastError = err.Error()
	r.status.LastErrorTime = time.Now()
	r.status.healthy = false
	r.statusMu.Unlock()
}

// reportOK marks the runner's dependencies as answering.
func (r *Runner[D]) reportOK() {
	r.statusMu.Lock()
	r.status.healthy = true
	r.statusMu.Unlock()
}

// Healthy reports whether the runner is running and its source and sink
// answered since the last error.
func (r *Runner[D]) Healthy() bool {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return r.status.healthy && (r.status.State == StateRunning || r.status.State == StatePaused)
}

// host is the runner as its source sees it.
type host[D any] struct{ r *Runner[D] }

func (h host[D]) CommitNow(ctx context.Context, reason string) error {
	_, err := h.r.ack(ctx, reason)
	return err
}
func (h host[D]) DropBatch() { h.r.dropBatch() }
func (h host[D]) ReadPositions(ctx context.Context, appIDs []string) (Positions, error) {
	return h.r.readPositions(ctx, appIDs)
}
func (h host[D]) ReportError(err error) { h.r.ReportError(err) }
func (h host[D]) ReportOK()             { h.r.reportOK() }
func (h host[D]) Full() bool            { return h.r.Full() }
func (h host[D]) Link(l trace.Link) {
	if len(h.r.links) < h.r.cfg.MaxLinks && l.SpanContext.IsValid() {
		h.r.links = append(h.r.links, sampled{link: l, at: time.Now()})
	}
}
