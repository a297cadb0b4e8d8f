package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/servicekit/backoff"
)

// A batch goes through two steps. closeBatch turns the batch's rows into a
// commit and starts it in the background, so that the next batch builds
// while the files are written and the catalog commits (one commit in flight
// at most: the next one must read the version this one makes). finish waits
// for that commit and is the one place where a batch is acknowledged.

// pendingCommit is a batch being committed in the background.
type pendingCommit[D any] struct {
	reason string
	rows   int
	size   int
	newest time.Time
	cut    Cut
	links  int
	span   trace.Span
	// records are the spans of the batch's sampled records, ended with
	// the commit's outcome.
	records []trace.Span
	start   time.Time
	done    chan commitResult
}

type commitResult struct {
	res     Committed
	err     error
	elapsed time.Duration
}

// closeBatch starts committing the batch's rows (nil if there are none).
// No other commit may be in flight: the commit reads r.readVersion.
func (r *Runner[D]) closeBatch(ctx context.Context, reason string) *pendingCommit[D] {
	rows := r.batch.Rows()
	if rows == 0 {
		return nil
	}
	p := &pendingCommit[D]{reason: reason, rows: rows, size: r.batch.Bytes(), newest: r.batch.Newest(), done: make(chan commitResult, 1)}
	p.cut = r.src.Cut()
	c := Commit[D]{ReadVersion: r.readVersion, Cut: p.cut, Data: r.batch.Flush(), Rows: rows}
	r.batchStart = time.Time{}
	ctx, p.span = r.tracer.Start(ctx, r.cfg.Name+".commit",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(batchLinks(r.links)...),
		trace.WithAttributes(
			attribute.String("plantlake.table", r.cfg.Target),
			attribute.String("plantlake.batch.reason", reason),
			attribute.Int("plantlake.batch.rows", rows),
			attribute.Int("plantlake.batch.txns", len(p.cut.Txns)),
			attribute.Int64("plantlake.batch.read_version", r.readVersion),
		))
	p.records = r.startRecordSpans(p.span, r.links)
	p.links = len(r.links)
	r.links = r.links[:0]
	p.start = time.Now()
	// The commit outlives a cancelled run context: shutdown waits for it
	// rather than leaving its outcome unknown. The sink bounds its time.
	ctx = context.WithoutCancel(ctx)
	go func() {
		res, err := r.sink.Commit(ctx, c)
		r.batch.Release(c.Data)
		p.done <- commitResult{res: res, err: err, elapsed: time.Since(p.start)}
	}()
	return p
}

// finish waits for p's commit and is the one place where a batch is
// acknowledged: only once the Delta commit that stores the batch's rows and
// its positions (txn actions) has succeeded does the source hear of it
// (Source.Ack), and so advance its positions (a Kafka source also commits
// the offsets to its consumer group, for lag tools only).
//
// A failed commit drops the batch, whatever the reason: if it lost a race,
// another worker owns a position now; if its outcome is unknown, it may be
// in the table already. Either way the caller reads the positions again
// (reposition) and the records are read again from there.
func (r *Runner[D]) finish(p *pendingCommit[D]) (Committed, error) {
	res := <-p.done
	defer p.span.End()
	r.now = time.Now()
	r.metrics.commitSeconds.Observe(res.elapsed.Seconds())
	if res.err != nil {
		outcome := "error"
		if errors.Is(res.err, ErrAborted) {
			outcome = "aborted"
		}
		r.metrics.commits.WithLabelValues(outcome).Inc()
		r.metrics.rowsDropped.Add(float64(p.rows))
		r.totals.failed++
		r.totals.rowsDropped += int64(p.rows)
		p.span.RecordError(res.err)
		p.span.SetStatus(codes.Error, outcome)
		endRecordSpans(p.records, -1, res.err)
		r.log.Warn("batch dropped", "reason", p.reason, "outcome", outcome, "rows", p.rows, "read_version", r.readVersion, "err", res.err)
		r.ReportError(res.err)
		return Committed{}, fmt.Errorf("commit %d rows (%s): %w", p.rows, p.reason, res.err)
	}
	c := res.res
	p.span.SetAttributes(attribute.Int64("plantlake.table.version", c.Version), attribute.Int("plantlake.batch.files", c.Files))
	endRecordSpans(p.records, c.Version, nil)

	r.src.Ack(r.runCtx, p.cut, c)

	r.readVersion = c.Version
	r.lastCommit = commitSummary{version: c.Version, rows: p.rows, files: c.Files, bytes: c.Bytes, at: r.now, elapsed: res.elapsed, newest: p.newest}
	r.totals.rows += int64(p.rows)
	r.totals.commits++
	r.reportOK()
	r.metrics.commits.WithLabelValues("ok").Inc()
	r.metrics.rowsCommitted.Add(float64(p.rows))
	r.metrics.bytesCommitted.Add(float64(p.size))
	r.metrics.filesCommitted.Add(float64(c.Files))
	r.metrics.rowsPerCommit.Observe(float64(p.rows))
	r.metrics.tableVersion.Set(float64(c.Version))
	r.metrics.lastCommitTime.Set(float64(r.now.UnixMilli()) / 1000)
	r.log.Debug("batch committed", "reason", p.reason, "version", c.Version, "rows", p.rows, "files", c.Files,
		"links", p.links, "elapsed", res.elapsed)
	return c, nil
}

