package delta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// CleanupMetadata deletes expired log files following the protocol's
// Metadata Cleanup: the cutoff is midnight UTC of (now - log retention,
// delta.logRetentionDuration, default 30 days); the newest checkpoint not
// newer than the newest commit at or before the cutoff is kept with every
// commit after it; commit, checkpoint and checksum files before that
// checkpoint, and compaction files starting at or before it, are deleted.
// Sidecar files are left alone. It returns the deleted paths.
//
// A Table remembers the cutoff of its last cleanup: until the cutoff moves
// to the next day, another cleanup returns at once, without listing and
// stat-ing the log (a pipeline table's holds a commit every 500 ms of the
// retention, millions of files).
func (t *Table) CleanupMetadata(ctx context.Context) ([]string, error) {
	t.mu.Lock()
	s := t.latest
	t.mu.Unlock()
	if s == nil {
		var err error
		if s, err = t.Snapshot(ctx); err != nil {
			return nil, err
		}
	}
	ret := retention(&s.metadata, PropLogRetention, DefaultLogRetention)
	cutoff := t.now().Add(-ret).UTC().Truncate(24 * time.Hour).UnixMilli()
	t.mu.Lock()
	done := t.cleanedTo == cutoff
	t.mu.Unlock()
	if done {
		return nil, nil
	}
	deleted, ok, err := t.cleanupByName(ctx, s.version, cutoff)
	if err == nil && !ok {
		deleted, err = t.cleanupMetadata(ctx, cutoff)
	}
	if err == nil {
		t.mu.Lock()
		t.cleanedTo = cutoff
		t.mu.Unlock()
	}
	return deleted, err
}

// cleanupByNameFrom is how many versions a log holds before CleanupMetadata
// finds what to delete by name instead of listing the log. A listing that
// stats every file holds the whole log, millions of entries for a pipeline
// table (a commit every 500 ms for the 30 days of log retention); by name a
// cleanup stats a few dozen files and deletes the day that expired. A
// variable so that tests can lower it.
var cleanupByNameFrom int64 = 100_000

