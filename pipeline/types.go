package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/servicekit/pipelinesvc"
)

// ErrAborted is wrapped by a commit that lost a race: since the version its
// positions were read at, another writer stored a txn for one of the app ids
// it read. The batch must be dropped and positions read again. It is the
// control API's ErrAborted, so that a triggered commit maps to Aborted.
var ErrAborted = pipelinesvc.ErrAborted

// ErrNotRunning is returned by control calls made while the runner is not
// (or no longer) running.
var ErrNotRunning = pipelinesvc.ErrNotRunning

// ErrHalted is wrapped by a source's or hop's error that must stop the
// runner (a validation rule with action "fail"): the batch is dropped, the
// state becomes FAILED with the error as last_error, and the runner waits
// for Resume (after a fix) while it keeps serving status.
var ErrHalted = pipelinesvc.ErrHalted

// Txn is a source position as a target table stores it: every record of the
// source named by AppID up to and including Version is in the table (a Kafka
// offset for ingest, a table version for the table-following hops).
type Txn struct {
	AppID   string
	Version int64
}

// Positions is what the targets hold for a set of app ids.
type Positions struct {
	// Versions maps each app id that has a txn to its version; an app id
	// without one is absent.
	Versions map[string]int64
	// ReadVersion is the version every position in Versions is current at
	// (for a sink of several targets, the sink keeps each target's own);
	// a commit that relied on these positions reads at it.
	ReadVersion int64
}

// Cut is what a batch covers of its source, taken when the batch closes.
type Cut struct {
	// Txns are the batch's new positions, one per app id it advanced.
	Txns []Txn
	// ReadAppIDs are the app ids whose positions the batch relied on: a txn
	// for any of them committed by another writer since the positions were
	// read aborts the commit.
	ReadAppIDs []string
	// Token is the source's own bookkeeping, handed back to Ack.
	Token any
}

// Commit is one batch on its way to the targets.
type Commit[D any] struct {
	// ReadVersion is the version the positions were read at.
	ReadVersion int64
	Cut
	// Data is the batch's rows as the hop built them.
	Data D
	// Rows is the number of rows in Data.
	Rows int
}

// Committed describes a successful commit.
type Committed struct {
	// Version is the table version written (of the last target, for a
	// sink of several).
	Version int64
	Files   int
	Bytes   int64
}

// Batch is the hop's builder of the batch being filled: the source appends
// records to it in the hop's own terms; the runner reads its size, closes it
// and hands its data to the sink.
type Batch[D any] interface {
	// Rows and Bytes measure what has been appended since the last Flush.
	Rows() int
	Bytes() int
	// Newest is the event time of the newest row appended (zero if unknown).
	Newest() time.Time
	// Flush returns the rows appended so far and starts a new batch.
	Flush() D
	// Release frees what Flush returned, once the sink is done with it.
	Release(D)
	// Discard drops the rows appended since the last Flush.
	Discard()
}

// Sink stores batches in the target tables.
type Sink[D any] interface {
	// Positions returns the targets' positions for appIDs.
	Positions(ctx context.Context, appIDs []string) (Positions, error)
	// Commit writes c's data and commits it with c's txns. It returns an
	// error wrapping ErrAborted when a txn for one of c.ReadAppIDs was
	// committed after c.ReadVersion; any other error leaves the outcome
	// unknown. Either way the runner drops the batch and reads positions
	// again.
	Commit(ctx context.Context, c Commit[D]) (Committed, error)
}

// Host is what a source may ask of its runner. Its methods are called on
// the runner's goroutine only (from within Poll, Start or Seek).
type Host interface {
	// CommitNow commits the batch being built and waits for the outcome
	// (a source about to lose its input, e.g. a Kafka revocation).
	CommitNow(ctx context.Context, reason string) error
	// DropBatch discards the batch being built and waits for the commit in
	// flight, if any.
	DropBatch()
	// ReadPositions reads the targets' positions of appIDs, retrying until
	// it succeeds or ctx ends, and makes them the ones the next commit
	// relies on.
	ReadPositions(ctx context.Context, appIDs []string) (Positions, error)
	// ReportError records a problem of the source (e.g. Kafka unreachable)
	// in the status and makes the runner unhealthy until ReportOK.
	ReportError(err error)
	// ReportOK says the source's dependencies answer again.
	ReportOK()
	// Full reports whether the batch must close now (its row or byte
	// bound is reached); a source checks it after each record it appends.
	Full() bool
	// Link records a sampled record of the batch being built (l names the
	// span that started its trace; l's attributes describe the record): when
	// the batch closes, the record gets a span in its own trace linked to
	// the batch's commit span, which links back (up to the runner's
	// MaxLinks records per batch; the rest are not traced).
	Link(l trace.Link)
}

// Source feeds a runner's batch. Its methods are called on the runner's
// goroutine.
type Source interface {
	// Start connects to the source and begins reading.
	Start(ctx context.Context, h Host) error
	// Poll waits up to timeout for input, appends what is ready to the
	// batch, and returns; it returns early when h.Full(). An error wrapping
	// ErrHalted halts the runner; any other error ends it.
	Poll(ctx context.Context, timeout time.Duration) error
	// AppIDs are the app ids of the positions the source holds now.
	AppIDs() []string
	// Cut takes what the batch built since the last Cut covers.
	Cut() Cut
	// Ack records that c is in the targets (res says where): the source's
	// positions advance past it. It is called only by the runner's one
	// acknowledgement, after a successful commit.
	Ack(ctx context.Context, c Cut, res Committed)
	// Seek restarts reading right after pos (after a dropped batch).
	Seek(ctx context.Context, pos Positions) error
	// Pause and Resume stop and restart taking input.
	Pause() error
	Resume() error
	// Done reports whether a bounded source has delivered everything it
	// will (run-once); an unbounded one returns false.
	Done() bool
	// Refresh updates the source's own status snapshot (which its hop
	// reads from any goroutine) and returns how many records are not yet
	// in the targets (-1: unknown). The runner calls it about twice a
	// second and after every commit.
	Refresh() int64
	// Close releases the source; the batch is empty or committed.
	Close() error
}
