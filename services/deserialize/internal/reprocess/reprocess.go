// Package reprocess derives a range of raw versions again with the current
// rules and replaces that range's rows in dead letters and in bronze: the
// way a rules fix brings dead letters back (issue 12, item 5).
//
// For each target table it finds the live files that may hold rows of the
// range (their raw_version min/max stats overlap it; a file without stats
// counts as one that may), reads them with the delta reader, and writes
// their rows outside the range back as new files; the range's rows are
// derived again from raw, through the same deserializer and rules code
// as following. One commit per table, dead letters first, then bronze,
// removes the rewritten files and adds the new ones (the kept rows with
// dataChange=false, the derived ones with dataChange=true, so that merge,
// following bronze's changes, reads only the latter); it names the
// rewritten files as read, so that a commit that removed one of them
// meanwhile (a compaction) aborts it, and carries a txn under its own app
// id (AppID). Files without rows of the range are not touched.
//
// Derivation is deterministic, so running the same range twice with the
// same rules gives the same rows (in new files). The caller runs a
// reprocess where no commit of the follower can run (pipeline.Runner's
// Exclusive) and only over versions the follower has committed to both
// tables.
package reprocess

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/deserialize/internal/deserializer"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// Errors callers branch on.
var (
	// ErrRange is wrapped when the range is not within [0, the position]:
	// the last raw version both tables hold.
	ErrRange = errors.New("reprocess: range outside the derived raw versions")
	// ErrFilesGone is wrapped when a data file a raw version added is gone
	// (vacuumed after a compaction): that version cannot be derived again.
	// The message names the version.
	ErrFilesGone = errors.New("reprocess: raw data file gone")
	// ErrFailRule is wrapped when a rule with action fail broke on a row
	// of the range; nothing was committed.
	ErrFailRule = errors.New("reprocess: a fail rule stopped the reprocess")
)

// rawVersionColumn is the lineage column that says which raw version a
// bronze or dead-letter row came from.
const rawVersionColumn = "raw_version"

// AppID is the txn app id of the reprocess commits of the rows derived
// from source. Its version counts the reprocesses committed to the table;
// a commit reads it, so two reprocesses racing on one table cannot both
// commit.
func AppID(source string) string { return "deserialize-reprocess/" + source }

// chunkRows is how many raw rows are derived before their files are
// written, so that memory stays bounded whatever the range.
const chunkRows = 256 << 10

// commitTimeout bounds the bronze commit once the dead letters are
// committed, so that a cancelled caller does not leave bronze behind.
const commitTimeout = 60 * time.Second

// Result is what a reprocess replaced.
type Result struct {
	// Valid and DeadLettered are the rows of the range now in bronze and
	// in dead letters.
	Valid, DeadLettered int64
	// RemovedValid and RemovedDeadLettered are the range's rows removed
	// from bronze and from dead letters.
	RemovedValid, RemovedDeadLettered int64
	// DeadLettersVersion and BronzeVersion are the versions written (the
	// table's version when it needed no commit).
	DeadLettersVersion, BronzeVersion int64
	// Rewritten counts the files removed from each table (kept rows of
	// theirs written anew), by target index (deserializer.DeadLetters,
	// deserializer.Readings).
	Rewritten [2]int
}

// Reprocessor replaces ranges of raw versions in deserialize's targets.
// Its methods are not safe for concurrent use.
type Reprocessor struct {
	client  catalogv1.CatalogServiceClient
	source  string
	appID   string // the follower's, whose txns are the position
	ownID   string // the reprocess commits' own
	pattern *parse.TopicPattern
	log     *slog.Logger
	tables  map[string]*delta.Table
}

// New returns a Reprocessor of the rows derived from source (the raw
// table) through client, mapping topics with pattern.
func New(client catalogv1.CatalogServiceClient, source string, pattern *parse.TopicPattern, log *slog.Logger) *Reprocessor {
	return &Reprocessor{client: client, source: source, appID: deserializer.AppID(source), ownID: AppID(source), pattern: pattern, log: log,
		tables: map[string]*delta.Table{}}
}

// target is one table being rewritten.
type target struct {
	table tablesink.Table
	store storage.Store
	snap  *delta.Snapshot
	// candidates are the live files that may hold rows of the range.
	candidates []delta.Add
	adds       []*catalogv1.AddFile
	rows       int64 // rows of the range written
	removed    int64 // rows of the range in the candidates
	kept       int64
}

