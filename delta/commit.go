package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/google/uuid"

	"github.com/plantlake/plantlake/delta/storage"
)

// Errors callers branch on when committing.
var (
	// ErrConflict is wrapped by *ConflictError: a concurrent commit won and
	// this commit's reads are no longer valid. Re-read and retry.
	ErrConflict = errors.New("delta: commit conflict")
	// ErrVersionExists is returned by Create when the table already exists,
	// and wrapped when a commit could not find a free version within its
	// retry budget.
	ErrVersionExists = errors.New("delta: version already exists")
	// ErrInvalidCommit is wrapped by errors about a commit request that is
	// wrong in itself (bad path, partition values that do not match the
	// table, a read version in the future); the message names the field.
	ErrInvalidCommit = errors.New("delta: invalid commit")
)

// ConflictError reports which concurrent commit this commit lost to, and why.
type ConflictError struct {
	// WinnerVersion is the version of the conflicting commit.
	WinnerVersion int64
	// Reason says which rule the winner broke for this commit.
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("delta: commit conflict with version %d: %s", e.WinnerVersion, e.Reason)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Writer features this library can commit to a table with.
var supportedWriterFeatures = map[string]bool{
	"appendOnly": true, "timestampNtz": true, "v2Checkpoint": true, "vacuumProtocolCheck": true,
	"inCommitTimestamp": true, "domainMetadata": true, "invariants": true,
}

// CommitRequest is one transaction: the actions to write and what the
// transaction read, for conflict detection.
type CommitRequest struct {
	// ReadVersion is the table version the transaction read (its snapshot).
	ReadVersion int64
	// Operation names the operation in commitInfo ("WRITE", "MERGE",
	// "OPTIMIZE", ...).
	Operation string
	// OperationParameters are recorded in commitInfo.
	OperationParameters map[string]string
	// Actions are the add, remove, txn and optional metaData and protocol
	// actions. commitInfo is written by Commit; one given here is refused.
	Actions []Action
	// BlindAppend is true for pure appends that read nothing: only adds
	// (and txns), no removes, no metadata change.
	BlindAppend bool
	// ReadAppIDs are the application ids whose txn version the transaction
	// read; the app ids of txn actions in Actions count as read too.
	ReadAppIDs []string
	// ReadFiles are the paths (as in the log) of files whose contents
	// decided this commit, e.g. the files a merge rewrote.
	ReadFiles []string
	// ReadWholeTable says the transaction read the whole table (e.g. a merge
	// that scanned every file): any file a concurrent commit added conflicts.
	ReadWholeTable bool
	// ReadPartitions, if set, are the partitions the transaction read (as
	// partition values); a concurrent add into one of them conflicts.
	ReadPartitions []map[string]string
	// MaxAttempts bounds how many versions the commit tries after losing
	// races to non-conflicting commits (default 1000).
	MaxAttempts int
	// EngineInfo is recorded in commitInfo.
	EngineInfo string
}

// readsSomething reports whether the transaction read table data, so that
// files added concurrently may change its outcome.
func (r *CommitRequest) readsSomething() bool {
	if r.rearrangesOnly() {
		return false
	}
	return r.ReadWholeTable || len(r.ReadFiles) > 0 || len(r.ReadPartitions) > 0
}

// rearrangesOnly reports whether every file action has dataChange=false
// (compaction): such a commit does not change what the table holds, so, as
// in Delta Lake, files added concurrently do not conflict with it.
func (r *CommitRequest) rearrangesOnly() bool {
	files := 0
	for _, a := range r.Actions {
		switch {
		case a.Add != nil:
			if a.Add.DataChange {
				return false
			}
			files++
		case a.Remove != nil:
			if a.Remove.DataChange {
				return false
			}
			files++
		case a.MetaData != nil, a.Protocol != nil:
			return false
		}
	}
	return files > 0
}

// checkWritable verifies this library may write a table with protocol p.
func checkWritable(p *Protocol) error {
	if p.MinWriterVersion > 7 || p.MinWriterVersion < 1 {
		return fmt.Errorf("%w: table needs writer version %d, this library writes 1 to 7", ErrUnsupportedProtocol, p.MinWriterVersion)
	}
	if p.MinWriterVersion == 7 {
		for _, f := range p.WriterFeatures {
			if !supportedWriterFeatures[f] {
				return &UnsupportedFeatureError{Feature: f, Detail: "writer feature not implemented"}
			}
		}
	}
	if p.MinWriterVersion >= 4 && p.MinWriterVersion < 7 {
		// Versions 4 to 6 imply change data feed, generated and identity
		// columns, which this library does not maintain.
		return fmt.Errorf("%w: writer version %d implies features this library does not maintain", ErrUnsupportedProtocol, p.MinWriterVersion)
	}
	return nil
}

// orderActions returns the actions in the order Commit writes them:
// protocol, metaData, txn, remove, add, others.
func orderActions(in []Action) []Action {
	rank := func(a *Action) int {
		switch {
		case a.Protocol != nil:
			return 0
		case a.MetaData != nil:
			return 1
		case a.Txn != nil:
			return 2
		case a.Remove != nil:
			return 3
		case a.Add != nil:
			return 4
		}
		return 5
	}
	out := append([]Action(nil), in...)
	sort.SliceStable(out, func(i, j int) bool { return rank(&out[i]) < rank(&out[j]) })
	return out
}

// Commit writes the request as the next version of the table and returns
// that version. It prepares the commit with PrepareCommit (so every check
// listed there applies), and if other commits landed after req.ReadVersion,
// it checks each against the conflict rules and, if none conflicts, commits
// after them; a conflict is a *ConflictError (errors.Is(err, ErrConflict)).
// The commit is durable when Commit returns nil.
func (t *Table) Commit(ctx context.Context, req CommitRequest) (int64, error) {
	h, err := t.headAtLeast(ctx, req.ReadVersion)
	if err != nil {
		return -1, err
	}
	p, err := PrepareCommit(req, h)
	if err != nil {
		return -1, err
	}
	cc := p.ConflictChecker(t.root, nil, false)
	maxAttempts := req.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 1000
	}
	// Winners already known to this Table.
	if h.Version > req.ReadVersion {
		winners, err := t.commitsRange(ctx, req.ReadVersion+1, h.Version)
		if err != nil {
			return -1, fmt.Errorf("delta: read concurrent commits: %w", err)
		}
		for i, w := range winners {
			if err := cc.Check(req.ReadVersion+1+int64(i), w); err != nil {
				return -1, err
			}
		}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		v := h.Version + 1
		enc, err := EncodeVersion(h, p.CommitInfo(), p.Actions(), t.now())
		if err != nil {
			return -1, err
		}
		err = t.store.PutIfAbsent(ctx, CommitPath(v), enc.Data)
		if err == nil {
			t.committed(v, enc.Actions, h)
			return v, nil
		}
		if !errors.Is(err, storage.ErrExists) {
			return -1, fmt.Errorf("delta: write commit %d: %w", v, err)
		}
		// Lost the race for v: check the winner and move on.
		winner, err := readCommit(ctx, t.store, v)
		if err != nil {
			return -1, fmt.Errorf("delta: read concurrent commit: %w", err)
		}
		t.remember(v, winner)
		h = t.advanceHead(h, v, winner)
		if err := cc.Check(v, winner); err != nil {
			return -1, err
		}
	}
	return -1, fmt.Errorf("%w: gave up after %d attempts, next version %d", ErrVersionExists, maxAttempts, h.Version+1)
}

