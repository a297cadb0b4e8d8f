package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/plantlake/plantlake/delta"
)

// At selects a version to read: Version if set, else the latest version
// committed at or before Time if set, else the latest.
type At struct {
	Version *int64
	Time    *time.Time
}

// SnapshotInfo is a table at one version.
type SnapshotInfo struct {
	Version          int64
	Timestamp        time.Time
	Location         string
	Schema           *delta.StructType
	SchemaString     string
	PartitionColumns []string
	Properties       map[string]string
	Protocol         delta.Protocol
	// Files are the live files sorted by path; Path is the canonical
	// (decoded, relative) path.
	Files []delta.Add
	Txns  map[string]int64
}

// Snapshot returns the table at a version. The latest version comes from
// memory; older ones are read from the log.
func (c *Catalog) Snapshot(ctx context.Context, name string, at At) (SnapshotInfo, error) {
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return SnapshotInfo{}, err
	}
	if at.Version == nil && at.Time == nil {
		return t.latestSnapshot(), nil
	}
	snap, err := t.snapshotAt(ctx, at)
	if err != nil {
		return SnapshotInfo{}, err
	}
	schema, err := snap.Schema()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("schema of %s at %d: %w", name, snap.Version(), err)
	}
	md := snap.Metadata()
	info := SnapshotInfo{
		Version: snap.Version(), Timestamp: snap.Timestamp(), Location: t.location,
		Schema: schema, SchemaString: md.SchemaString, PartitionColumns: nonNilSlice(md.PartitionColumns),
		Properties: nonNilMap(md.Configuration), Protocol: snap.Protocol(), Files: snap.Files(),
		Txns: map[string]int64{},
	}
	for _, x := range snap.Txns() {
		info.Txns[x.AppID] = x.Version
	}
	return info, nil
}

// snapshotAt reads an older snapshot through the Delta library, mapping
// its errors to the engine's.
func (t *table) snapshotAt(ctx context.Context, at At) (*delta.Snapshot, error) {
	t.mu.RLock()
	latest := t.st.version
	t.mu.RUnlock()
	var snap *delta.Snapshot
	var err error
	switch {
	case at.Version != nil:
		if *at.Version < 0 || *at.Version > latest {
			return nil, fmt.Errorf("version %d of %s (latest is %d): %w", *at.Version, t.name, latest, ErrNotFound)
		}
		snap, err = t.dt.SnapshotAt(ctx, *at.Version)
	default:
		snap, err = t.dt.SnapshotAsOf(ctx, *at.Time)
		if errors.Is(err, delta.ErrTimestampAfterLatest) {
			snap, err = t.dt.Snapshot(ctx)
		}
	}
	switch {
	case errors.Is(err, delta.ErrVersionNotFound), errors.Is(err, delta.ErrTimestampBeforeFirst):
		return nil, fmt.Errorf("%s: %w: %w", t.name, ErrNotFound, err)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", t.name, err)
	}
	return snap, nil
}

func (t *table) latestSnapshot() SnapshotInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	st := t.st
	return SnapshotInfo{
		Version: st.version, Timestamp: st.timestamp, Location: t.location,
		Schema: st.schema, SchemaString: st.metadata.SchemaString,
		PartitionColumns: nonNilSlice(st.metadata.PartitionColumns),
		Properties:       nonNilMap(st.metadata.Configuration), Protocol: st.protocol,
		Files: st.sortedFiles(), Txns: maps.Clone(st.txns),
	}
}

// TxnVersion returns the latest txn version of appID, whether there is one,
// and the table version it was read at.
func (c *Catalog) TxnVersion(ctx context.Context, name, appID string) (version int64, found bool, tableVersion int64, err error) {
	if appID == "" {
		return 0, false, 0, badField("app_id", "empty")
	}
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return 0, false, 0, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.st.txns[appID]
	return v, ok, t.st.version, nil
}

// HistoryEntry is one version's commit info.
type HistoryEntry struct {
	Version             int64
	Timestamp           time.Time
	Operation           string
	OperationParameters map[string]string
	OperationMetrics    map[string]string
	IsBlindAppend       bool
	ReadVersion         *int64
}

// maxHistory bounds a History call without a limit.
const maxHistory = 10000

