// Package goldsink is merge's pipeline sink: it merges a deduplicated batch
// of bronze rows into gold.plant_sensor_readings and commits the result
// through the catalog together with the bronze position (a txn).
//
// A merge reads gold's latest snapshot from the table's log, picks the files
// that may hold the batch's keys (mergeplan.Candidates: the batch's
// event_date partitions, then the files whose sensor_id and ts bounds admit
// one of the batch's rows), and reads only the key columns of those. With
// first_wins, rows whose key is found are skipped and the rest are written
// as new files: the commit adds files and removes none, and it names the
// candidates in read_files, so that a compaction that rewrote one of them
// meanwhile aborts it (the rows it skipped might have moved). With
// latest_wins, the files holding keys that a newer bronze row replaces are
// rewritten, streamed in chunks, and removed in the same commit. An Aborted
// commit is returned wrapping pipeline.ErrAborted: the runner drops the
// batch and merges it again from bronze against the new gold.
package goldsink

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
	"github.com/plantlake/plantlake/services/merge/internal/mergeplan"
)

// DefaultMaxFileRows bounds the rows of one file the sink writes, and so
// the rows a rewrite holds in memory at once (about 100 bytes a row in
// Arrow, and the encoded file).
const DefaultMaxFileRows = 256 << 10

// Options configure a Sink.
type Options struct {
	Strategy mergeplan.Strategy
	Key      mergeplan.KeySpec
	// MaxFileRows bounds the rows per written file; DefaultMaxFileRows when 0.
	MaxFileRows int
	// Now is the clock of merged_at; time.Now when nil.
	Now func() time.Time
	// KeyCacheBytes bounds the cache of gold files' key hashes (see
	// keyCache); 0 means no cache (DefaultKeyCacheBytes is merge's default).
	KeyCacheBytes int64
}

// Counts are what the sink did since it was opened.
type Counts struct {
	// Inserted rows were new keys; Updated rows replaced a gold row.
	Inserted, Updated int64
	// Duplicates are bronze rows dropped: a newer row of their key was in
	// the batch, or (first_wins) the key was in gold, or (latest_wins) gold's
	// row was not older.
	Duplicates int64
	// CandidateFiles and RewrittenFiles count the gold files whose stats
	// admitted a batch's key and the files rewritten. CachedFiles are the
	// candidates passed over without a read: the key cache held their keys
	// and none was the batch's.
	CandidateFiles, RewrittenFiles, CachedFiles int64
	// DerivedFiles are the files another writer's compaction added whose
	// keys the cache took from the files they replaced, instead of
	// reading them.
	DerivedFiles int64
}

// Sink merges batches into gold.
type Sink struct {
	target *tablesink.Target
	client catalogv1.CatalogServiceClient
	table  *delta.Table
	store  storage.Store
	opts   Options
	log    *slog.Logger
	cache  *mergeplan.StatsCache
	// keys caches gold files' key hashes (nil: no cache). It holds the
	// files of gold's version keysBase (-1: unknown, the next snapshot
	// sweeps it) and of keysOwn (-1: none), this sink's last commit when
	// others committed between keysBase and it: a later snapshot follows
	// the commits after keysBase but keysOwn (see followKeys).
	keys              *keyCache
	keysBase, keysOwn int64

	// beforeCommit, when set (by tests), runs between the plan and the
	// catalog commit: where a concurrent compaction would land.
	beforeCommit func(ctx context.Context)

	inserted, updated, duplicates          atomic.Int64
	candidates, rewritten, cached, derived atomic.Int64
}

// Open creates gold through the catalog if it is missing and opens it.
func Open(ctx context.Context, client catalogv1.CatalogServiceClient, opts Options, log *slog.Logger) (*Sink, error) {
	if opts.Strategy == "" {
		opts.Strategy = mergeplan.FirstWins
	}
	if opts.MaxFileRows <= 0 {
		opts.MaxFileRows = DefaultMaxFileRows
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Key.Columns()) == 0 {
		k, err := mergeplan.NewKeySpec(gold.KeyColumns)
		if err != nil {
			return nil, err
		}
		opts.Key = k
	}
	target, err := tablesink.Open(ctx, client, gold.Table, log)
	if err != nil {
		return nil, err
	}
	store, err := tablesink.OpenLocation(ctx, target.Location())
	if err != nil {
		return nil, fmt.Errorf("gold: %w", err)
	}
	return &Sink{
		target: target,
		client: client,
		table:  delta.Open(store, delta.WithLogger(log)),
		store:  store,
		opts:   opts,
		log:    log,
		cache:  mergeplan.NewStatsCache(),
		keys:   newKeyCache(opts.KeyCacheBytes),
		// No commit of ours yet: the first snapshot is swept.
		keysBase: -1, keysOwn: -1,
	}, nil
}