// headAtLeast returns the table head, loading the latest snapshot when the
// Table knows no version at or after readVersion.
func (t *Table) headAtLeast(ctx context.Context, readVersion int64) (Head, error) {
	t.mu.Lock()
	h := t.head
	t.mu.Unlock()
	if h != nil && h.Version >= readVersion {
		return *h, nil
	}
	s, err := t.Snapshot(ctx)
	if err != nil {
		return Head{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.head == nil || t.head.Version < s.version {
		sh := s.Head()
		t.head = &sh
	}
	return *t.head, nil
}

// advanceHead returns the head after version v with actions acts.
func (t *Table) advanceHead(h Head, v int64, acts []Action) Head {
	n := h.Next(v, acts)
	t.mu.Lock()
	if t.head == nil || t.head.Version < v {
		t.head = &n
	}
	t.mu.Unlock()
	return n
}

// committed records a successful commit of version v.
func (t *Table) committed(v int64, acts []Action, h Head) {
	t.remember(v, acts)
	t.advanceHead(h, v, acts)
}

// Create writes version 0 of a new table: protocol and metadata. A zero
// Protocol picks the lowest that fits: (1,2), or (3,7) with the
// timestampNtz feature when the schema has timestamp_ntz columns. An empty
// metadata ID gets a new UUID. It fails with ErrVersionExists if the table
// already has a version 0.
func Create(ctx context.Context, store storage.Store, meta Metadata, proto Protocol, opts ...Option) (*Table, error) {
	t := Open(store, opts...)
	proto, err := PrepareCreate(&meta, proto)
	if err != nil {
		return nil, err
	}
	if meta.ID == "" {
		meta.ID = uuid.NewString()
	}
	now := t.now()
	if meta.CreatedTime == nil {
		ms := now.UnixMilli()
		meta.CreatedTime = &ms
	}
	blind := true
	ci := CommitInfo{Operation: "CREATE TABLE", IsolationLevel: "Serializable",
		IsBlindAppend: &blind, EngineInfo: "plantlake-delta",
		OperationParameters: map[string]string{"partitionBy": mustJSON(nonNil(meta.PartitionColumns))},
	}
	enc, err := EncodeVersion(Head{Version: -1}, ci, []Action{{Protocol: &proto}, {MetaData: &meta}}, now)
	if err != nil {
		return nil, err
	}
	if err := store.PutIfAbsent(ctx, CommitPath(0), enc.Data); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("%w: table already has version 0", ErrVersionExists)
		}
		return nil, fmt.Errorf("delta: create table: %w", err)
	}
	t.committed(0, enc.Actions, Head{Version: -1, Protocol: proto, Metadata: meta})
	return t, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