// History returns up to limit entries, newest first.
func (c *Catalog) History(ctx context.Context, name string, limit int) ([]HistoryEntry, error) {
	if limit < 0 {
		return nil, badField("limit", "must be >= 0")
	}
	if limit == 0 || limit > maxHistory {
		limit = maxHistory
	}
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return nil, err
	}
	recs, err := t.dt.History(ctx, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", name, err)
	}
	out := make([]HistoryEntry, 0, len(recs))
	for _, r := range recs {
		e := HistoryEntry{Version: r.Version, Timestamp: r.Timestamp}
		if ci := r.CommitInfo; ci != nil {
			e.Operation = ci.Operation
			e.OperationParameters = ci.OperationParameters
			e.IsBlindAppend = ci.IsBlindAppend != nil && *ci.IsBlindAppend
			e.ReadVersion = ci.ReadVersion
			if raw, ok := ci.Extra["operationMetrics"]; ok {
				e.OperationMetrics = stringMap(raw)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// stringMap decodes a JSON object, keeping non-string values as JSON text.
func stringMap(raw json.RawMessage) map[string]string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out
}

// VersionChange is what one version did.
type VersionChange struct {
	Version         int64
	Timestamp       time.Time
	Operation       string
	Adds            []delta.Add
	Removes         []delta.Remove
	Txns            []delta.Txn
	MetadataChanged bool
}

// maxChanges bounds a Changes call without a limit.
const maxChanges = 1000

// Changes returns the actions of versions start..end (end nil: the
// latest), oldest first, at most limit versions, and the latest version.
// An end after the latest version means the latest.
func (c *Catalog) Changes(ctx context.Context, name string, start int64, endVersion *int64, limit int) ([]VersionChange, int64, error) {
	switch {
	case start < 0:
		return nil, 0, badField("start_version", "must be >= 0")
	case limit < 0:
		return nil, 0, badField("limit", "must be >= 0")
	case endVersion != nil && *endVersion < start:
		return nil, 0, badField("end_version", "%d is before start_version %d (leave it unset for the latest version)", *endVersion, start)
	}
	end := int64(-1)
	if endVersion != nil {
		end = *endVersion
	}
	if limit == 0 || limit > maxChanges {
		limit = maxChanges
	}
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return nil, 0, err
	}
	t.mu.RLock()
	latest := t.st.version
	t.mu.RUnlock()
	if end < 0 || end > latest {
		end = latest
	}
	if end >= start+int64(limit) {
		end = start + int64(limit) - 1
	}
	var out []VersionChange
	for v := start; v <= end; v++ {
		b, err := t.store.ReadFile(ctx, delta.CommitPath(v))
		if err != nil {
			return nil, 0, fmt.Errorf("version %d of %s is not in the log (cleaned up?): %w: %w", v, name, ErrNotFound, err)
		}
		actions, err := delta.ParseActions(b)
		if err != nil {
			return nil, 0, fmt.Errorf("parse version %d of %s: %w", v, name, err)
		}
		ch := VersionChange{Version: v}
		for _, a := range actions {
			switch {
			case a.Add != nil:
				ch.Adds = append(ch.Adds, *a.Add)
			case a.Remove != nil:
				ch.Removes = append(ch.Removes, *a.Remove)
			case a.Txn != nil:
				ch.Txns = append(ch.Txns, *a.Txn)
			case a.MetaData != nil:
				ch.MetadataChanged = true
			case a.CommitInfo != nil:
				ch.Operation = a.CommitInfo.Operation
				ch.Timestamp = time.UnixMilli(a.CommitInfo.Timestamp).UTC()
				if a.CommitInfo.InCommitTimestamp != nil {
					ch.Timestamp = time.UnixMilli(*a.CommitInfo.InCommitTimestamp).UTC()
				}
			}
		}
		out = append(out, ch)
	}
	return out, latest, nil
}

// sortedFiles returns the live files sorted by path, computed once per
// version. Callers hold t.mu for reading at least.
func (st *tableState) sortedFiles() []delta.Add {
	if p := st.sorted.Load(); p != nil {
		return *p
	}
	files := slices.Collect(maps.Values(st.files))
	slices.SortFunc(files, func(a, b delta.Add) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	st.sorted.Store(&files)
	return files
}
