package ingester

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// commitSummary describes the engine's last successful commit.
type commitSummary struct {
	version int64
	rows    int
	files   int
	bytes   int64
	at      time.Time
	elapsed time.Duration
	// newest is the event time (bridge_ts, else Kafka timestamp) of the newest row committed.
	newest time.Time
}

// totals counts the engine's commits since start.
type totals struct {
	received    int64 // records appended to batches
	rows        int64 // rows committed
	commits     int64 // successful commits
	failed      int64 // failed commits
	rowsDropped int64 // rows of failed commits and lost assignments
	// pollWait is the time spent waiting in Poll for records to arrive.
	pollWait time.Duration
}

// A batch goes through two steps. closeBatch turns the builder's rows into
// a commit request and starts committing it in the background, so that the
// next batch builds while the files are written and fsynced and the catalog
// commits (one commit in flight at most: the next one must read the version
// this one makes). finish waits for that commit and acknowledges it.

// pendingCommit is a batch being committed in the background.
type pendingCommit struct {
	reason string
	rows   int
	size   int
	newest time.Time
	parts  []*partState // partitions with records in the batch
	lasts  []int64      // their last offsets in the batch
	counts []int        // their rows in the batch
	links  int
	span   trace.Span
	start  time.Time
	done   chan commitResult
}

type commitResult struct {
	res     rawtable.Committed
	err     error
	elapsed time.Duration
}

// closeBatch starts committing the builder's rows (nil if there are none).
// No other commit may be in flight: the request reads e.readVersion.
func (e *Engine) closeBatch(ctx context.Context, reason string) *pendingCommit {
	rows := e.builder.Rows()
	if rows == 0 {
		return nil
	}
	p := &pendingCommit{reason: reason, rows: rows, size: e.builder.Bytes(), newest: e.builder.Newest(), done: make(chan commitResult, 1)}
	commit := rawtable.Commit{ReadVersion: e.readVersion, Batches: e.builder.Flush(), Rows: rows}
	for _, ps := range e.sortedParts() {
		commit.ReadAppIDs = append(commit.ReadAppIDs, ps.appID)
		if ps.batchLast < 0 {
			continue
		}
		commit.Txns = append(commit.Txns, rawtable.Txn{AppID: ps.appID, Offset: ps.batchLast})
		p.parts = append(p.parts, ps)
		p.lasts = append(p.lasts, ps.batchLast)
		p.counts = append(p.counts, ps.batchRows)
		ps.batchLast, ps.batchRows = -1, 0
	}
	ctx, p.span = e.tracer.Start(ctx, "ingest.commit",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithLinks(e.links...),
		trace.WithAttributes(
			attribute.String("plantlake.table", rawtable.Name),
			attribute.String("plantlake.ingest.reason", reason),
			attribute.Int("plantlake.ingest.rows", rows),
			attribute.Int("plantlake.ingest.partitions", len(p.parts)),
			attribute.Int64("plantlake.ingest.read_version", e.readVersion),
		))
	p.links = len(e.links)
	e.links = e.links[:0]
	p.start = time.Now()
	// The commit outlives a cancelled run context: shutdown waits for it
	// rather than leaving its outcome unknown. The sink bounds its time.
	ctx = context.WithoutCancel(ctx)
	go func() {
		res, err := e.table.Commit(ctx, commit)
		for _, b := range commit.Batches {
			b.Record.Release()
		}
		p.done <- commitResult{res: res, err: err, elapsed: time.Since(p.start)}
	}()
	return p
}

