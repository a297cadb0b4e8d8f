package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/plantlake/plantlake/delta/storage"
)

// A snapshot loaded from a checkpoint leaves the checkpoint's tombstones in
// it (Snapshot.tombBase) and holds in memory only the removes of the
// commits after it. The few readers of tombstones (a checkpoint being
// written, a vacuum) stream the checkpoint's a row group at a time, so a
// long-lived writer's memory no longer grows with the deleted-file
// retention: a table committed twice a second and compacted gains ~170,000
// tombstones a day, kept for a week.

// eachTombstone calls fn with every tombstone of s deleted after
// minDeletion (ms since the epoch): those s holds (sorted by path), then
// those of its base checkpoint that no later action replaced (a file added
// again, or removed again). fn must not keep the Remove.
func (t *Table) eachTombstone(ctx context.Context, s *Snapshot, minDeletion int64, fn func(*Remove) error) error {
	held := make([]*Remove, 0, len(s.tombs))
	for _, r := range s.tombs {
		if r.DeletionTimestamp != nil && *r.DeletionTimestamp > minDeletion {
			held = append(held, r)
		}
	}
	slices.SortFunc(held, func(a, b *Remove) int { return strings.Compare(a.Path, b.Path) })
	for _, r := range held {
		if err := fn(r); err != nil {
			return err
		}
	}
	if s.tombBase == nil {
		return nil
	}
	return t.checkpointRemoves(ctx, *s.tombBase, func(rms []Action) error {
		for i := range rms {
			r := rms[i].Remove
			if r.DeletionTimestamp == nil || *r.DeletionTimestamp <= minDeletion {
				continue
			}
			r.Path = CanonicalPath(r.Path, t.root)
			k := fileKey(r.Path, r.DeletionVector)
			if _, live := s.files[k]; live {
				continue
			}
			if _, later := s.tombs[k]; later {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// Tombstones returns every tombstone of s (expired ones included until a
// checkpoint leaves them out), with canonical paths: those s holds in
// memory, sorted by path, then those read from the checkpoint s was loaded
// from. Unlike Snapshot.Tombstones it reads that checkpoint.
func (t *Table) Tombstones(ctx context.Context, s *Snapshot) ([]Remove, error) {
	var out []Remove
	err := t.eachTombstone(ctx, s, math.MinInt64, func(r *Remove) error {
		out = append(out, *r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkpointRemoves calls fn with the remove actions of checkpoint c, a
// row group at a time where the checkpoint is Parquet without sidecars
// (what this library and most writers write); any other checkpoint is read
// whole. Every action fn gets has a Remove, which fn may change.
func (t *Table) checkpointRemoves(ctx context.Context, c checkpointRef, fn func([]Action) error) error {
	streamed := true
	for _, f := range c.files {
		if !strings.HasSuffix(f.Path, ".parquet") {
			streamed = false
			break
		}
	}
	if streamed {
		for i, f := range c.files {
			err := parquetRemoves(ctx, t.store, f.Path, fn)
			if errors.Is(err, errNoFastPath) && i == 0 {
				streamed = false
				break
			}
			if err != nil {
				return fmt.Errorf("delta: tombstones of checkpoint %d: %w", c.version, err)
			}
		}
		if streamed {
			return nil
		}
	}
	acts, err := t.readCheckpoint(ctx, c, false)
	if err != nil {
		return fmt.Errorf("delta: tombstones of checkpoint %d: %w", c.version, err)
	}
	rms := acts[:0]
	for _, a := range acts {
		if a.Remove != nil {
			rms = append(rms, a)
		}
	}
	return fn(rms)
}

// parquetRemoves decodes the remove column of the Parquet checkpoint file
// p a row group at a time. It returns errNoFastPath, before calling fn,
// when the file has sidecars or shapes the fast decoder does not handle.
func parquetRemoves(ctx context.Context, store storage.Store, p string, fn func([]Action) error) (err error) {
	f, err := store.Open(ctx, p)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	started := false
	defer func() {
		// arrow-go can panic on malformed files; a bad checkpoint is an error.
		if x := recover(); x != nil {
			err = fmt.Errorf("%w: %s: malformed parquet: %v", ErrInvalidLog, p, x)
		}
	}()
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidLog, p, err)
	}
	defer pf.Close()
	if err := checkChunkBounds(pf, f.Size()); err != nil {
		return err
	}
	sch := pf.MetaData().Schema
	var leaves []int
	for i := range sch.NumColumns() {
		path := sch.Column(i).ColumnPath()
		if len(path) == 0 {
			continue
		}
		switch path[0] {
		case "sidecar":
			return errNoFastPath // removes may be in the sidecars
		case "remove":
			leaves = append(leaves, i)
		}
	}
	if len(leaves) == 0 {
		return nil
	}
	byKind, err := classifyFileLeaves(sch, leaves)
	if err != nil {
		return err
	}
	fc := byKind["remove"]
	if fc == nil {
		return nil
	}
	in := &mapInterner{kbuf: &leafData{}, vbuf: &leafData{}}
	for g := range pf.NumRowGroups() {
		if err := ctx.Err(); err != nil {
			return err
		}
		rg := pf.RowGroup(g)
		n := rg.NumRows()
		var acts []Action
		if n < 0 || n > maxFastRows {
			err = errNoFastPath
		} else {
			acts, err = fc.decode(rg, n, in)
		}
		if errors.Is(err, errNoFastPath) && started {
			// Row groups before this one went to fn already.
			return fmt.Errorf("%w: %s: row group %d needs the generic decoder", ErrInvalidLog, p, g)
		}
		if err != nil {
			return err
		}
		started = true
		if len(acts) == 0 {
			continue
		}
		if err := fn(acts); err != nil {
			return err
		}
	}
	return nil
}

// rebaseTombstones makes checkpoint v, just written from s (at version v),
// the base of the cached snapshot's tombstones: the tombstones it holds
// that s held too are in the checkpoint (or had expired), and are dropped
// from memory. Only removes after v stay. The cached snapshot may be s or
// one extended from it; one of another lineage keeps what it holds apart
// from the identical removes (eachTombstone lets those it holds win over
// the checkpoint's, so nothing is listed twice).
func (t *Table) rebaseTombstones(s *Snapshot, v int64) {
	base := &checkpointRef{version: v, kind: kindCheckpointClassic, files: []storage.FileInfo{{Path: CheckpointPath(v)}}}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.latest
	if cur == nil || cur.version < v {
		return
	}
	tombs := make(map[string]*Remove)
	for k, r := range cur.tombs {
		if s.tombs[k] != r {
			tombs[k] = r
		}
	}
	c := &Snapshot{
		version: cur.version, protocol: cur.protocol, metadata: cur.metadata,
		files: cur.files, tombs: tombs, tombBase: base, txns: cur.txns,
		timestamp: cur.timestamp, checkpointVersion: cur.checkpointVersion,
	}
	t.latest = c
}

// forget drops the cached snapshot when it reads its older tombstones from
// the same checkpoint as s (one that could not be read): the next snapshot
// is loaded from the log.
func (t *Table) forget(s *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.latest != nil && t.latest.tombBase == s.tombBase {
		t.latest = nil
	}
}