// Run derives raw versions from..to (both included) with set and replaces
// their rows in dead letters, then in bronze. The range must be within
// [0, the last raw version both tables hold] (ErrRange).
func (p *Reprocessor) Run(ctx context.Context, from, to int64, set *rules.Set) (Result, error) {
	if from < 0 || to < from {
		return Result{}, fmt.Errorf("%w: [%d, %d] is not a range of versions", ErrRange, from, to)
	}
	var tg [2]*target
	position := int64(-1)
	for i := range tg {
		t, err := p.open(ctx, deserializer.Tables[i])
		if err != nil {
			return Result{}, err
		}
		v, ok := t.snap.TxnVersion(p.appID)
		if !ok {
			v = -1
		}
		if i == 0 || v < position {
			position = v
		}
		tg[i] = t
	}
	if to > position {
		return Result{}, fmt.Errorf("%w: [%d, %d] goes past raw version %d, the last one derived into both tables", ErrRange, from, to, position)
	}
	for _, t := range tg {
		if err := t.findCandidates(from, to); err != nil {
			return Result{}, err
		}
		if err := t.keep(ctx, from, to); err != nil {
			return Result{}, err
		}
	}
	if err := p.derive(ctx, from, to, set, tg); err != nil {
		return Result{}, err
	}

	params := map[string]string{
		"fromRawVersion":  strconv.FormatInt(from, 10),
		"toRawVersion":    strconv.FormatInt(to, 10),
		"rulesGeneration": strconv.FormatUint(set.Generation(), 10),
		"rulesDigest":     set.Digest(),
	}
	res := Result{
		Valid: tg[deserializer.Readings].rows, DeadLettered: tg[deserializer.DeadLetters].rows,
		RemovedValid: tg[deserializer.Readings].removed, RemovedDeadLettered: tg[deserializer.DeadLetters].removed,
	}
	var versions [2]int64
	cctx := ctx
	for i, t := range tg {
		v, err := p.commit(cctx, t, params)
		if err != nil {
			return Result{}, err
		}
		versions[i] = v
		res.Rewritten[i] = len(t.candidates)
		// The dead letters are replaced: bronze must follow even if the
		// caller gives up now, or the range's new readings are nowhere.
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancel()
	}
	res.DeadLettersVersion, res.BronzeVersion = versions[deserializer.DeadLetters], versions[deserializer.Readings]
	p.log.Info("reprocessed", "from_raw_version", from, "to_raw_version", to, "rules_generation", set.Generation(),
		"valid", res.Valid, "dead_lettered", res.DeadLettered, "removed_valid", res.RemovedValid,
		"removed_dead_lettered", res.RemovedDeadLettered, "dead_letters_version", res.DeadLettersVersion,
		"bronze_version", res.BronzeVersion, "rewritten_files", res.Rewritten)
	return res, nil
}

// open reads a target table's latest snapshot.
func (p *Reprocessor) open(ctx context.Context, tab tablesink.Table) (*target, error) {
	dt, err := p.deltaTable(ctx, tab.Name)
	if err != nil {
		return nil, err
	}
	snap, err := dt.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reprocess: snapshot of %s: %w", tab.Name, err)
	}
	return &target{table: tab, store: dt.Store(), snap: snap}, nil
}

// deltaTable opens a table at the location the catalog gives, once.
func (p *Reprocessor) deltaTable(ctx context.Context, name string) (*delta.Table, error) {
	if t := p.tables[name]; t != nil {
		return t, nil
	}
	resp, err := p.client.GetTable(ctx, &catalogv1.GetTableRequest{Name: name})
	if err != nil {
		return nil, fmt.Errorf("reprocess: get table %s: %w", name, err)
	}
	store, err := tablesink.OpenLocation(ctx, resp.GetTable().GetLocation())
	if err != nil {
		return nil, fmt.Errorf("reprocess: table %s: %w", name, err)
	}
	t := delta.Open(store, delta.WithLogger(p.log))
	p.tables[name] = t
	return t, nil
}

// findCandidates keeps the live files whose raw_version stats overlap
// [from, to], and those without such stats.
func (t *target) findCandidates(from, to int64) error {
	for _, a := range t.snap.Files() {
		lo, hi, ok, err := rawVersionRange(a.Stats)
		if err != nil {
			return fmt.Errorf("reprocess: %s: stats of %s: %w", t.table.Name, a.Path, err)
		}
		if !ok || (lo <= to && hi >= from) {
			t.candidates = append(t.candidates, a)
		}
	}
	return nil
}

