package delta

import (
	"context"
	"errors"
	"fmt"

	"github.com/plantlake/plantlake/delta/storage"
)

// A listing of _delta_log costs time and memory in proportion to the whole
// log, and a pipeline table keeps 30 days of a commit every 500 ms: a day
// old, a listing of one took 0.93 s and 136 MB of garbage
// (BenchmarkDayOldTableSnapshot), a month old it would be millions of
// names. The hops ask for the latest snapshot of the table they follow for
// every batch, so Table.Snapshot finds the latest version by name: commit
// files are contiguous (each is created only if absent, after the one
// before it), so the first missing name after a known commit ends the log.
// The log is listed only when there is no way by name (no usable
// _last_checkpoint, a checkpoint that cannot be read, a commit missing
// where one must be), and the listing stays the authority then.

// maxHeldTombstones is how many tombstones a snapshot extended commit by
// commit holds before Snapshot loads afresh from the checkpoint
// _last_checkpoint names. A reader never writes the checkpoint that would
// let it drop the tombstones it replayed (see Snapshot.tombBase), and every
// extension copies them: a compacting table makes ~170,000 a day. A
// variable so that tests can lower it.
var maxHeldTombstones = 20_000

// latestByName returns the latest snapshot without listing the log: from
// the cached snapshot, by stat-ing the commit files after it one by one;
// without one, when the cached snapshot holds more than maxHeldTombstones
// tombstones, or when it is more than farBehind commits behind, by loading
// the classic checkpoint _last_checkpoint names (if it is newer) and the
// commits after it. ok is false when the caller has to list the log.
func (t *Table) latestByName(ctx context.Context) (*Snapshot, bool, error) {
	t.mu.Lock()
	cached := t.latest
	t.mu.Unlock()
	if cached == nil || len(cached.tombs) > maxHeldTombstones {
		after := int64(-1)
		if cached != nil {
			after = cached.checkpointVersion
		}
		if s, ok := t.loadFromLastCheckpoint(ctx, after); ok {
			return s, true, nil
		}
		if cached == nil {
			return nil, false, nil
		}
	}
	last, infos, ok := t.probeCommits(ctx, cached.version, farBehind)
	if !ok {
		// Far behind: a checkpoint after the cached version saves reading
		// every commit (and on an object store a request for each name).
		if s, ok := t.loadFromLastCheckpoint(ctx, cached.version); ok {
			return s, true, nil
		}
		if last, infos, ok = t.probeCommits(ctx, cached.version, maxNamedExtend); !ok {
			return nil, false, nil
		}
	}
	if last == cached.version {
		// The cached version's own commit must still be there: a table
		// deleted (or replaced) under the reader is the listing's to report.
		if _, err := t.store.Stat(ctx, CommitPath(last)); err != nil {
			return nil, false, nil
		}
		return cached, true, nil
	}
	l := &logListing{commits: infos, minCommit: cached.version + 1, maxCommit: last, store: t.store}
	return t.extendNamed(ctx, l, cached, last)
}

// farBehind is how many commits past its cached snapshot a reader stats one
// by one before it looks for a newer checkpoint to load from instead.
const farBehind = 64

// probeCommits stats the commit files after version from until one is
// missing and returns the last version found with the files after from. ok
// is false on an error other than a missing file, or when more than limit
// commits follow.
func (t *Table) probeCommits(ctx context.Context, from, limit int64) (last int64, infos map[int64]storage.FileInfo, ok bool) {
	infos = map[int64]storage.FileInfo{}
	for v := from + 1; ; v++ {
		fi, err := t.store.Stat(ctx, CommitPath(v))
		if errors.Is(err, storage.ErrNotExist) {
			return v - 1, infos, true
		}
		if err != nil || v-from > limit {
			return 0, nil, false
		}
		infos[v] = fi
	}
}