// cleanupByName is the metadata cleanup of a long log, done by name: the
// oldest commit and the newest commit at or before the cutoff are found by
// binary search (stat-ing commit files: the log is contiguous from its
// oldest commit, and a writer's file times increase), the newest classic
// checkpoint at or before that commit by stat-ing its name down from it
// (within maxNamedExtend versions), and the commit, checksum and classic
// checkpoint files of every version before that checkpoint are deleted by
// name. It leaves files of other kinds (multi-part and V2 checkpoints, log
// compactions) that only other writers make, and deletes nothing when it
// finds no classic checkpoint. ok is false when the log is shorter than
// cleanupByNameFrom or its latest commit is not where latest says: the
// caller lists it.
func (t *Table) cleanupByName(ctx context.Context, latest, cutoff int64) (deleted []string, ok bool, err error) {
	oldest, found, err := t.oldestCommit(ctx, latest)
	if err != nil || !found {
		return nil, false, nil // the listing decides
	}
	if latest-oldest < cleanupByNameFrom {
		return nil, false, nil
	}
	// The newest commit at or before the cutoff: the last version in
	// [oldest, latest] whose file time is not after it.
	expired := func(v int64) (bool, error) {
		fi, err := t.store.Stat(ctx, CommitPath(v))
		if err != nil {
			return false, fmt.Errorf("delta: cleanup: commit %d: %w", v, err)
		}
		return fi.ModTime.UnixMilli() <= cutoff, nil
	}
	if ok, err := expired(oldest); err != nil || !ok {
		return nil, true, err
	}
	lo, hi := oldest, latest
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		ok, err := expired(mid)
		if err != nil {
			return nil, true, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	cp := int64(-1)
	for v := lo; v > oldest && lo-v <= maxNamedExtend; v-- {
		_, err := t.store.Stat(ctx, CheckpointPath(v))
		if err == nil {
			cp = v
			break
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return nil, true, fmt.Errorf("delta: cleanup: stat checkpoint %d: %w", v, err)
		}
	}
	if cp < 0 {
		return nil, true, nil
	}
	for v := oldest; v < cp; v++ {
		for _, p := range []string{CommitPath(v), checksumPath(v), CheckpointPath(v)} {
			err := t.store.Delete(ctx, p)
			if errors.Is(err, storage.ErrNotExist) {
				continue
			}
			if err != nil {
				return deleted, true, fmt.Errorf("delta: cleanup delete %s: %w", p, err)
			}
			deleted = append(deleted, p)
		}
	}
	sortStrings(deleted)
	t.logger.Info("delta: metadata cleanup by name", "deleted", len(deleted), "oldestCheckpoint", cp)
	return deleted, true, nil
}

func (t *Table) cleanupMetadata(ctx context.Context, cutoff int64) ([]string, error) {
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	if err := l.statAll(ctx); err != nil {
		return nil, err
	}
	cutoffCommit := int64(-1)
	if l.maxCommit >= 0 {
		lo := l.maxCommit
		for lo-1 >= 0 {
			if _, ok := l.commits[lo-1]; !ok {
				break
			}
			lo--
		}
		times := l.modTimes(lo, l.maxCommit)
		for i, ms := range times {
			if ms <= cutoff {
				cutoffCommit = lo + int64(i)
			}
		}
	}
	if cutoffCommit < 0 {
		return nil, nil
	}
	cpVersion := int64(-1)
	for _, c := range l.checkpoints {
		if c.version <= cutoffCommit {
			cpVersion = c.version
		}
	}
	if cpVersion <= 0 {
		return nil, nil
	}
	var doomed []string
	for v, fi := range l.commits {
		if v < cpVersion {
			doomed = append(doomed, fi.Path)
		}
	}
	for _, c := range l.checkpoints {
		if c.version < cpVersion {
			for _, f := range c.files {
				doomed = append(doomed, f.Path)
			}
		}
	}
	for _, o := range l.others {
		switch {
		case o.kind == kindChecksum && o.version < cpVersion,
			o.kind == kindCompaction && o.version <= cpVersion,
			(o.kind == kindCheckpointPart || o.kind == kindCheckpointClassic || o.kind == kindCheckpointV2) && o.version < cpVersion:
			doomed = append(doomed, o.info.Path)
		}
	}
	// Incomplete multi-part checkpoints are not in l.checkpoints; list them.
	infos, err := t.store.List(ctx, LogDir)
	if err != nil {
		return nil, fmt.Errorf("delta: list %s: %w", LogDir, err)
	}
	for _, fi := range infos {
		lf := parseLogName(fi.Name())
		if lf.kind == kindCheckpointPart && lf.version < cpVersion && !containsStr(doomed, fi.Path) {
			doomed = append(doomed, fi.Path)
		}
	}
	sortStrings(doomed)
	var deleted []string
	for _, p := range doomed {
		if err := t.store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotExist) {
			return deleted, fmt.Errorf("delta: cleanup delete %s: %w", p, err)
		}
		deleted = append(deleted, p)
	}
	if len(deleted) > 0 {
		t.logger.Info("delta: metadata cleanup", "deleted", len(deleted), "oldestCheckpoint", cpVersion)
	}
	return deleted, nil
}

func containsStr(list []string, s string) bool { return contains(list, s) }

// VacuumOptions tunes Vacuum.
type VacuumOptions struct {
	// Retention overrides delta.deletedFileRetentionDuration (default 7
	// days) when > 0.
	Retention time.Duration
	// DryRun lists what would be deleted without deleting it.
	DryRun bool
	// Version, when > 0, is the version to vacuum against instead of the
	// latest one the log lists: a writer that knows its latest version
	// (the catalog) saves listing a log of hundreds of thousands of commits.
	Version int64
}

