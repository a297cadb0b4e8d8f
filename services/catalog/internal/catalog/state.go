package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

// maxSummaries bounds the per-table memory of recent commits kept for
// conflict checks; older winners are read back from the log.
const maxSummaries = 1024

// tableState is the latest version of a table as the catalog, its only
// writer, knows it. It is built from the log once and then advanced by
// applying each commit the catalog makes.
type tableState struct {
	version   int64
	timestamp time.Time
	protocol  delta.Protocol
	metadata  delta.Metadata
	schema    *delta.StructType
	// files are the live files by canonical path.
	files map[string]delta.Add
	txns  map[string]int64
	// summaries are the conflict-relevant facts of the most recent versions,
	// consecutive and ending at version.
	summaries []delta.CommitSummary
	// ict is the in-commit timestamp of version (milliseconds), nil if it
	// has none.
	ict *int64
	// lastCheckpoint is the version of the newest checkpoint (-1 if none).
	lastCheckpoint int64
	// lastCheckpointActions is how many actions it holds, by
	// _last_checkpoint when the table was loaded (0 if unknown).
	lastCheckpointActions int64
	// sorted caches the live files sorted by path for the current version;
	// nil after a change.
	sorted atomic.Pointer[[]delta.Add]
}

// partitionKey identifies a partition by its values in column order.
func partitionKey(cols []string, values map[string]string) string {
	if len(cols) == 0 {
		return ""
	}
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(c)
		b.WriteByte('=')
		b.WriteString(values[c])
	}
	return b.String()
}

// summarize extracts the conflict-relevant facts of a version's actions.
// The catalog's paths are relative to the table, so no root is needed.
func summarize(version int64, actions []delta.Action) delta.CommitSummary {
	return delta.SummarizeCommit(version, actions, "")
}

// loadState reads a table's latest snapshot from its log.
func loadState(ctx context.Context, store storage.Store) (*tableState, error) {
	snap, err := delta.Open(store).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return stateFromSnapshot(ctx, store, snap)
}

func stateFromSnapshot(ctx context.Context, store storage.Store, snap *delta.Snapshot) (*tableState, error) {
	md := snap.Metadata()
	schema, err := snap.Schema()
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	st := &tableState{
		version:   snap.Version(),
		timestamp: snap.Timestamp(),
		protocol:  snap.Protocol(),
		metadata:  md,
		schema:    schema,
		files:     map[string]delta.Add{},
		txns:      map[string]int64{},
		ict:       snap.Head().InCommitTimestamp,
	}
	st.lastCheckpoint, st.lastCheckpointActions = lastCheckpoint(ctx, store)
	for _, x := range snap.Txns() {
		st.txns[x.AppID] = x.Version
	}
	for _, f := range snap.Files() {
		st.files[f.Path] = f // already canonical
	}
	return st, nil
}

// lastCheckpoint reads _delta_log/_last_checkpoint: the newest
// checkpoint's version (-1 if absent or unreadable; then maintenance writes
// one at the next chance) and its number of actions (0 if unknown).
func lastCheckpoint(ctx context.Context, store storage.Store) (version, actions int64) {
	b, err := store.ReadFile(ctx, delta.LogDir+"/_last_checkpoint")
	if err != nil {
		return -1, 0
	}
	var lc struct {
		Version int64 `json:"version"`
		Size    int64 `json:"size"`
	}
	if json.Unmarshal(b, &lc) != nil {
		return -1, 0
	}
	return lc.Version, max(lc.Size, 0)
}

// apply advances the state by one committed version.
func (st *tableState) apply(version int64, ts time.Time, actions []delta.Action) error {
	if version != st.version+1 {
		return fmt.Errorf("apply version %d on top of %d", version, st.version)
	}
	for _, a := range actions {
		switch {
		case a.Add != nil:
			add := *a.Add
			add.Path = delta.CanonicalPath(add.Path, "")
			st.files[add.Path] = add
		case a.Remove != nil:
			delete(st.files, delta.CanonicalPath(a.Remove.Path, ""))
		case a.Txn != nil:
			st.txns[a.Txn.AppID] = a.Txn.Version
		case a.MetaData != nil:
			schema, err := a.MetaData.Schema()
			if err != nil {
				return fmt.Errorf("new metadata: %w", err)
			}
			st.metadata = *a.MetaData
			st.schema = schema
		case a.Protocol != nil:
			st.protocol = *a.Protocol
		case a.CommitInfo != nil:
			st.ict = nil
			if a.CommitInfo.InCommitTimestamp != nil {
				ict := *a.CommitInfo.InCommitTimestamp
				st.ict = &ict
			}
		}
	}
	st.version = version
	st.timestamp = ts
	st.sorted.Store(nil)
	st.summaries = append(st.summaries, summarize(version, actions))
	if n := len(st.summaries); n > maxSummaries {
		st.summaries = slices.Clone(st.summaries[n-maxSummaries/2:])
	}
	return nil
}

// head is the state as the base of the next commit.
func (st *tableState) head() delta.Head {
	return delta.Head{Version: st.version, Protocol: st.protocol, Metadata: st.metadata, InCommitTimestamp: st.ict}
}

// winners returns the summaries of versions (after, st.version], from memory
// where possible and from the log otherwise.
func (st *tableState) winners(ctx context.Context, store storage.Store, after int64) ([]delta.CommitSummary, error) {
	if after >= st.version {
		return nil, nil
	}
	first := st.version - int64(len(st.summaries)) + 1 // oldest version in memory
	var out []delta.CommitSummary
	for v := after + 1; v < first; v++ {
		b, err := store.ReadFile(ctx, delta.CommitPath(v))
		if errors.Is(err, storage.ErrNotExist) {
			return nil, &ConflictError{WinnerVersion: v, Reason: "read version is older than the log's retention; re-read the table"}
		}
		if err != nil {
			return nil, fmt.Errorf("read commit %d: %w", v, err)
		}
		actions, err := delta.ParseActions(b)
		if err != nil {
			return nil, fmt.Errorf("parse commit %d: %w", v, err)
		}
		out = append(out, summarize(v, actions))
	}
	from := max(after+1, first)
	return append(out, st.summaries[from-first:]...), nil
}

// sortedTxns returns the txn versions in app id order.
func (st *tableState) sortedTxns() []delta.Txn {
	out := make([]delta.Txn, 0, len(st.txns))
	for _, app := range slices.Sorted(maps.Keys(st.txns)) {
		out = append(out, delta.Txn{AppID: app, Version: st.txns[app]})
	}
	return out
}