// loadFromLastCheckpoint loads the latest snapshot from the classic
// checkpoint _last_checkpoint names and the commits after it, found by
// name, when that checkpoint's version is after after. ok is false when
// there is no such checkpoint or it cannot be read: the caller extends its
// cached snapshot or lists the log. A multi-part or V2 checkpoint is left
// to the listing.
func (t *Table) loadFromLastCheckpoint(ctx context.Context, after int64) (*Snapshot, bool) {
	lc, ok := readLastCheckpoint(ctx, t.store)
	if !ok || lc.Parts != nil || lc.Version <= after {
		return nil, false
	}
	cp, err := t.store.Stat(ctx, CheckpointPath(lc.Version))
	if err != nil {
		return nil, false
	}
	// The checkpoint's own commit gives the snapshot its timestamp when no
	// commit follows; it is kept as long as the checkpoint is.
	at, err := t.store.Stat(ctx, CommitPath(lc.Version))
	if err != nil {
		return nil, false
	}
	last, infos, ok := t.probeCommits(ctx, lc.Version, maxNamedExtend)
	if !ok {
		return nil, false
	}
	infos[lc.Version] = at
	cpRef := checkpointRef{version: lc.Version, kind: kindCheckpointClassic, files: []storage.FileInfo{cp}}
	return t.loadNamed(ctx, &cpRef, infos, last)
}

// loadNamed loads version v from the classic checkpoint cp (nil: from
// commit 0) and the commit files infos holds from cp's version (or 0) to v,
// found by name, and caches it unless a newer snapshot is cached: one at
// the same version is replaced, so that a reader reloading to shed
// tombstones keeps the reload. ok is false when the load fails or fell
// back from cp (an unreadable checkpoint): the caller lists the log.
func (t *Table) loadNamed(ctx context.Context, cp *checkpointRef, infos map[int64]storage.FileInfo, v int64) (*Snapshot, bool) {
	l := &logListing{commits: infos, minCommit: 0, maxCommit: v, store: t.store}
	from := int64(-1)
	if cp != nil {
		l.checkpoints = []checkpointRef{*cp}
		l.minCommit, from = cp.version, cp.version
	}
	s, err := t.load(ctx, l, v)
	if err != nil || s.checkpointVersion != from {
		return nil, false
	}
	t.mu.Lock()
	if t.latest == nil || s.version >= t.latest.version {
		t.latest = s
	}
	t.mu.Unlock()
	t.keep(s)
	return s, true
}

// oldestCommit finds the log's oldest commit by binary search over
// [0, latest], stat-ing commit files: the log is contiguous from its oldest
// commit to its latest. ok is false when latest's own commit is missing.
func (t *Table) oldestCommit(ctx context.Context, latest int64) (oldest int64, ok bool, err error) {
	exists := func(v int64) (bool, error) {
		_, err := t.store.Stat(ctx, CommitPath(v))
		if errors.Is(err, storage.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("delta: stat commit %d: %w", v, err)
		}
		return true, nil
	}
	if found, err := exists(latest); err != nil || !found {
		return 0, false, err
	}
	lo, hi := int64(0), latest
	for lo < hi {
		mid := lo + (hi-lo)/2
		found, err := exists(mid)
		if err != nil {
			return 0, false, err
		}
		if found {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true, nil
}

// snapshotAtByName loads version v without listing the log: from the
// newest classic checkpoint at or before v, found by stat-ing its name down
// from v (within maxNamedExtend versions), or from commit 0 when v is
// within that many versions of it, and the commits after it up to v. The
// snapshot is cached when it is the newest loaded. ok is false when a file
// is missing or a checkpoint unreadable: the caller lists the log.
func (t *Table) snapshotAtByName(ctx context.Context, v int64) (*Snapshot, bool) {
	if v < 0 {
		return nil, false
	}
	if _, err := t.store.Stat(ctx, CommitPath(v)); err != nil {
		return nil, false // past the latest, cleaned up, or a store error
	}
	var cp *checkpointRef
	for u := v; u > 0 && v-u <= maxNamedExtend; u-- {
		fi, err := t.store.Stat(ctx, CheckpointPath(u))
		if err == nil {
			cp = &checkpointRef{version: u, kind: kindCheckpointClassic, files: []storage.FileInfo{fi}}
			break
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return nil, false
		}
	}
	from := int64(0)
	if cp != nil {
		from = cp.version
	} else if v > maxNamedExtend {
		return nil, false
	}
	infos := map[int64]storage.FileInfo{}
	for u := from; u <= v; u++ {
		fi, err := t.store.Stat(ctx, CommitPath(u))
		if err != nil {
			return nil, false
		}
		infos[u] = fi
	}
	return t.loadNamed(ctx, cp, infos, v)
}