// Vacuum deletes data files that the latest snapshot does not reference and
// no tombstone newer than the retention protects, skipping _delta_log,
// files and folders whose names start with "_" or "." (as Delta Lake does),
// and files modified within the retention (they may belong to a commit in
// flight). It returns the paths deleted (or, with DryRun, to delete),
// relative to the table root.
func (t *Table) Vacuum(ctx context.Context, opts VacuumOptions) ([]string, error) {
	var s *Snapshot
	var err error
	if opts.Version > 0 {
		s, err = t.SnapshotAt(ctx, opts.Version)
	} else {
		s, err = t.Snapshot(ctx)
	}
	if err != nil {
		return nil, err
	}
	ret := opts.Retention
	if ret <= 0 {
		ret = retention(&s.metadata, PropDeletedFileRetention, DefaultDeletedFileRetention)
	}
	now := t.now()
	minKeep := now.Add(-ret)
	keep := make(map[string]bool, len(s.files))
	for _, a := range s.files {
		keep[a.Path] = true
	}
	var doomed []string
	var walk func(dir string) error
	walk = func(dir string) error {
		infos, err := t.store.List(ctx, dir)
		if err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("delta: vacuum list %q: %w", dir, err)
		}
		for _, fi := range infos {
			name := fi.Name()
			if strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") {
				continue
			}
			if fi.IsDir {
				if err := walk(fi.Path); err != nil {
					return err
				}
				continue
			}
			if keep[fi.Path] || fi.ModTime.After(minKeep) {
				continue
			}
			doomed = append(doomed, fi.Path)
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	// Files a tombstone within the retention names stay (a reader of a
	// version within it may need them), whatever their age. The
	// tombstones are streamed (most are in a checkpoint) against the
	// candidates, fewer than the tombstones.
	if len(doomed) > 0 {
		candidates := make(map[string]bool, len(doomed))
		for _, p := range doomed {
			candidates[p] = true
		}
		err := t.eachTombstone(ctx, s, minKeep.UnixMilli(), func(r *Remove) error {
			delete(candidates, r.Path)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("delta: vacuum: %w", err)
		}
		doomed = slices.DeleteFunc(doomed, func(p string) bool { return !candidates[p] })
	}
	if opts.DryRun {
		return doomed, nil
	}
	var deleted []string
	for _, p := range doomed {
		if err := t.store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotExist) {
			return deleted, fmt.Errorf("delta: vacuum delete %s: %w", p, err)
		}
		deleted = append(deleted, p)
	}
	t.logger.Info("delta: vacuum", "deleted", len(deleted), "retention", ret)
	return deleted, nil
}

// CompactionRequest builds the commit of a compaction (OPTIMIZE): the files
// rewritten are removed and the new files added, all with dataChange=false,
// so concurrent appends do not conflict with it while a concurrent removal
// of a rewritten file does. removed are the live files (as in
// Snapshot.Files) that were rewritten into added.
func CompactionRequest(readVersion int64, removed, added []Add, now time.Time) CommitRequest {
	ts := now.UnixMilli()
	ext := true
	req := CommitRequest{
		ReadVersion:         readVersion,
		Operation:           "OPTIMIZE",
		OperationParameters: map[string]string{"predicate": "[]", "zOrderBy": "[]"},
	}
	for _, r := range removed {
		size := r.Size
		p := encodeCanonical(r.Path)
		req.Actions = append(req.Actions, Action{Remove: &Remove{
			Path: p, DeletionTimestamp: &ts, DataChange: false, ExtendedFileMetadata: &ext,
			PartitionValues: r.PartitionValues, Size: &size,
		}})
		req.ReadFiles = append(req.ReadFiles, p)
	}
	for _, a := range added {
		a := a
		a.DataChange = false
		req.Actions = append(req.Actions, Action{Add: &a})
	}
	return req
}
