package delta

import (
	"context"
	"errors"

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
// without one, or when the cached snapshot holds more than
// maxHeldTombstones tombstones and a newer checkpoint exists, by loading the
// classic checkpoint _last_checkpoint names and the commits after it. ok is
// false when the caller has to list the log.
func (t *Table) latestByName(ctx context.Context) (*Snapshot, bool, error) {
	t.mu.Lock()
	cached := t.latest
	t.mu.Unlock()
	if cached == nil || len(cached.tombs) > maxHeldTombstones {
		if s, ok := t.loadFromLastCheckpoint(ctx, cached); ok {
			return s, true, nil
		}
		if cached == nil {
			return nil, false, nil
		}
	}
	last, infos, ok := t.probeCommits(ctx, cached.version)
	if !ok {
		return nil, false, nil
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

// probeCommits stats the commit files after version from until one is
// missing and returns the last version found with the files after from. ok
// is false on an error other than a missing file, or when more than
// maxNamedExtend commits follow (a listing finds a checkpoint among them).
func (t *Table) probeCommits(ctx context.Context, from int64) (last int64, infos map[int64]storage.FileInfo, ok bool) {
	infos = map[int64]storage.FileInfo{}
	for v := from + 1; ; v++ {
		fi, err := t.store.Stat(ctx, CommitPath(v))
		if errors.Is(err, storage.ErrNotExist) {
			return v - 1, infos, true
		}
		if err != nil || v-from > maxNamedExtend {
			return 0, nil, false
		}
		infos[v] = fi
	}
}

// loadFromLastCheckpoint loads the latest snapshot from the classic
// checkpoint _last_checkpoint names and the commits after it, found by
// name, when that checkpoint is newer than the one cached was loaded from
// (any, without a cached snapshot). ok is false when there is no such
// checkpoint or it cannot be read: the caller extends the cached snapshot
// or lists the log. A multi-part or V2 checkpoint is left to the listing.
func (t *Table) loadFromLastCheckpoint(ctx context.Context, cached *Snapshot) (*Snapshot, bool) {
	lc, ok := readLastCheckpoint(ctx, t.store)
	if !ok || lc.Parts != nil || (cached != nil && lc.Version <= cached.checkpointVersion) {
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
	last, infos, ok := t.probeCommits(ctx, lc.Version)
	if !ok {
		return nil, false
	}
	infos[lc.Version] = at
	l := &logListing{
		commits:     infos,
		checkpoints: []checkpointRef{{version: lc.Version, kind: kindCheckpointClassic, files: []storage.FileInfo{cp}}},
		minCommit:   lc.Version,
		maxCommit:   last,
		store:       t.store,
	}
	s, err := t.load(ctx, l, last)
	if err != nil || s.checkpointVersion != lc.Version {
		// An unreadable checkpoint: the listing finds an older one.
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