// await finishes the commit in flight, if any.
func (r *Runner[D]) await() (Committed, error) {
	p := r.inflight
	if p == nil {
		return Committed{}, nil
	}
	r.inflight = nil
	return r.finish(p)
}

// triggered is what a synchronous commit wrote: the commit in flight and
// the batch, together.
type triggered struct {
	version int64
	rows    int64
}

// ack commits the batch and waits for the outcome, after finishing the
// commit in flight. If that one failed the batch is dropped unsent (its
// records follow the failed batch's) and the error returned.
func (r *Runner[D]) ack(ctx context.Context, reason string) (triggered, error) {
	var t triggered
	if p := r.inflight; p != nil {
		rows := p.rows
		if _, err := r.await(); err != nil {
			r.dropBatch()
			return triggered{}, err
		}
		t.rows += int64(rows)
	}
	t.version = r.readVersion
	p := r.closeBatch(ctx, reason)
	if p == nil {
		return t, nil
	}
	c, err := r.finish(p)
	r.refreshStatus()
	if err != nil {
		return triggered{}, err
	}
	t.version, t.rows = c.Version, t.rows+int64(p.rows)
	return t, nil
}

// ackOrReposition acks the batch and, if that fails, reads the positions
// again and seeks the source to them.
func (r *Runner[D]) ackOrReposition(ctx context.Context, reason string) (triggered, error) {
	t, err := r.ack(ctx, reason)
	if err != nil {
		if rerr := r.reposition(ctx); rerr != nil {
			r.fatal = rerr
		}
	}
	return t, err
}

// commitInBackground finishes the commit in flight and starts committing
// the batch without waiting for it. On failure it repositions.
func (r *Runner[D]) commitInBackground(ctx context.Context, reason string) {
	if !r.settle(ctx) {
		return
	}
	r.inflight = r.closeBatch(ctx, reason)
}

// settle finishes the commit in flight, if any, and reports whether it
// succeeded; on failure it repositions.
func (r *Runner[D]) settle(ctx context.Context) bool {
	if _, err := r.await(); err != nil {
		if rerr := r.reposition(ctx); rerr != nil {
			r.fatal = rerr
		}
		return false
	}
	return true
}

// settleIfDone acknowledges a background commit that has completed, so that
// the status, the metrics and the source's positions do not wait for the
// next batch to close when records stop coming.
func (r *Runner[D]) settleIfDone(ctx context.Context) {
	if r.inflight != nil && len(r.inflight.done) > 0 {
		r.settle(ctx)
		r.refreshStatus()
	}
}

// dropBatch discards the rows being built after waiting for the commit in
// flight; the source's positions are reset by the reposition (or Kafka
// assignment) that must follow.
func (r *Runner[D]) dropBatch() {
	if _, err := r.await(); err != nil {
		r.log.Info("commit in flight failed too", "err", err)
	}
	if n := r.batch.Rows(); n > 0 {
		r.metrics.rowsDropped.Add(float64(n))
		r.totals.rowsDropped += int64(n)
	}
	r.batch.Discard()
	r.src.Cut() // forget what the discarded rows covered
	r.batchStart = time.Time{}
	r.links = r.links[:0]
}

// reposition drops the batch, reads the source's positions from the
// targets, and seeks the source right after them.
func (r *Runner[D]) reposition(ctx context.Context) error {
	r.dropBatch()
	pos, err := r.readPositions(ctx, r.src.AppIDs())
	if err != nil {
		return err
	}
	if err := r.src.Seek(ctx, pos); err != nil {
		return fmt.Errorf("seek the source to the targets' positions: %w", err)
	}
	r.metrics.repositions.Inc()
	r.log.Info("repositioned from the targets", "app_ids", len(pos.Versions), "version", pos.ReadVersion)
	r.refreshStatus()
	return nil
}

// readPositions reads the targets' positions for appIDs, retrying with
// backoff until it succeeds or ctx ends, and makes their version the one
// the next commit reads at.
func (r *Runner[D]) readPositions(ctx context.Context, appIDs []string) (Positions, error) {
	var pos Positions
	err := backoff.Retry(ctx, backoff.Default, r.log, "read positions from "+r.cfg.Target, r.ReportError,
		func(ctx context.Context) error {
			var err error
			pos, err = r.sink.Positions(ctx, appIDs)
			return err
		})
	if err != nil {
		return Positions{}, err
	}
	r.readVersion = pos.ReadVersion
	r.reportOK()
	return pos, nil
}
