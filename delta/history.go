package delta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// CommitRecord is one entry of a table's history.
type CommitRecord struct {
	Version   int64
	Timestamp time.Time
	// CommitInfo is the commit's commitInfo action, nil if it has none.
	CommitInfo *CommitInfo
}

// earliestVersion is the oldest version the listing can reconstruct.
func (l *logListing) earliestVersion() int64 {
	latest := l.latestVersion()
	lowest := latest
	for lowest-1 >= 0 {
		if _, ok := l.commits[lowest-1]; !ok {
			break
		}
		lowest--
	}
	// Commits lowest..latest exist (when lowest < latest or latest is a commit).
	if lowest == 0 {
		if _, ok := l.commits[0]; ok {
			return 0
		}
	}
	for _, c := range l.checkpoints {
		if c.version >= lowest-1 {
			return c.version
		}
	}
	return latest
}

// modTimes returns monotonized file timestamps (ms) for versions
// [from, to]: a version's time is at least its predecessor's plus 1 ms, as
// Delta Lake adjusts non-monotonic file times.
func (l *logListing) modTimes(from, to int64) []int64 {
	out := make([]int64, 0, to-from+1)
	prev := int64(-1 << 62)
	for v := from; v <= to; v++ {
		var ms int64
		if fi, ok := l.commits[v]; ok {
			ms = fileMillis(fi)
		} else {
			for _, c := range l.checkpoints {
				if c.version == v {
					ms = fileMillis(c.files[0])
				}
			}
		}
		if ms <= prev {
			ms = prev + 1
		}
		out = append(out, ms)
		prev = ms
	}
	return out
}

// inCommitTimestamp reads version v's in-commit timestamp.
func (t *Table) inCommitTimestamp(ctx context.Context, v int64) (int64, error) {
	acts, err := readCommit(ctx, t.store, v)
	if err != nil {
		return 0, err
	}
	for _, a := range acts {
		if a.CommitInfo != nil && a.CommitInfo.InCommitTimestamp != nil {
			return *a.CommitInfo.InCommitTimestamp, nil
		}
	}
	return 0, fmt.Errorf("%w: commit %d has no inCommitTimestamp", ErrInvalidLog, v)
}

// SnapshotAsOf loads the snapshot of the latest commit at or before ts.
// Commit times are in-commit timestamps on tables that have them, else the
// commit files' modification times. As in Delta Lake, a timestamp before
// the earliest reconstructable version is ErrTimestampBeforeFirst and one
// after the latest commit is ErrTimestampAfterLatest (use Snapshot for the
// latest state).
func (t *Table) SnapshotAsOf(ctx context.Context, ts time.Time) (*Snapshot, error) {
	if s, ok, err := t.snapshotAsOfByName(ctx, ts); ok {
		return s, err
	}
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	if err := l.statAll(ctx); err != nil {
		return nil, err
	}
	latestSnap, err := t.snapshotFrom(ctx, l, l.latestVersion())
	if err != nil {
		return nil, err
	}
	fileTimes := func(lo, hi int64) func(int64) (int64, error) {
		times := l.modTimes(lo, hi)
		return func(v int64) (int64, error) { return times[v-lo], nil }
	}
	v, err := t.versionAsOf(ctx, latestSnap, l.earliestVersion(), ts, fileTimes)
	if err != nil {
		return nil, err
	}
	return t.snapshotFrom(ctx, l, v)
}

// snapshotAsOfByName is SnapshotAsOf of a log longer than cleanupByNameFrom
// versions, without listing it: the latest version from Snapshot, the
// oldest commit by binary search (oldestCommit), the earliest version the
// oldest classic checkpoint at or after it (by name), and the commit times
// stat-ed as the binary search needs them. A file time is the file's own,
// not made monotonic from the oldest version (that takes every one of
// them): on a log whose file times go back, the answer can differ from a
// listed one by the versions around the step. ok is false for a shorter
// log or when a file is missing: the caller lists.
func (t *Table) snapshotAsOfByName(ctx context.Context, ts time.Time) (*Snapshot, bool, error) {
	latestSnap, err := t.Snapshot(ctx)
	if err != nil {
		return nil, false, nil
	}
	latest := latestSnap.Version()
	oldest, ok, err := t.oldestCommit(ctx, latest)
	if err != nil || !ok || latest-oldest < cleanupByNameFrom {
		return nil, false, nil
	}
	earliest := int64(0)
	if oldest > 0 {
		earliest = -1
		for u := oldest - 1; u <= latest && u-oldest < maxNamedExtend; u++ {
			_, err := t.store.Stat(ctx, CheckpointPath(u))
			if err == nil {
				earliest = u
				break
			}
			if !errors.Is(err, storage.ErrNotExist) {
				return nil, false, nil
			}
		}
		if earliest < 0 {
			return nil, false, nil
		}
	}
	fileTimes := func(int64, int64) func(int64) (int64, error) {
		return func(v int64) (int64, error) {
			fi, err := t.store.Stat(ctx, CommitPath(v))
			if errors.Is(err, storage.ErrNotExist) && v == earliest {
				// A checkpoint whose commit was cleaned up.
				fi, err = t.store.Stat(ctx, CheckpointPath(v))
			}
			if err != nil {
				return 0, fmt.Errorf("delta: time of version %d: %w", v, err)
			}
			return fileMillis(fi), nil
		}
	}
	v, err := t.versionAsOf(ctx, latestSnap, earliest, ts, fileTimes)
	if err != nil {
		return nil, true, err
	}
	s, err := t.SnapshotAt(ctx, v)
	return s, true, err
}