// Counts returns the counters; safe from any goroutine.
func (s *Sink) Counts() Counts {
	return Counts{
		Inserted: s.inserted.Load(), Updated: s.updated.Load(), Duplicates: s.duplicates.Load(),
		CandidateFiles: s.candidates.Load(), RewrittenFiles: s.rewritten.Load(), CachedFiles: s.cached.Load(),
		DerivedFiles: s.derived.Load(),
	}
}

// Positions reads gold's txn positions.
func (s *Sink) Positions(ctx context.Context, appIDs []string) (pipeline.Positions, error) {
	return s.target.Positions(ctx, appIDs)
}

// row outcomes in a merge.
const (
	outInsert uint8 = iota
	outSkip
	outUpdate
)

// plan is one batch's merge against one gold snapshot.
type plan struct {
	d          *mergeplan.Data
	snap       *delta.Snapshot
	parts      []*mergeplan.Partition
	candidates []delta.Add
	out        []uint8
	// rewrite are the candidates that hold a key latest_wins replaces.
	rewrite  []delta.Add
	mergedAt int64
	// hashes are the rows' key hashes (with the key cache only).
	hashes []uint64
	// cached counts the candidates the key cache ruled out.
	cached int
	// written are the key hashes of the files written, for the key cache
	// once the commit succeeded.
	written []writtenKeys
}

// writtenKeys are the key hashes of a file the merge wrote.
type writtenKeys struct {
	path   string
	hashes []uint64
}

