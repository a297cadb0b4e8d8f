package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plantlake/plantlake/delta/storage"
)

// Errors callers branch on when loading snapshots.
var (
	// ErrUnsupportedFeature is wrapped by errors about a table that needs a
	// reader or writer feature this library does not implement; the message
	// names the feature (errors.As with *UnsupportedFeatureError gives it).
	ErrUnsupportedFeature = errors.New("delta: unsupported table feature")
	// ErrUnsupportedProtocol is wrapped when the table needs a newer reader
	// or writer protocol version than this library implements.
	ErrUnsupportedProtocol = errors.New("delta: unsupported protocol version")
	// ErrVersionNotFound is wrapped when a requested version does not exist
	// or can no longer be reconstructed (its log was cleaned up).
	ErrVersionNotFound = errors.New("delta: version not found")
	// ErrTimestampBeforeFirst is wrapped when a time-travel timestamp is
	// older than the oldest version that can be reconstructed.
	ErrTimestampBeforeFirst = errors.New("delta: timestamp before the earliest available version")
	// ErrTimestampAfterLatest is wrapped when a time-travel timestamp is
	// newer than the latest commit, as in Delta Lake.
	ErrTimestampAfterLatest = errors.New("delta: timestamp after the latest version")
)

// UnsupportedFeatureError names the feature a table needs.
type UnsupportedFeatureError struct {
	Feature string
	Detail  string
}

func (e *UnsupportedFeatureError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("delta: unsupported table feature %q: %s", e.Feature, e.Detail)
	}
	return fmt.Sprintf("delta: unsupported table feature %q", e.Feature)
}

// Is makes errors.Is(err, ErrUnsupportedFeature) true.
func (e *UnsupportedFeatureError) Is(target error) bool { return target == ErrUnsupportedFeature }

// Reader features this library implements.
var supportedReaderFeatures = map[string]bool{
	"timestampNtz":        true,
	"v2Checkpoint":        true,
	"vacuumProtocolCheck": true,
}

// Table properties this library reads.
const (
	PropLogRetention          = "delta.logRetentionDuration"
	PropDeletedFileRetention  = "delta.deletedFileRetentionDuration"
	PropCheckpointInterval    = "delta.checkpointInterval"
	PropColumnMappingMode     = "delta.columnMapping.mode"
	PropEnableInCommitTimes   = "delta.enableInCommitTimestamps"
	PropICTEnablementVersion  = "delta.inCommitTimestampEnablementVersion"
	PropICTEnablementTimeStmp = "delta.inCommitTimestampEnablementTimestamp"
	PropAppendOnly            = "delta.appendOnly"
)

// Snapshot is the state of a table at one version: protocol, metadata, live
// files, tombstones and transaction versions. It is immutable and safe for
// concurrent use.
type Snapshot struct {
	version  int64
	protocol Protocol
	metadata Metadata
	files    map[string]*Add    // by logical file key
	tombs    map[string]*Remove // by logical file key
	// tombBase, when not nil, is the checkpoint whose tombstones tombs
	// leaves out: tombs holds the removes after it, and the older ones are
	// read from it when a checkpoint is written or a vacuum runs (see
	// Table.eachTombstone). A table that compacts its small files keeps a
	// week of removes as tombstones, hundreds of thousands a day, and a
	// long-lived writer held them all and copied them at every commit.
	tombBase  *checkpointRef
	txns      map[string]Txn
	timestamp time.Time
	// checkpointVersion is the checkpoint replay started from, -1 if none.
	checkpointVersion int64

	sortOnce sync.Once
	sorted   []Add
	schema   *StructType
	schemaE  error
}

// Version returns the snapshot's table version.
func (s *Snapshot) Version() int64 { return s.version }

// Protocol returns the table's protocol at this version.
func (s *Snapshot) Protocol() Protocol { return s.protocol }

// Metadata returns the table's metadata at this version. Do not modify the
// maps and slices it holds.
func (s *Snapshot) Metadata() Metadata { return s.metadata }

// Schema parses the table's schema.
func (s *Snapshot) Schema() (*StructType, error) {
	if s.schema == nil && s.schemaE == nil {
		s.schema, s.schemaE = ParseSchema(s.metadata.SchemaString)
	}
	return s.schema, s.schemaE
}

// PartitionColumns returns the table's partition columns.
func (s *Snapshot) PartitionColumns() []string { return s.metadata.PartitionColumns }

// Files returns the live files sorted by path. Each Add's Path is canonical
// (see CanonicalPath): a decoded path relative to the table root for files
// inside the table, else an absolute path or URI. Do not modify the maps the
// returned actions hold.
func (s *Snapshot) Files() []Add {
	s.sortOnce.Do(s.sortFiles)
	out := make([]Add, len(s.sorted))
	copy(out, s.sorted)
	return out
}

