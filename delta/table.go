package delta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// Table is a Delta table in a store rooted at the table's folder. It is safe
// for concurrent use; it caches the latest snapshot and the table head that
// commits build on, and re-reads the log when asked for a snapshot.
type Table struct {
	store  storage.Store
	root   string
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	latest  *Snapshot // newest snapshot loaded, nil if none
	head    *Head
	recent  map[int64][]Action // commits parsed recently, for conflict checks
	maxKeep int
	// cleanedTo is the cutoff (ms) of the last metadata cleanup that ran
	// to its end: until the cutoff moves (once a day) another finds nothing.
	cleanedTo int64
}

// Option configures a Table.
type Option func(*Table)

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(t *Table) { t.logger = l } }

// WithClock sets the clock used for commit timestamps and retention (tests).
func WithClock(now func() time.Time) Option { return func(t *Table) { t.now = now } }

// Open returns the table whose folder is the root of store. It does no I/O;
// Snapshot fails with ErrNotATable if there is no Delta log.
func Open(store storage.Store, opts ...Option) *Table {
	t := &Table{store: store, logger: slog.Default(), now: time.Now, recent: map[int64][]Action{}, maxKeep: 256}
	if r, ok := store.(storage.Rooted); ok {
		t.root = path.Clean(strings.ReplaceAll(r.Root(), "\\", "/"))
		if r.Root() == "" {
			t.root = ""
		}
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Store returns the table's store.
func (t *Table) Store() storage.Store { return t.store }

// Snapshot loads the latest snapshot: by name when it can (see
// latestByName), else by listing the log.
func (t *Table) Snapshot(ctx context.Context) (*Snapshot, error) {
	if s, ok, err := t.latestByName(ctx); ok {
		return s, err
	}
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	return t.snapshotFrom(ctx, l, l.latestVersion())
}

// SnapshotAt loads the snapshot at version.
func (t *Table) SnapshotAt(ctx context.Context, version int64) (*Snapshot, error) {
	if s, ok, err := t.extendByName(ctx, version); ok {
		return s, err
	}
	if s, ok := t.snapshotAtByName(ctx, version); ok {
		return s, nil
	}
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	if version < 0 || version > l.latestVersion() {
		return nil, fmt.Errorf("%w: version %d (latest is %d)", ErrVersionNotFound, version, l.latestVersion())
	}
	if err := l.stat(ctx, version); err != nil {
		return nil, err
	}
	return t.snapshotFrom(ctx, l, version)
}

// snapshotFrom loads version v, reusing the cached snapshot when it is the
// same version or an older one that the listing can extend.
func (t *Table) snapshotFrom(ctx context.Context, l *logListing, v int64) (*Snapshot, error) {
	t.mu.Lock()
	cached := t.latest
	t.mu.Unlock()
	if cached != nil && cached.version == v {
		return cached, nil
	}
	var s *Snapshot
	var err error
	if cached != nil && cached.version < v && !newerCheckpoint(l, cached.version, v) && hasCommits(l, cached.version+1, v) {
		s, err = t.extend(ctx, l, cached, v)
	} else {
		s, err = t.load(ctx, l, v)
	}
	if err != nil {
		return nil, err
	}
	t.keep(s)
	return s, nil
}

// keep caches s as the latest snapshot and head when it is newer.
func (t *Table) keep(s *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latest == nil || s.version > t.latest.version {
		t.latest = s
	}
	if t.head == nil || s.version > t.head.Version {
		h := s.Head()
		t.head = &h
	}
}

// maxNamedExtend bounds how many commits past the cached snapshot
// SnapshotAt reads by name instead of listing the log: above the longest
// checkpoint interval a writer uses (the catalog's adaptive one is at most
// 1,000 versions), with room for the versions committed while maintenance
// waited its turn.
const maxNamedExtend = 4096

// extendByName extends the cached snapshot to version v by reading the
// commit files after it by their names (most are in the cache of recent
// commits) and stat-ing v's, without listing the log. A listing costs time
// in proportion to the whole log, about 1 s for the 170,000 commits a table
// committed every 500 ms has after a day, and a writer that checkpoints
// every few versions would pay it each time. ok is false when there is no
// cached snapshot at or before v within maxNamedExtend, or a commit file is
// missing (cleaned up): the caller then lists the log.
func (t *Table) extendByName(ctx context.Context, v int64) (s *Snapshot, ok bool, err error) {
	t.mu.Lock()
	cached := t.latest
	t.mu.Unlock()
	if cached == nil || v < cached.version || v-cached.version > maxNamedExtend {
		return nil, false, nil
	}
	if v == cached.version {
		return cached, true, nil
	}
	fi, err := t.store.Stat(ctx, CommitPath(v))
	if err != nil {
		return nil, false, nil
	}
	l := &logListing{commits: map[int64]storage.FileInfo{v: fi}, minCommit: v, maxCommit: v, store: t.store}
	return t.extendNamed(ctx, l, cached, v)
}

// extendNamed extends cached to v with the commits l found by name and
// caches the result. ok is false when a commit file between them is
// missing: the caller lists the log.
func (t *Table) extendNamed(ctx context.Context, l *logListing, cached *Snapshot, v int64) (s *Snapshot, ok bool, err error) {
	s, err = t.extend(ctx, l, cached, v)
	if errors.Is(err, ErrVersionNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	t.keep(s)
	return s, true, nil
}

func newerCheckpoint(l *logListing, after, upTo int64) bool {
	for _, c := range l.checkpoints {
		if c.version > after && c.version <= upTo {
			return true
		}
	}
	return false
}

// firstMissing returns the first version in [from, to] without a commit
// file, -1 if none is missing.
func firstMissing(l *logListing, from, to int64) int64 {
	for v := from; v <= to; v++ {
		if _, ok := l.commits[v]; !ok {
			return v
		}
	}
	return -1
}

func hasCommits(l *logListing, from, to int64) bool {
	for v := from; v <= to; v++ {
		if _, ok := l.commits[v]; !ok {
			return false
		}
	}
	return true
}

// extend applies commits after base up to v to a copy of base, without the
// base's expired tombstones.
func (t *Table) extend(ctx context.Context, l *logListing, base *Snapshot, v int64) (*Snapshot, error) {
	commits, err := t.commitsRange(ctx, base.version+1, v)
	if err != nil {
		return nil, err
	}
	st := newReplayState(t.root)
	p, m := base.protocol, base.metadata
	st.protocol, st.metadata = &p, &m
	st.files = make(map[string]*Add, len(base.files)+len(commits))
	for k, a := range base.files {
		st.files[k] = a
	}
	// The base's tombstones that expired are left behind, as a checkpoint
	// leaves them out: a writer extends its cached snapshot for as long as
	// it runs, and kept every tombstone since it started.
	expired := t.now().Add(-retention(&m, PropDeletedFileRetention, DefaultDeletedFileRetention)).UnixMilli()
	st.tombBase = base.tombBase
	st.tombs = make(map[string]*Remove, len(base.tombs))
	for k, r := range base.tombs {
		if r.DeletionTimestamp != nil && *r.DeletionTimestamp <= expired {
			continue
		}
		st.tombs[k] = r
	}
	for k, x := range base.txns {
		st.txns[k] = x
	}
	for _, c := range commits {
		st.applyCommit(c)
	}
	s, err := st.snapshot(v)
	if err != nil {
		return nil, err
	}
	s.checkpointVersion = base.checkpointVersion
	s.timestamp, err = t.commitTimestamp(ctx, l, &s.metadata, v, commits[len(commits)-1])
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Commits returns the actions of the commits from to to (both included),
// one slice a version in version order, each in the order of its commit
// file: what a reader that keeps state per file (a cache keyed by path)
// needs to follow the table from one snapshot to a later one without
// comparing whole file lists. Add and Remove actions are copies whose
// Path is canonical, as in Snapshot.Files (see CanonicalPath); the other
// actions and the maps every action holds are shared with the table's
// cache of recent commits: do not modify them. A version whose commit
// file is gone (cleaned up after a checkpoint) fails with
// ErrVersionNotFound.
func (t *Table) Commits(ctx context.Context, from, to int64) ([][]Action, error) {
	if from < 0 || to < from {
		return nil, fmt.Errorf("%w: commits %d to %d", ErrVersionNotFound, from, to)
	}
	commits, err := t.commitsRange(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out := make([][]Action, len(commits))
	for i, c := range commits {
		acts := make([]Action, len(c))
		for j, a := range c {
			switch {
			case a.Add != nil:
				add := *a.Add
				add.Path = CanonicalPath(add.Path, t.root)
				a.Add = &add
			case a.Remove != nil:
				rm := *a.Remove
				rm.Path = CanonicalPath(rm.Path, t.root)
				a.Remove = &rm
			}
			acts[j] = a
		}
		out[i] = acts
	}
	return out, nil
}

// commitsRange reads commits [from, to], using the recent-commit cache.
func (t *Table) commitsRange(ctx context.Context, from, to int64) ([][]Action, error) {
	out := make([][]Action, 0, to-from+1)
	t.mu.Lock()
	for v := from; v <= to; v++ {
		c, ok := t.recent[v]
		if !ok {
			break
		}
		out = append(out, c)
	}
	t.mu.Unlock()
	if int64(len(out)) == to-from+1 {
		return out, nil
	}
	rest, err := readCommits(ctx, t.store, from+int64(len(out)), to)
	if err != nil {
		return nil, err
	}
	return append(out, rest...), nil
}

// remember caches a parsed commit for conflict checks and snapshot updates.
func (t *Table) remember(v int64, acts []Action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recent[v] = acts
	if len(t.recent) > t.maxKeep {
		for k := range t.recent {
			if k < v-int64(t.maxKeep)/2 {
				delete(t.recent, k)
			}
		}
	}
}

// load reconstructs version v from the newest usable checkpoint at or
// before v and the commits after it.
func (t *Table) load(ctx context.Context, l *logListing, v int64) (*Snapshot, error) {
	rp, err := t.replay(ctx, l, v)
	if err != nil {
		return nil, err
	}
	s, err := rp.state.snapshot(v)
	if err != nil {
		return nil, fmt.Errorf("delta: snapshot at version %d: %w", v, err)
	}
	s.checkpointVersion = rp.cpVersion
	s.timestamp, err = t.commitTimestamp(ctx, l, &s.metadata, v, rp.last)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// replayed is the outcome of log replay up to one version, before any check
// of protocol or metadata.
type replayed struct {
	state     *replayState
	cpVersion int64    // checkpoint replay started from, -1 if none
	last      []Action // actions of the last commit read, nil if none
}

// replay applies the newest usable checkpoint at or before v and the
// commits after it, up to v. It does not require protocol or metadata.
func (t *Table) replay(ctx context.Context, l *logListing, v int64) (*replayed, error) {
	// The listing is authoritative: the newest complete checkpoint at or
	// before v in it wins. An unreadable checkpoint falls back to the next
	// older one.
	var cands []checkpointRef
	for i := len(l.checkpoints) - 1; i >= 0; i-- {
		c := l.checkpoints[i]
		if c.version <= v && hasCommits(l, c.version+1, v) {
			cands = append(cands, c)
		}
	}
	for _, c := range cands {
		acts, err := t.readCheckpoint(ctx, c, true)
		if err != nil {
			t.logger.Warn("delta: skipping unreadable checkpoint", "version", c.version, "err", err)
			continue
		}
		st := newReplayStateSized(t.root, len(acts))
		// The checkpoint's tombstones stay in it (see Snapshot.tombBase);
		// its removes never name a file it adds.
		kept := acts[:0]
		for _, a := range acts {
			if a.Remove == nil {
				kept = append(kept, a)
			}
		}
		st.applyOwned(kept)
		st.tombBase = &c
		return t.replayCommits(ctx, st, c.version, v)
	}
	if _, ok := l.commits[0]; !ok {
		// Replay needs commit 0 or a checkpoint; say which commit breaks
		// the chain from the newest checkpoint, if there is one.
		for i := len(l.checkpoints) - 1; i >= 0; i-- {
			if c := l.checkpoints[i]; c.version <= v {
				if gap := firstMissing(l, c.version+1, v); gap >= 0 {
					return nil, fmt.Errorf("%w: commit %d is missing between checkpoint %d and version %d", ErrInvalidLog, gap, c.version, v)
				}
			}
		}
		return nil, fmt.Errorf("%w: version %d cannot be reconstructed: no usable checkpoint at or before it and the commits from 0 are missing", ErrVersionNotFound, v)
	}
	if gap := firstMissing(l, 0, v); gap >= 0 {
		return nil, fmt.Errorf("%w: commit %d is missing between version 0 and version %d", ErrInvalidLog, gap, v)
	}
	return t.replayCommits(ctx, newReplayState(t.root), -1, v)
}

// replayCommits applies the commits after cpVersion up to v to st.
func (t *Table) replayCommits(ctx context.Context, st *replayState, cpVersion, v int64) (*replayed, error) {
	commits, err := readCommits(ctx, t.store, cpVersion+1, v)
	if err != nil {
		return nil, err
	}
	for _, c := range commits {
		st.applyCommit(c)
	}
	rp := &replayed{state: st, cpVersion: cpVersion}
	if len(commits) > 0 {
		rp.last = commits[len(commits)-1]
	}
	return rp, nil
}

// readCheckpoint reads every action of a checkpoint, following sidecars;
// with noRemoves, all but the removes.
func (t *Table) readCheckpoint(ctx context.Context, c checkpointRef, noRemoves bool) ([]Action, error) {
	var acts []Action
	for _, f := range c.files {
		var part []Action
		var err error
		if strings.HasSuffix(f.Path, ".json") {
			var b []byte
			b, err = t.store.ReadFile(ctx, f.Path)
			if err == nil {
				part, err = ParseActions(b)
			}
		} else {
			part, err = readParquetActions(ctx, t.store, f.Path, noRemoves)
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", f.Path, err)
		}
		if acts == nil {
			acts = part // the common single file: no copy
		} else {
			acts = append(acts, part...)
		}
	}
	var sidecars []Action
	for _, a := range acts {
		if a.Sidecar != nil {
			name := CanonicalPath(a.Sidecar.Path, "")
			name = name[strings.LastIndex(name, "/")+1:]
			sc, err := readParquetActions(ctx, t.store, sidecarDir+"/"+name, noRemoves)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d sidecar %s: %w", c.version, name, err)
			}
			sidecars = append(sidecars, sc...)
		}
	}
	return append(acts, sidecars...), nil
}

// commitTimestamp is the timestamp of version v: its in-commit timestamp
// when the table has them, else the commit file's modification time (or
// the checkpoint's, when the commit file is gone).
func (t *Table) commitTimestamp(ctx context.Context, l *logListing, m *Metadata, v int64, acts []Action) (time.Time, error) {
	if ictEnabled(m) && v >= ictEnablementVersion(m) {
		if acts == nil {
			var err error
			acts, err = readCommit(ctx, t.store, v)
			if err != nil && !errors.Is(err, ErrVersionNotFound) {
				return time.Time{}, err
			}
		}
		for _, a := range acts {
			if a.CommitInfo != nil && a.CommitInfo.InCommitTimestamp != nil {
				return millisTime(*a.CommitInfo.InCommitTimestamp), nil
			}
		}
	}
	if fi, ok := l.commits[v]; ok {
		return fi.ModTime.UTC(), nil
	}
	for _, c := range l.checkpoints {
		if c.version == v {
			return c.files[0].ModTime.UTC(), nil
		}
	}
	return time.Time{}, nil
}