// Commit merges c's rows into gold and commits them with c's txns.
func (s *Sink) Commit(ctx context.Context, c pipeline.Commit[*mergeplan.Data]) (pipeline.Committed, error) {
	started := time.Now()
	snap, err := s.table.Snapshot(ctx)
	if err != nil {
		return pipeline.Committed{}, fmt.Errorf("snapshot of %s: %w", gold.Name, err)
	}
	if snap.Version() < c.ReadVersion {
		return pipeline.Committed{}, fmt.Errorf("snapshot of %s is at version %d, behind the read version %d", gold.Name, snap.Version(), c.ReadVersion)
	}
	files := snap.Files()
	s.cache.Trim(files)
	if s.keys != nil && snap.Version() != s.keysBase {
		s.followKeys(ctx, snap, files)
	}
	p := &plan{
		d:        c.Data,
		snap:     snap,
		parts:    mergeplan.Partitions(c.Data, s.opts.Key),
		out:      make([]uint8, len(c.Data.Rows)),
		mergedAt: s.opts.Now().UnixMicro(),
	}
	p.candidates = mergeplan.Candidates(c.Data, p.parts, files, s.cache)
	planned := time.Now()
	if err := s.match(ctx, p); err != nil {
		return pipeline.Committed{}, err
	}
	matched := time.Now()

	req := &catalogv1.CommitRequest{
		Table: gold.Name,
		// The positions were read at c.ReadVersion; the files at the newer
		// snapshot. A winner after c.ReadVersion that wrote our app id's txn,
		// removed a file read, or added data to a partition read aborts us.
		ReadVersion: c.ReadVersion,
		Operation:   "MERGE",
		OperationParameters: map[string]string{
			"predicate": s.opts.Key.String(),
			"strategy":  string(s.opts.Strategy),
		},
		ReadAppIds: c.ReadAppIDs,
	}
	for _, x := range c.Txns {
		req.Txns = append(req.Txns, &catalogv1.Txn{AppId: x.AppID, Version: x.Version})
	}
	for _, f := range p.candidates {
		req.ReadFiles = append(req.ReadFiles, delta.EncodePath(f.Path))
	}
	var res pipeline.Committed
	addFile := func(add delta.Add) {
		res.Files++
		res.Bytes += add.Size
		req.Adds = append(req.Adds, addFileProto(add))
	}
	inserted, updated, err := s.write(ctx, p, addFile)
	if err != nil {
		return pipeline.Committed{}, err
	}
	for _, f := range p.rewrite {
		size := f.Size
		req.Removes = append(req.Removes, &catalogv1.RemoveFile{
			Path: delta.EncodePath(f.Path), PartitionValues: f.PartitionValues, Size: size, DataChange: true,
		})
	}
	req.BlindAppend = len(req.ReadFiles) == 0 && len(req.Removes) == 0
	dups := int64(c.Data.Duplicates) + int64(len(c.Data.Rows)) - inserted - updated
	req.OperationMetrics = map[string]string{
		"numSourceRows":          strconv.Itoa(c.Data.Appended),
		"numTargetRowsInserted":  strconv.FormatInt(inserted, 10),
		"numTargetRowsUpdated":   strconv.FormatInt(updated, 10),
		"numTargetFilesAdded":    strconv.Itoa(len(req.Adds)),
		"numTargetFilesRemoved":  strconv.Itoa(len(req.Removes)),
		"numCandidateFilesRead":  strconv.Itoa(len(p.candidates)),
		"numSourceRowsDuplicate": strconv.FormatInt(dups, 10),
	}
	written := time.Now()
	if s.beforeCommit != nil {
		s.beforeCommit(ctx)
	}
	resp, err := s.client.Commit(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Aborted {
			return pipeline.Committed{}, fmt.Errorf("%w: merge into %s: %w", pipeline.ErrAborted, gold.Name, err)
		}
		return pipeline.Committed{}, fmt.Errorf("commit the merge into %s at read version %d: %w", gold.Name, c.ReadVersion, err)
	}
	s.inserted.Add(inserted)
	s.updated.Add(updated)
	s.duplicates.Add(dups)
	s.candidates.Add(int64(len(p.candidates)))
	s.rewritten.Add(int64(len(p.rewrite)))
	s.cached.Add(int64(p.cached))
	res.Version = resp.GetVersion()
	if s.keys != nil {
		for _, f := range p.rewrite {
			s.keys.drop(f.Path)
		}
		for _, w := range p.written {
			s.keys.put(w.path, w.hashes)
		}
		// A commit right after the snapshot: the cache holds the files
		// of this version. Other writers' commits in between (a
		// compaction of another partition or of files not read) are
		// followed by the next batch.
		s.keysBase, s.keysOwn = res.Version, -1
		if res.Version != snap.Version()+1 {
			s.keysBase, s.keysOwn = snap.Version(), res.Version
		}
	}
	s.log.Debug("merged", "version", res.Version, "rows", len(c.Data.Rows), "inserted", inserted, "updated", updated,
		"duplicates", dups, "gold_files", len(files), "candidates", len(p.candidates), "cached", p.cached, "rewritten", len(p.rewrite),
		"plan", planned.Sub(started), "match", matched.Sub(planned), "write", written.Sub(matched), "commit", time.Since(written))
	return res, nil
}

// maxFollowCommits is the most commits followKeys reads; beyond, the
// cache is only swept.
const maxFollowCommits = 100

// followKeys brings the key cache from keysBase to snap: it reads the
// commits in between but this sink's own (applied when it committed) and
// applies them in order (keyCache.follow), so that the file a compaction
// wrote gets its keys from its inputs' entries instead of being read
// whole; then it sweeps the entries of files not in snap. The sweep is
// all it does when the base is unknown, the gap longer than
// maxFollowCommits, or a commit cannot be read (cleaned up, an error):
// the cache then only loses entries.
func (s *Sink) followKeys(ctx context.Context, snap *delta.Snapshot, files []delta.Add) {
	from, to, own := s.keysBase+1, snap.Version(), s.keysOwn
	defer func() {
		s.keys.sweep(files)
		s.keysBase, s.keysOwn = snap.Version(), -1
	}()
	if s.keysBase < 0 || to < from || to-from >= maxFollowCommits || (own >= 0 && (own < from || own > to)) {
		return
	}
	ranges := [][2]int64{{from, to}}
	if own >= 0 {
		ranges = [][2]int64{{from, own - 1}, {own + 1, to}}
	}
	var commits [][]delta.Action
	for _, r := range ranges {
		if r[0] > r[1] {
			continue
		}
		cs, err := s.table.Commits(ctx, r[0], r[1])
		if err != nil {
			s.log.Debug("key cache: sweeping instead of following gold's log", "from", r[0], "to", r[1], "error", err)
			return
		}
		commits = append(commits, cs...)
	}
	derived := 0
	for _, c := range commits {
		derived += s.keys.follow(c)
	}
	s.derived.Add(int64(derived))
}