// sortFiles fills s.sorted (run once, through s.sortOnce).
func (s *Snapshot) sortFiles() {
	s.sorted = make([]Add, 0, len(s.files))
	for _, a := range s.files {
		s.sorted = append(s.sorted, *a)
	}
	sort.Slice(s.sorted, func(i, j int) bool { return s.sorted[i].Path < s.sorted[j].Path })
}

// NumFiles returns the number of live files.
func (s *Snapshot) NumFiles() int { return len(s.files) }

// Tombstones returns the remove actions the snapshot holds in memory as
// tombstones, with canonical paths, sorted by path: all of them when the
// snapshot was replayed from the log alone, else those removed after the
// checkpoint it was loaded from (Table.Tombstones lists all).
func (s *Snapshot) Tombstones() []Remove {
	out := make([]Remove, 0, len(s.tombs))
	for _, r := range s.tombs {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// TxnVersion returns the latest version committed by the application appID.
func (s *Snapshot) TxnVersion(appID string) (int64, bool) {
	t, ok := s.txns[appID]
	return t.Version, ok
}

// Txns returns every application's latest transaction, sorted by app id.
func (s *Snapshot) Txns() []Txn {
	out := make([]Txn, 0, len(s.txns))
	for _, t := range s.txns {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AppID < out[j].AppID })
	return out
}

// Timestamp returns the commit time of the snapshot's version: the
// in-commit timestamp on tables that have them, else the modification time
// of the commit file.
func (s *Snapshot) Timestamp() time.Time { return s.timestamp }

// Property returns a table property (metadata configuration) value.
func (s *Snapshot) Property(key string) (string, bool) {
	v, ok := s.metadata.Configuration[key]
	return v, ok
}

// fileKey is the logical file key: canonical path plus the deletion
// vector's unique id, if any.
func fileKey(canonical string, dv json.RawMessage) string {
	if len(dv) == 0 {
		return canonical
	}
	var d struct {
		StorageType    string `json:"storageType"`
		PathOrInlineDv string `json:"pathOrInlineDv"`
		Offset         *int64 `json:"offset"`
	}
	if json.Unmarshal(dv, &d) != nil {
		return canonical + "\x00" + string(dv)
	}
	id := d.StorageType + d.PathOrInlineDv
	if d.Offset != nil {
		id += "@" + strconv.FormatInt(*d.Offset, 10)
	}
	return canonical + "\x00" + id
}

// replayState accumulates actions during log replay.
type replayState struct {
	root     string
	protocol *Protocol
	metadata *Metadata
	files    map[string]*Add
	tombs    map[string]*Remove
	txns     map[string]Txn
	// parts holds one partition-values map per distinct set of values
	// for the tombstones to share (see sharedPartition).
	parts map[string]map[string]string
	// tombBase is the checkpoint whose removes replay left out (see
	// Snapshot.tombBase).
	tombBase *checkpointRef
}

func newReplayState(root string) *replayState {
	return &replayState{root: root, files: map[string]*Add{}, tombs: map[string]*Remove{}, txns: map[string]Txn{}}
}

// newReplayStateSized is newReplayState with room for about n files.
func newReplayStateSized(root string, n int) *replayState {
	return &replayState{root: root, files: make(map[string]*Add, n), tombs: map[string]*Remove{}, txns: map[string]Txn{}}
}

// apply applies one action in log order. owned says the caller hands over
// the action's Add or Remove, which replay may then keep and change instead
// of copying (actions read from a checkpoint are owned; commits may be
// shared with the recent-commit cache and are not).
func (r *replayState) apply(a *Action, owned bool) {
	switch {
	case a.Add != nil:
		add := a.Add
		if !owned {
			c := *a.Add
			add = &c
		}
		add.Path = CanonicalPath(add.Path, r.root)
		k := fileKey(add.Path, add.DeletionVector)
		r.files[k] = add
		if len(r.tombs) > 0 {
			delete(r.tombs, k)
		}
	case a.Remove != nil:
		rm := a.Remove
		if !owned {
			c := *a.Remove
			rm = &c
		}
		rm.Path = CanonicalPath(rm.Path, r.root)
		rm.PartitionValues = r.sharedPartition(rm.PartitionValues)
		k := fileKey(rm.Path, rm.DeletionVector)
		delete(r.files, k)
		r.tombs[k] = rm
	case a.Txn != nil:
		r.txns[a.Txn.AppID] = *a.Txn
	case a.Protocol != nil:
		p := *a.Protocol
		r.protocol = &p
	case a.MetaData != nil:
		m := *a.MetaData
		r.metadata = &m
	}
}

// sharedPartition returns a map equal to pv that tombstones of the same
// partition share. A table committed every 500 ms and compacted keeps about
// 170,000 tombstones a day for the deleted-file retention (a week by
// default), each with a partition-values map of its own as parsed: about
// 40 % of a tombstone's memory.
func (r *replayState) sharedPartition(pv map[string]string) map[string]string {
	if len(pv) == 0 || len(pv) > 8 {
		return pv
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(pv)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(pv[k])
		b.WriteByte(0)
	}
	key := b.String()
	if m, ok := r.parts[key]; ok {
		return m
	}
	if r.parts == nil {
		r.parts = map[string]map[string]string{}
	}
	r.parts[key] = pv
	return pv
}

// applyCommit applies one commit's actions. Within a commit, actions are
// not ordered: an add and a remove of the same logical file in one commit
// leave the file added.
func (r *replayState) applyCommit(actions []Action) { r.applyActions(actions, false) }

// applyOwned is applyCommit for actions nobody else holds (a checkpoint's).
func (r *replayState) applyOwned(actions []Action) { r.applyActions(actions, true) }

func (r *replayState) applyActions(actions []Action, owned bool) {
	for i := range actions {
		if actions[i].Remove != nil {
			r.apply(&actions[i], owned)
		}
	}
	for i := range actions {
		if actions[i].Remove == nil {
			r.apply(&actions[i], owned)
		}
	}
}

// checkReadable verifies that this library can read a table with this
// protocol and metadata.
func checkReadable(p *Protocol, m *Metadata) error {
	if p.MinReaderVersion > 3 || p.MinReaderVersion < 1 {
		return fmt.Errorf("%w: table needs reader version %d, this library reads 1 to 3", ErrUnsupportedProtocol, p.MinReaderVersion)
	}
	if p.MinReaderVersion == 3 {
		for _, f := range p.ReaderFeatures {
			if !supportedReaderFeatures[f] {
				return &UnsupportedFeatureError{Feature: f, Detail: "reader feature not implemented"}
			}
		}
	}
	if p.MinReaderVersion >= 2 {
		if mode := m.Configuration[PropColumnMappingMode]; mode != "" && mode != "none" {
			return &UnsupportedFeatureError{Feature: "columnMapping", Detail: "column mapping mode " + mode}
		}
	}
	return nil
}

func (r *replayState) snapshot(version int64) (*Snapshot, error) {
	if r.protocol == nil {
		return nil, fmt.Errorf("%w: no protocol action in the log up to version %d", ErrInvalidLog, version)
	}
	if r.metadata == nil {
		return nil, fmt.Errorf("%w: no metaData action in the log up to version %d", ErrInvalidLog, version)
	}
	if err := checkReadable(r.protocol, r.metadata); err != nil {
		return nil, err
	}
	for _, a := range r.files {
		if len(a.DeletionVector) > 0 {
			return nil, &UnsupportedFeatureError{Feature: "deletionVectors", Detail: "file " + a.Path + " has a deletion vector"}
		}
	}
	return &Snapshot{
		version:  version,
		protocol: *r.protocol,
		metadata: *r.metadata,
		files:    r.files,
		tombs:    r.tombs,
		tombBase: r.tombBase,
		txns:     r.txns,
	}, nil
}

// ictEnabled reports whether the metadata turns in-commit timestamps on.
func ictEnabled(m *Metadata) bool {
	return strings.EqualFold(m.Configuration[PropEnableInCommitTimes], "true")
}

// ictEnablementVersion is the first version with in-commit timestamps (0 if
// the table had them from the start).
func ictEnablementVersion(m *Metadata) int64 {
	v, err := strconv.ParseInt(m.Configuration[PropICTEnablementVersion], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// readCommit reads and parses the commit file of version v.
func readCommit(ctx context.Context, store storage.Store, v int64) ([]Action, error) {
	b, err := store.ReadFile(ctx, CommitPath(v))
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, fmt.Errorf("%w: commit %d: %v", ErrVersionNotFound, v, err)
		}
		return nil, fmt.Errorf("delta: read commit %d: %w", v, err)
	}
	acts, err := ParseActions(b)
	if err != nil {
		return nil, fmt.Errorf("delta: commit %d: %w", v, err)
	}
	return acts, nil
}

// readCommits reads commits [from, to] concurrently with a few workers.
func readCommits(ctx context.Context, store storage.Store, from, to int64) ([][]Action, error) {
	n := int(to - from + 1)
	if n <= 0 {
		return nil, nil
	}
	out := make([][]Action, n)
	workers := 4
	if n < workers {
		workers = n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				acts, err := readCommit(ctx, store, from+int64(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					continue
				}
				out[i] = acts
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