// versionAsOf is the latest version in [earliest, latestSnap's] whose
// commit time is at or before ts: in-commit timestamps from the version
// that enabled them, else the file times fileTimes(lo, hi) gives for
// versions lo..hi. A timestamp before earliest's time is
// ErrTimestampBeforeFirst, one after the latest commit's
// ErrTimestampAfterLatest.
func (t *Table) versionAsOf(ctx context.Context, latestSnap *Snapshot, earliest int64, ts time.Time, fileTimes func(lo, hi int64) func(int64) (int64, error)) (int64, error) {
	latest := latestSnap.Version()
	target := ts.UnixMilli()
	m := latestSnap.Metadata()

	lo, hi := earliest, latest
	var timeOf func(v int64) (int64, error)
	if ictEnabled(&m) {
		ev := ictEnablementVersion(&m)
		et, perr := strconv.ParseInt(m.Configuration[PropICTEnablementTimeStmp], 10, 64)
		if ev > earliest && perr == nil && target < et {
			hi = ev - 1
			timeOf = fileTimes(lo, hi)
		} else {
			if ev > lo {
				lo = ev
			}
			timeOf = func(v int64) (int64, error) { return t.inCommitTimestamp(ctx, v) }
		}
	} else {
		timeOf = fileTimes(lo, hi)
	}
	first, err := timeOf(lo)
	if err != nil {
		return 0, err
	}
	if target < first {
		return 0, fmt.Errorf("%w: %s is before version %d at %s", ErrTimestampBeforeFirst,
			ts.UTC().Format(time.RFC3339Nano), lo, millisTime(first).Format(time.RFC3339Nano))
	}
	last, err := timeOf(hi)
	if err != nil {
		return 0, err
	}
	if hi == latest && target > last {
		return 0, fmt.Errorf("%w: %s is after version %d at %s", ErrTimestampAfterLatest,
			ts.UTC().Format(time.RFC3339Nano), hi, millisTime(last).Format(time.RFC3339Nano))
	}
	// Binary search for the last version with time <= target.
	var searchErr error
	n := int(hi - lo + 1)
	idx := sort.Search(n, func(i int) bool {
		if searchErr != nil {
			return true
		}
		tv, err := timeOf(lo + int64(i))
		if err != nil {
			searchErr = err
			return true
		}
		return tv > target
	})
	if searchErr != nil {
		return 0, searchErr
	}
	return lo + int64(idx) - 1, nil
}

// History returns up to limit commits, newest first (limit <= 0: all
// available commit files).
//
// With a limit, the latest version comes from Snapshot and the commits
// before it are found by name, so that the history of a long log (millions
// of commit files) costs what the commits asked for do.
func (t *Table) History(ctx context.Context, limit int) ([]CommitRecord, error) {
	if limit > 0 {
		if recs, ok, err := t.historyByName(ctx, limit); ok {
			return recs, err
		}
	}
	return t.historyListed(ctx, limit)
}

// historyListed is History from a listing of the log.
func (t *Table) historyListed(ctx context.Context, limit int) ([]CommitRecord, error) {
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	if err := l.statAll(ctx); err != nil {
		return nil, err
	}
	latest := l.maxCommit
	if latest < 0 {
		return nil, nil
	}
	lowest := latest
	for lowest-1 >= 0 {
		if _, ok := l.commits[lowest-1]; !ok {
			break
		}
		lowest--
	}
	if limit > 0 && latest-int64(limit)+1 > lowest {
		lowest = latest - int64(limit) + 1
	}
	return t.history(ctx, l, lowest, latest)
}

// historyByName is History of the limit commits up to the latest version
// (fewer where the log was cleaned), stat-ing them by name. ok is false
// when the latest snapshot cannot be loaded or its commit file is missing:
// the caller lists the log.
func (t *Table) historyByName(ctx context.Context, limit int) (recs []CommitRecord, ok bool, err error) {
	s, err := t.Snapshot(ctx)
	if err != nil {
		return nil, false, nil
	}
	latest := s.Version()
	l := &logListing{commits: map[int64]storage.FileInfo{}, store: t.store}
	lowest := latest + 1
	for v := latest; v >= 0 && v > latest-int64(limit); v-- {
		fi, err := t.store.Stat(ctx, CommitPath(v))
		if errors.Is(err, storage.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, true, fmt.Errorf("delta: history: %w", err)
		}
		l.commits[v], lowest = fi, v
	}
	if lowest > latest {
		return nil, false, nil
	}
	l.minCommit, l.maxCommit = lowest, latest
	recs, err = t.history(ctx, l, lowest, latest)
	return recs, true, err
}

// history reads the records of the commits lowest..latest of l, newest
// first.
func (t *Table) history(ctx context.Context, l *logListing, lowest, latest int64) ([]CommitRecord, error) {
	times := l.modTimes(lowest, latest)
	commits, err := readCommits(ctx, t.store, lowest, latest)
	if err != nil {
		return nil, err
	}
	out := make([]CommitRecord, 0, len(commits))
	for i := len(commits) - 1; i >= 0; i-- {
		rec := CommitRecord{Version: lowest + int64(i), Timestamp: millisTime(times[i])}
		for _, a := range commits[i] {
			if a.CommitInfo != nil {
				ci := *a.CommitInfo
				rec.CommitInfo = &ci
				if ci.InCommitTimestamp != nil {
					rec.Timestamp = millisTime(*ci.InCommitTimestamp)
				}
				break
			}
		}
		out = append(out, rec)
	}
	return out, nil
}