// match reads the key columns of the candidate files and decides each
// batch row's outcome. Gold rows whose ts lies outside the batch's range
// for the partition are passed over before their key is hashed. With the
// key cache, a candidate whose cached hashes hold none of the batch's keys
// (of the rows its stats admit) is not read, and a candidate read without
// an entry gets one.
func (s *Sink) match(ctx context.Context, p *plan) error {
	cols := s.opts.Key.Columns()
	latest := s.opts.Strategy == mergeplan.LatestWins
	if latest {
		cols = append(cols, gold.OrderColumns...)
	}
	parts := make(map[string]*mergeplan.Partition, len(p.parts))
	for _, part := range p.parts {
		parts[part.Value] = part
	}
	if s.keys != nil {
		p.hashes = make([]uint64, len(p.d.Rows))
		for i := range p.d.Rows {
			k := s.opts.Key.Key(&p.d.Rows[i])
			p.hashes[i] = s.keys.hash(&k)
		}
	}
	kr := mergeplan.NewKeyReader(s.opts.Key)
	rr := gold.NewRowReader()
	var g gold.Row
	for _, f := range p.candidates {
		part := parts[f.PartitionValues[gold.PartitionColumn]]
		// build collects the file's key hashes when the cache has none.
		var build []uint64
		if s.keys != nil {
			if set := s.keys.get(f.Path); set != nil {
				hit := false
				part.Admitted(p.d, s.cache.Get(&f), func(ri int32) bool {
					hit = set.has(p.hashes[ri])
					return !hit
				})
				if !hit {
					p.cached++
					continue
				}
			} else if n := s.cache.Get(&f).NumRecords; n <= int64(s.keys.maxRows()) {
				build = make([]uint64, 0, max(n, 1024))
			}
		}
		holds := false
		err := s.scan(ctx, p.snap, f, cols, func(rec arrow.RecordBatch) error {
			if err := kr.Bind(rec); err != nil {
				return err
			}
			if latest {
				if err := rr.Bind(rec, cols); err != nil {
					return err
				}
			}
			for i := range int(rec.NumRows()) {
				var k mergeplan.Key
				if build != nil && len(build) >= s.keys.maxRows() {
					build = nil // more rows than its stats said: not kept
				}
				if build != nil {
					k = kr.Key(i)
					build = append(build, s.keys.hash(&k))
					if k.Nulls&(1<<gold.ColTS) == 0 && !part.AnyNull() && !part.MayHoldTS(k.TS) {
						continue
					}
				} else {
					if ts, ok := kr.TS(i); ok && !part.AnyNull() && !part.MayHoldTS(ts) {
						continue
					}
					k = kr.Key(i)
				}
				idx, ok := p.d.Index[k]
				if !ok {
					continue
				}
				if !latest {
					p.out[idx] = outSkip
					continue
				}
				rr.Read(i, &g)
				if p.d.Rows[idx].Newer(&g) {
					p.out[idx] = outUpdate
					holds = true
				} else {
					p.out[idx] = outSkip
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if build != nil {
			// Read whole: the file's keys, whatever the batch holds.
			s.keys.put(f.Path, build)
		}
		if holds {
			p.rewrite = append(p.rewrite, f)
		}
	}
	return nil
}

// scanBatchRows caps the rows of a record batch read from gold.
const scanBatchRows = 16 << 10

// scan streams the columns cols of one gold file to fn.
func (s *Sink) scan(ctx context.Context, snap *delta.Snapshot, f delta.Add, cols []string, fn func(arrow.RecordBatch) error) error {
	sc, err := reader.NewFiles(s.store, snap, []delta.Add{f}, reader.Options{Columns: cols, BatchRows: scanBatchRows})
	if err != nil {
		return fmt.Errorf("read %s of %s: %w", f.Path, gold.Name, err)
	}
	defer sc.Close()
	for rec, err := range sc.Records(ctx) {
		if err != nil {
			return fmt.Errorf("read %s of %s: %w", f.Path, gold.Name, err)
		}
		if err := fn(rec); err != nil {
			return fmt.Errorf("read %s of %s: %w", f.Path, gold.Name, err)
		}
	}
	return nil
}

// write writes the new and replacing rows per partition (sorted by
// sensor_id and ts), then the rewritten files: each streamed a record batch
// at a time, with the replaced rows filtered out column-wise, in files of
// at most MaxFileRows rows. Each file's add goes to add.
func (s *Sink) write(ctx context.Context, p *plan, add func(delta.Add)) (inserted, updated int64, err error) {
	b := gold.NewBuilder(nil)
	defer b.Release()
	w := fileWriter{s: s, b: b, add: add, p: p}
	for _, part := range p.parts {
		w.partition = part.Value
		w.plan(p, part)
		for _, ri := range part.Rows {
			switch p.out[ri] {
			case outSkip:
				continue
			case outUpdate:
				updated++
			default:
				inserted++
			}
			if p.hashes != nil {
				w.hash(p.hashes[ri])
			}
			r := p.d.Rows[ri]
			s.stamp(&r, p.mergedAt)
			if err := w.append(ctx, &r); err != nil {
				return 0, 0, err
			}
		}
		if err := w.flush(ctx); err != nil {
			return 0, 0, err
		}
	}
	kr := mergeplan.NewKeyReader(s.opts.Key)
	for _, f := range p.rewrite {
		w.partition = f.PartitionValues[gold.PartitionColumn]
		// Too large a file for the cache: no hashes.
		w.hashes, w.overflow = nil, s.keys != nil && s.cache.Get(&f).NumRecords > int64(s.keys.maxRows())
		err := s.scan(ctx, p.snap, f, nil, func(rec arrow.RecordBatch) error {
			if err := kr.Bind(rec); err != nil {
				return err
			}
			mb := array.NewBooleanBuilder(memory.DefaultAllocator)
			defer mb.Release()
			mb.Reserve(int(rec.NumRows()))
			dropped := 0
			for i := range int(rec.NumRows()) {
				k := kr.Key(i)
				idx, ok := p.d.Index[k]
				keep := !ok || p.out[idx] != outUpdate
				if !keep {
					dropped++
				} else if p.hashes != nil && !w.overflow {
					w.hash(s.keys.hash(&k))
				}
				mb.UnsafeAppend(keep)
			}
			if dropped == 0 {
				return w.appendRecord(ctx, rec)
			}
			mask := mb.NewArray()
			defer mask.Release()
			kept, err := compute.FilterRecordBatch(ctx, rec, mask, compute.DefaultFilterOptions())
			if err != nil {
				return fmt.Errorf("filter the replaced rows: %w", err)
			}
			defer kept.Release()
			return w.appendRecord(ctx, kept)
		})
		if err != nil {
			return 0, 0, fmt.Errorf("rewrite: %w", err)
		}
		if err := w.flushRecords(ctx); err != nil {
			return 0, 0, err
		}
	}
	return inserted, updated, nil
}

// stamp sets merged_at.
func (s *Sink) stamp(r *gold.Row, mergedAt int64) {
	r.MergedAt = mergedAt
	r.Nulls &^= 1 << gold.ColMergedAt
}

// rowGroupRows caps a written file's row groups: the Parquet writer holds
// a row group's encoded pages until it closes, so smaller groups keep a
// rewrite's memory down (and give readers finer min/max stats).
const rowGroupRows = 64 << 10

// plainColumns are gold's string columns, written without dictionary
// encoding. arrow-go's dictionary encoder hashes every value through an
// interface (an allocation each): rewriting four files of 250,000 rows took
// 4.13 s with dictionaries and 2.23 s plain (BenchmarkRewrite, one core),
// for files 2.3 times larger (2.90 MB against 1.26 MB; Snappy still folds
// the repeated strings). The catalog's compaction writes dictionaries again
// for the small files; see docs/decisions.md (merge).
var plainColumns = func() []string {
	var out []string
	for _, f := range gold.ArrowSchema.Fields() {
		if f.Type.ID() == arrow.STRING {
			out = append(out, f.Name)
		}
	}
	return out
}()

// fileWriter writes the rows of one partition as files of at most
// MaxFileRows rows: rows appended one by one through the builder, or record
// batches of a rewritten file passed through as they are.
type fileWriter struct {
	s         *Sink
	p         *plan
	b         *gold.Builder
	add       func(delta.Add)
	partition string
	recs      []arrow.RecordBatch
	recRows   int64
	// hashes are the key hashes of the rows since the last file (with the
	// key cache only); overflow is set when the file has too many rows
	// for the cache, and hashes are no longer collected.
	hashes   []uint64
	overflow bool
	// left is how many rows the partition being written has still to
	// append and perRow their string bytes a row: each file's builder
	// reserves room for its rows at once.
	left   int
	perRow *gold.StringBytes
}

// plan counts the rows of part that write appends (those not skipped) and
// their string bytes, for the builder to reserve.
func (w *fileWriter) plan(p *plan, part *mergeplan.Partition) {
	var total gold.StringBytes
	n := 0
	for _, ri := range part.Rows {
		if p.out[ri] == outSkip {
			continue
		}
		n++
		total.AddRow(&p.d.Rows[ri])
	}
	w.left, w.perRow = n, total.PerRow(n)
}

// hash collects h for the next file's cache entry.
func (w *fileWriter) hash(h uint64) {
	if w.overflow {
		return
	}
	if len(w.hashes) >= w.s.keys.maxRows() {
		w.overflow, w.hashes = true, nil
		return
	}
	w.hashes = append(w.hashes, h)
}

// appendRecord keeps rec (retained) for the next file, writing the file
// once MaxFileRows rows are kept.
func (w *fileWriter) appendRecord(ctx context.Context, rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		return nil
	}
	rec.Retain()
	w.recs = append(w.recs, rec)
	w.recRows += rec.NumRows()
	if w.recRows >= int64(w.s.opts.MaxFileRows) {
		return w.flushRecords(ctx)
	}
	return nil
}

// flushRecords writes the kept record batches as one file.
func (w *fileWriter) flushRecords(ctx context.Context) error {
	if len(w.recs) == 0 {
		return nil
	}
	defer func() {
		for _, r := range w.recs {
			r.Release()
		}
		w.recs, w.recRows = nil, 0
	}()
	return w.writeFile(ctx, w.recs...)
}

func (w *fileWriter) append(ctx context.Context, r *gold.Row) error {
	if w.b.Len() == 0 && w.left > 0 {
		w.b.Reserve(min(w.left, w.s.opts.MaxFileRows), w.perRow)
	}
	w.left--
	w.b.Append(r)
	if w.b.Len() >= w.s.opts.MaxFileRows {
		return w.flush(ctx)
	}
	return nil
}

func (w *fileWriter) flush(ctx context.Context) error {
	if w.b.Len() == 0 {
		return nil
	}
	rec := w.b.NewRecord()
	defer rec.Release()
	return w.writeFile(ctx, rec)
}

// writeFile writes recs as one data file of the partition.
func (w *fileWriter) writeFile(ctx context.Context, recs ...arrow.RecordBatch) error {
	add, err := datafile.Write(ctx, w.s.store, datafile.Options{
		PartitionColumns: []string{gold.PartitionColumn},
		PartitionValues:  map[string]string{gold.PartitionColumn: w.partition},
		RowGroupRows:     rowGroupRows,
		PlainColumns:     plainColumns,
	}, recs...)
	if err != nil {
		return fmt.Errorf("write a data file of %s (event_date %q): %w", gold.Name, w.partition, err)
	}
	if w.p != nil && w.p.hashes != nil && !w.overflow {
		w.p.written = append(w.p.written, writtenKeys{path: delta.CanonicalPath(add.Path, ""), hashes: w.hashes})
	}
	w.hashes, w.overflow = nil, false
	w.add(add)
	return nil
}

func addFileProto(a delta.Add) *catalogv1.AddFile {
	return &catalogv1.AddFile{
		Path:             a.Path,
		PartitionValues:  a.PartitionValues,
		Size:             a.Size,
		ModificationTime: a.ModificationTime,
		DataChange:       a.DataChange,
		Stats:            a.Stats,
		Tags:             a.Tags,
	}
}