// finish waits for p's commit and is the one place where a batch is
// acknowledged: only once the Delta commit that stores the batch's rows and
// its partitions' last offsets (txn actions) has succeeded do the
// partitions' table offsets advance and are the offsets committed to the
// consumer group (which nobody relies on but lag tools).
//
// A failed commit drops the batch, whatever the reason: if it lost a race
// another worker owns a partition now; if its outcome is unknown it may be
// in the table already. Either way the caller re-reads the positions
// (reposition) and the records are consumed again from there.
func (e *Engine) finish(p *pendingCommit) (rawtable.Committed, error) {
	r := <-p.done
	defer p.span.End()
	e.now = time.Now()
	e.metrics.commitSeconds.Observe(r.elapsed.Seconds())
	if r.err != nil {
		outcome := "error"
		if errors.Is(r.err, rawtable.ErrAborted) {
			outcome = "aborted"
		}
		e.metrics.commits.WithLabelValues(outcome).Inc()
		e.metrics.rowsDropped.Add(float64(p.rows))
		e.totals.failed++
		e.totals.rowsDropped += int64(p.rows)
		p.span.RecordError(r.err)
		p.span.SetStatus(codes.Error, outcome)
		e.log.Warn("batch dropped", "reason", p.reason, "outcome", outcome, "rows", p.rows, "read_version", e.readVersion, "err", r.err)
		e.setLastError(r.err)
		return rawtable.Committed{}, fmt.Errorf("commit %d rows (%s): %w", p.rows, p.reason, r.err)
	}
	res := r.res
	p.span.SetAttributes(attribute.Int64("plantlake.table.version", res.Version), attribute.Int("plantlake.ingest.files", res.Files))

	offsets := make([]kafka.TopicPartition, 0, len(p.parts))
	for i, ps := range p.parts {
		ps.tableOffset = p.lasts[i]
		ps.lastRows, ps.lastFiles, ps.lastVersion, ps.lastTime = p.counts[i], res.Files, res.Version, e.now
		offsets = append(offsets, kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition, Offset: kafka.Offset(p.lasts[i] + 1)})
	}
	e.readVersion = res.Version
	e.lastCommit = commitSummary{version: res.Version, rows: p.rows, files: res.Files, bytes: res.Bytes, at: e.now, elapsed: r.elapsed, newest: p.newest}
	e.totals.rows += int64(p.rows)
	e.totals.commits++
	e.metrics.commits.WithLabelValues("ok").Inc()
	e.metrics.rowsCommitted.Add(float64(p.rows))
	e.metrics.bytesCommitted.Add(float64(p.size))
	e.metrics.filesCommitted.Add(float64(res.Files))
	e.metrics.rowsPerCommit.Observe(float64(p.rows))
	e.metrics.tableVersion.Set(float64(res.Version))
	e.metrics.lastCommitTime.Set(float64(e.now.UnixMilli()) / 1000)
	e.log.Debug("batch committed", "reason", p.reason, "version", res.Version, "rows", p.rows, "files", res.Files,
		"links", p.links, "elapsed", r.elapsed)

	// For lag tools only; a failure here loses nothing.
	if _, err := e.consumer.CommitOffsets(offsets); err != nil {
		e.log.Debug("commit offsets to the consumer group", "err", err)
	}
	return res, nil
}

// await finishes the commit in flight, if any.
func (e *Engine) await() (rawtable.Committed, error) {
	p := e.inflight
	if p == nil {
		return rawtable.Committed{}, nil
	}
	e.inflight = nil
	return e.finish(p)
}

// ack commits the batch and waits for the outcome, after finishing the
// commit in flight. If that one failed the batch is dropped unsent (its
// records follow the failed batch's) and the error returned.
func (e *Engine) ack(ctx context.Context, reason string) (rawtable.Committed, error) {
	if _, err := e.await(); err != nil {
		e.dropBatch()
		return rawtable.Committed{}, err
	}
	p := e.closeBatch(ctx, reason)
	if p == nil {
		return rawtable.Committed{}, nil
	}
	res, err := e.finish(p)
	e.refreshStatus()
	return res, err
}

// ackOrReposition acks the batch and, if that fails, re-reads the
// positions of the assigned partitions and seeks to them.
func (e *Engine) ackOrReposition(ctx context.Context, reason string) (rawtable.Committed, error) {
	res, err := e.ack(ctx, reason)
	if err != nil {
		if rerr := e.reposition(ctx); rerr != nil {
			e.fatal = rerr
		}
	}
	return res, err
}

// commitInBackground finishes the commit in flight and starts committing
// the batch without waiting for it. On failure it repositions.
func (e *Engine) commitInBackground(ctx context.Context, reason string) {
	if !e.settle(ctx) {
		return
	}
	e.inflight = e.closeBatch(ctx, reason)
}

// settle finishes the commit in flight, if any, and reports whether it
// succeeded; on failure it repositions.
func (e *Engine) settle(ctx context.Context) bool {
	if _, err := e.await(); err != nil {
		if rerr := e.reposition(ctx); rerr != nil {
			e.fatal = rerr
		}
		return false
	}
	return true
}