// rawVersionRange returns the raw_version min and max of an add's stats
// JSON; ok is false when the stats do not say (no stats, or only nulls).
func rawVersionRange(stats string) (lo, hi int64, ok bool, err error) {
	if stats == "" {
		return 0, 0, false, nil
	}
	var s struct {
		Min map[string]json.RawMessage `json:"minValues"`
		Max map[string]json.RawMessage `json:"maxValues"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil {
		return 0, 0, false, err
	}
	minRaw, ok1 := s.Min[rawVersionColumn]
	maxRaw, ok2 := s.Max[rawVersionColumn]
	if !ok1 || !ok2 {
		return 0, 0, false, nil
	}
	if err := json.Unmarshal(minRaw, &lo); err != nil {
		return 0, 0, false, fmt.Errorf("min %s: %w", rawVersionColumn, err)
	}
	if err := json.Unmarshal(maxRaw, &hi); err != nil {
		return 0, 0, false, fmt.Errorf("max %s: %w", rawVersionColumn, err)
	}
	return lo, hi, true, nil
}

// keep writes the rows of each candidate outside [from, to] to a new file
// in the candidate's partition, and counts the range's rows it drops.
func (t *target) keep(ctx context.Context, from, to int64) error {
	outside := [][]reader.Filter{
		{{Column: rawVersionColumn, Op: reader.Lt, Value: from}},
		{{Column: rawVersionColumn, Op: reader.Gt, Value: to}},
	}
	inside := []reader.Filter{{Column: rawVersionColumn, Op: reader.Ge, Value: from}, {Column: rawVersionColumn, Op: reader.Le, Value: to}}
	for _, a := range t.candidates {
		var recs []arrow.RecordBatch
		release := func() {
			for _, r := range recs {
				r.Release()
			}
		}
		for _, filters := range outside {
			err := t.scan(ctx, a, reader.Options{Filters: filters}, func(rec arrow.RecordBatch) {
				rec.Retain()
				recs = append(recs, rec)
				t.kept += rec.NumRows()
			})
			if err != nil {
				release()
				return err
			}
		}
		err := t.scan(ctx, a, reader.Options{Columns: []string{rawVersionColumn}, Filters: inside}, func(rec arrow.RecordBatch) {
			t.removed += rec.NumRows()
		})
		if err == nil && len(recs) > 0 {
			err = t.write(ctx, a.PartitionValues, recs, false)
		}
		release()
		if err != nil {
			return err
		}
	}
	return nil
}

// scan reads the rows of one file of the target that opts selects.
func (t *target) scan(ctx context.Context, a delta.Add, opts reader.Options, fn func(arrow.RecordBatch)) error {
	s, err := reader.NewFiles(t.store, t.snap, []delta.Add{a}, opts)
	if err != nil {
		return fmt.Errorf("reprocess: read %s of %s: %w", a.Path, t.table.Name, err)
	}
	defer s.Close()
	for rec, err := range s.Records(ctx) {
		if err != nil {
			return fmt.Errorf("reprocess: read %s of %s: %w", a.Path, t.table.Name, err)
		}
		fn(rec)
	}
	return nil
}

// write writes recs as one data file of the partition and adds it to the
// target's commit. Rows kept from a rewritten file are added with
// dataChange=false: they are in the table already, and a reader following
// the table's changes (merge) must not read them again; the range's
// derived rows are added with dataChange=true.
func (t *target) write(ctx context.Context, partition map[string]string, recs []arrow.RecordBatch, dataChange bool) error {
	opts := t.table.Files
	opts.PartitionColumns = t.table.PartitionColumns
	opts.PartitionValues = partition
	add, err := datafile.Write(ctx, t.store, opts, recs...)
	if err != nil {
		return fmt.Errorf("reprocess: write a data file of %s (%v): %w", t.table.Name, partition, err)
	}
	t.adds = append(t.adds, &catalogv1.AddFile{
		Path:             add.Path,
		PartitionValues:  add.PartitionValues,
		Size:             add.Size,
		ModificationTime: add.ModificationTime,
		DataChange:       dataChange,
		Stats:            add.Stats,
		Tags:             add.Tags,
	})
	return nil
}

// derive reads the files raw versions from..to added and derives their
// rows with set, writing the targets' files every chunkRows rows.
func (p *Reprocessor) derive(ctx context.Context, from, to int64, set *rules.Set, tg [2]*target) error {
	raw, err := p.deltaTable(ctx, p.source)
	if err != nil {
		return err
	}
	rawSnap, err := raw.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("reprocess: snapshot of %s: %w", p.source, err)
	}
	rows := deserializer.New(p.pattern, set)
	flush := func() error {
		outs := rows.Flush()
		defer tablesink.ReleaseOutputs(outs)
		for i, o := range outs {
			for _, f := range o.Files {
				if err := tg[i].write(ctx, f.PartitionValues, []arrow.RecordBatch{f.Record}, true); err != nil {
					return err
				}
			}
			tg[i].rows += int64(o.Rows)
		}
		return nil
	}
	for start := from; start <= to; {
		resp, err := p.client.GetChanges(ctx, &catalogv1.GetChangesRequest{Table: p.source, StartVersion: start, EndVersion: &to, Limit: 100})
		if err != nil {
			return fmt.Errorf("reprocess: changes of %s from version %d: %w", p.source, start, err)
		}
		if len(resp.GetChanges()) == 0 {
			return fmt.Errorf("reprocess: %s has no version %d", p.source, start)
		}
		for _, ch := range resp.GetChanges() {
			v := ch.GetVersion()
			if v != start {
				return fmt.Errorf("reprocess: %s: the catalog answered version %d for %d", p.source, v, start)
			}
			for _, a := range ch.GetAdds() {
				if !a.GetDataChange() {
					continue // a compaction's rewrite of rows an earlier version added
				}
				if err := p.deriveFile(ctx, raw.Store(), rawSnap, v, a, rows); err != nil {
					return err
				}
				if rows.Rows() >= chunkRows {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			start = v + 1
		}
	}
	return flush()
}

// deriveFile derives the rows of one file raw version v added.
func (p *Reprocessor) deriveFile(ctx context.Context, store storage.Store, snap *delta.Snapshot, v int64, a *catalogv1.AddFile, rows *deserializer.Rows) error {
	add := delta.Add{Path: delta.CanonicalPath(a.GetPath(), ""), PartitionValues: a.GetPartitionValues(), Size: a.GetSize(),
		ModificationTime: a.GetModificationTime(), DataChange: true, Stats: a.GetStats()}
	s, err := reader.NewFiles(store, snap, []delta.Add{add}, reader.Options{})
	if err != nil {
		return fmt.Errorf("reprocess: %s version %d: %w", p.source, v, err)
	}
	defer s.Close()
	for rec, err := range s.Records(ctx) {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s version %d added %s, which no longer exists (vacuumed); that version cannot be derived again",
				ErrFilesGone, p.source, v, add.Path)
		}
		if err != nil {
			return fmt.Errorf("reprocess: %s version %d file %s: %w", p.source, v, add.Path, err)
		}
		if err := rows.Append(ctx, v, rec); err != nil {
			rows.Discard()
			var fe *rules.FailError
			if errors.As(err, &fe) {
				return fmt.Errorf("%w: %w", ErrFailRule, fe)
			}
			return err
		}
	}
	return nil
}

// commit removes the target's candidates and adds its new files in one
// commit that read the candidates at the snapshot's version. A target
// with nothing to remove or add is not committed.
func (p *Reprocessor) commit(ctx context.Context, t *target, params map[string]string) (int64, error) {
	if len(t.candidates) == 0 && len(t.adds) == 0 {
		return t.snap.Version(), nil
	}
	seq, ok := t.snap.TxnVersion(p.ownID)
	if !ok {
		seq = 0
	}
	req := &catalogv1.CommitRequest{
		Table:               t.table.Name,
		ReadVersion:         t.snap.Version(),
		Operation:           "REPROCESS",
		OperationParameters: params,
		Adds:                t.adds,
		Txns:                []*catalogv1.Txn{{AppId: p.ownID, Version: seq + 1}},
		OperationMetrics: map[string]string{
			"numRemovedFiles": strconv.Itoa(len(t.candidates)),
			"numAddedFiles":   strconv.Itoa(len(t.adds)),
			"numDeletedRows":  strconv.FormatInt(t.removed, 10),
			"numCopiedRows":   strconv.FormatInt(t.kept, 10),
			"numOutputRows":   strconv.FormatInt(t.kept+t.rows, 10),
		},
	}
	for _, a := range t.candidates {
		path := delta.EncodePath(a.Path)
		req.Removes = append(req.Removes, &catalogv1.RemoveFile{Path: path, PartitionValues: a.PartitionValues, Size: a.Size, DataChange: true})
		req.ReadFiles = append(req.ReadFiles, path)
	}
	resp, err := p.client.Commit(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Aborted {
			return 0, fmt.Errorf("%w: reprocess of %s: %w", pipeline.ErrAborted, t.table.Name, err)
		}
		return 0, fmt.Errorf("reprocess: commit to %s at read version %d: %w", t.table.Name, t.snap.Version(), err)
	}
	return resp.GetVersion(), nil
}