// settleIfDone acknowledges a background commit that has completed, so that
// the status, the metrics and the group's offsets do not wait for the next
// batch to close when records stop coming.
func (e *Engine) settleIfDone(ctx context.Context) {
	if e.inflight != nil && len(e.inflight.done) > 0 {
		e.settle(ctx)
		e.refreshStatus()
	}
}

// dropBatch discards the rows being built; the partitions' next offsets
// are reset by the reposition or assignment that must follow.
func (e *Engine) dropBatch() {
	if n := e.builder.Rows(); n > 0 {
		e.metrics.rowsDropped.Add(float64(n))
		e.totals.rowsDropped += int64(n)
	}
	e.builder.Discard()
	e.links = e.links[:0]
	for _, ps := range e.parts {
		ps.batchLast, ps.batchRows = -1, 0
	}
}

// reposition drops the batch, reads every assigned partition's offset
// from the table, and seeks each partition to the offset after it.
func (e *Engine) reposition(ctx context.Context) error {
	if _, err := e.await(); err != nil {
		e.log.Info("commit in flight failed too", "err", err)
	}
	e.dropBatch()
	parts := e.sortedParts()
	if len(parts) == 0 {
		return nil
	}
	appIDs := make([]string, len(parts))
	for i, ps := range parts {
		appIDs[i] = ps.appID
	}
	pos, err := e.positions(ctx, appIDs)
	if err != nil {
		return err
	}
	seeks := make([]kafka.TopicPartition, len(parts))
	var resume []kafka.TopicPartition
	for i, ps := range parts {
		wasDone := ps.done
		seeks[i] = e.applyPosition(ps, pos)
		if wasDone && !ps.done && !e.paused {
			resume = append(resume, seeks[i])
		}
	}
	e.readVersion = pos.Version
	e.metrics.repositions.Inc()
	if _, err := e.consumer.SeekPartitions(seeks); err != nil {
		return fmt.Errorf("seek %d partitions to the table's offsets: %w", len(seeks), err)
	}
	if len(resume) > 0 {
		if err := e.consumer.Resume(resume); err != nil {
			return fmt.Errorf("resume partitions: %w", err)
		}
	}
	e.log.Info("repositioned from the table", "partitions", len(parts), "version", pos.Version)
	e.refreshStatus()
	return nil
}

// applyPosition sets ps from the table's positions and returns where to
// start consuming it.
func (e *Engine) applyPosition(ps *partState, pos rawtable.Positions) kafka.TopicPartition {
	tp := kafka.TopicPartition{Topic: &ps.key.topic, Partition: ps.key.partition, Offset: kafka.OffsetBeginning}
	ps.tableOffset, ps.next = -1, 0
	if off, ok := pos.Offsets[ps.appID]; ok {
		ps.tableOffset, ps.next = off, off+1
		tp.Offset = kafka.Offset(off + 1)
	}
	ps.batchLast, ps.batchRows = -1, 0
	if e.cfg.RunOnce {
		ps.target = e.targets[ps.key]
		ps.done = ps.next >= ps.target
	}
	return tp
}

// positions reads the table's offsets for appIDs, retrying with backoff
// until it succeeds or ctx ends.
func (e *Engine) positions(ctx context.Context, appIDs []string) (rawtable.Positions, error) {
	backoff := 100 * time.Millisecond
	for {
		pos, err := e.table.Positions(ctx, appIDs)
		if err == nil {
			return pos, nil
		}
		if ctx.Err() != nil {
			return rawtable.Positions{}, fmt.Errorf("read partition offsets from the raw table: %w", err)
		}
		e.log.Warn("read partition offsets from the raw table; retrying", "err", err, "backoff", backoff)
		e.setLastError(err)
		select {
		case <-ctx.Done():
			return rawtable.Positions{}, fmt.Errorf("read partition offsets from the raw table: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// sortedParts returns the assigned partitions in topic, partition order.
func (e *Engine) sortedParts() []*partState {
	out := make([]*partState, 0, len(e.parts))
	for _, ps := range e.parts {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b *partState) int {
		if a.key.topic != b.key.topic {
			if a.key.topic < b.key.topic {
				return -1
			}
			return 1
		}
		return int(a.key.partition - b.key.partition)
	})
	return out
}
