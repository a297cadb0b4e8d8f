package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/services/catalog/internal/maintenance"
)

// Checkpoint writes a checkpoint of the table's latest version and, if
// cleanupLog is set, deletes the log files older than the log retention that
// it makes unnecessary. It returns the version and the number of log files
// deleted.
func (c *Catalog) Checkpoint(ctx context.Context, name string, cleanupLog bool) (int64, int64, error) {
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return 0, 0, err
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	v, err := t.checkpoint(ctx)
	if err != nil {
		return 0, 0, err
	}
	if !cleanupLog {
		return v, 0, nil
	}
	deleted, err := t.dt.CleanupMetadata(ctx)
	if err != nil {
		return v, int64(len(deleted)), fmt.Errorf("log cleanup of %s: %w", t.name, err)
	}
	t.lastLogCleanup = time.Now()
	return v, int64(len(deleted)), nil
}

// checkpoint checkpoints the latest version; the caller holds t.opMu.
func (t *table) checkpoint(ctx context.Context) (int64, error) {
	t.mu.RLock()
	v := t.st.version
	t.mu.RUnlock()
	res, err := t.dt.Checkpoint(ctx, v)
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s at %d: %w", t.name, v, err)
	}
	t.mu.Lock()
	t.st.lastCheckpoint = max(t.st.lastCheckpoint, res.Version)
	t.mu.Unlock()
	t.checkpointActions = res.NumActions
	t.log.Info("checkpoint written", "version", res.Version, "actions", res.NumActions, "bytes", res.SizeInBytes)
	return res.Version, nil
}

// VacuumResult lists what a vacuum deleted (or would delete).
type VacuumResult struct {
	Files []string
	Bytes int64
	// More is set when candidates were left for the next call (more than
	// maxVacuumFiles).
	More bool
}

// Vacuum deletes data files no version within the retention references.
// retention nil means the table's delta.deletedFileRetentionDuration.
func (c *Catalog) Vacuum(ctx context.Context, name string, retention *time.Duration, dryRun bool) (VacuumResult, error) {
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return VacuumResult{}, err
	}
	if retention != nil && *retention < c.cfg.MinVacuumRetention {
		return VacuumResult{}, badField("retention", "%v is below the catalog's minimum %v: files of commits in flight could be deleted (--min-vacuum-retention)",
			*retention, c.cfg.MinVacuumRetention)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	return t.vacuum(ctx, retention, dryRun)
}

// maxVacuumFiles bounds the files one vacuum deletes; the next run goes on
// (automatic vacuum runs again at the table's next maintenance, not an
// interval later: a table committed every 100 ms removes ~36,000 files an
// hour, more than one run a vacuum interval would delete). A variable for
// tests.
var maxVacuumFiles = 10000

func (t *table) vacuum(ctx context.Context, retention *time.Duration, dryRun bool) (VacuumResult, error) {
	t.mu.RLock()
	// The table's version, extended to by name: no listing of the log.
	opts := delta.VacuumOptions{DryRun: true, Version: t.st.version}
	t.mu.RUnlock()
	if retention != nil {
		opts.Retention = *retention
		if *retention == 0 {
			// VacuumOptions reads 0 as "the table's retention"; the
			// smallest positive duration is what the caller meant.
			opts.Retention = time.Nanosecond
		}
	}
	// List with the library's rules, then delete a bounded number here, so
	// that one call does bounded work and the sizes can be reported.
	candidates, err := t.dt.Vacuum(ctx, opts)
	if err != nil {
		return VacuumResult{}, fmt.Errorf("vacuum %s: %w", t.name, err)
	}
	var res VacuumResult
	if len(candidates) > maxVacuumFiles {
		candidates, res.More = candidates[:maxVacuumFiles], true
	}
	for _, p := range candidates {
		t.mu.RLock()
		_, live := t.st.files[p]
		t.mu.RUnlock()
		if live {
			continue // committed after the snapshot vacuum listed against
		}
		fi, err := t.store.Stat(ctx, p)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("vacuum %s: %w", t.name, err)
		}
		if !dryRun {
			if err := t.store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotExist) {
				return res, fmt.Errorf("vacuum %s: delete %s: %w", t.name, p, err)
			}
		}
		res.Files = append(res.Files, p)
		res.Bytes += fi.Size
	}
	if !dryRun && len(res.Files) > 0 {
		t.log.Info("vacuum deleted files", "files", len(res.Files), "bytes", res.Bytes)
	}
	return res, nil
}

// OptimizeRequest asks for compaction of small files.
type OptimizeRequest struct {
	Table string
	// TargetFileSize is the size to aim for (0: the table's policy).
	TargetFileSize int64
	// MaxFiles bounds the input files of this call (0: the catalog's bound).
	MaxFiles int
	// PartitionFilters restrict compaction to matching partitions; only
	// partition columns, compared as partition value strings.
	PartitionFilters []Filter
	// minFiles is the least number of small files a partition needs to be
	// compacted (2 for explicit calls; the policy's for automatic ones).
	minFiles int
}

// OptimizeResult says what a compaction did.
type OptimizeResult struct {
	Version                  int64
	Committed                bool
	FilesRemoved, FilesAdded int64
	// FilesStitched counts the added files made by copying their inputs'
	// column chunks (datafile.Stitch) rather than rewriting their rows.
	FilesStitched            int64
	BytesRemoved, BytesAdded int64
}

// Optimize compacts small files (below half the target size) of each
// partition into files near the target size, reading at most MaxFiles
// files. Files of many rows (StitchMinRowGroupRows) are stitched: their
// column chunks are copied into the new file as they are, never decoded,
// so the new file's bytes are all a compaction holds, and the target is
// the table's or MaxOptimizeMemory, whichever is smaller. Other files are
// rewritten, their rows decoded (and sorted by the table's sortBy) and
// encoded again; once such a compaction has shown how the table's rows
// decode, the target of rewriting is at most the file that
// MaxOptimizeMemory lets one compaction write, so that such a file is not
// compacted again. It commits the result as one OPTIMIZE version
// (dataChange=false, so concurrent appends do not conflict with it).
func (c *Catalog) Optimize(ctx context.Context, req OptimizeRequest) (OptimizeResult, error) {
	t, err := c.table(ctx, req.Table, "table")
	if err != nil {
		return OptimizeResult{}, err
	}
	switch {
	case req.TargetFileSize < 0:
		return OptimizeResult{}, badField("target_file_size", "must be >= 0")
	case req.MaxFiles < 0:
		return OptimizeResult{}, badField("max_files", "must be >= 0")
	}
	if req.MaxFiles == 0 || req.MaxFiles > c.cfg.MaxOptimizeFiles {
		req.MaxFiles = c.cfg.MaxOptimizeFiles
	}
	if req.minFiles < 2 {
		req.minFiles = 2
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	return c.optimize(ctx, t, req)
}

func (c *Catalog) optimize(ctx context.Context, t *table, req OptimizeRequest) (OptimizeResult, error) {
	snap := t.latestSnapshot()
	pol, _ := maintenance.PolicyFrom(snap.Properties)
	target := req.TargetFileSize
	if target == 0 {
		target = pol.OptimizeTargetSize
	}
	// Files are stitched (their column chunks copied, never decoded) up to
	// the target or the memory bound, as the new file's bytes are held
	// until they are written; files rewritten row by row are bounded by the
	// memory their decoded rows take.
	stitchTarget := min(target, c.cfg.MaxOptimizeMemory)
	rewriteTarget := target
	if t.decodedPerFileByte > 0 {
		rewriteTarget = min(target, int64(float64(c.cfg.MaxOptimizeMemory)/t.decodedPerFileByte))
	}
	match, err := partitionMatcher(snap.PartitionColumns, req.PartitionFilters)
	if err != nil {
		return OptimizeResult{}, err
	}
	stitchRows := c.stitchMinRows()
	var bins []compactionBin
	toRewrite := snap.Files
	if stitchRows > 0 {
		var toStitch []delta.Add
		toStitch, toRewrite = splitByRows(snap.Files, stitchRows)
		for _, b := range planCompaction(toStitch, snap.PartitionColumns, stitchTarget, req.MaxFiles, c.cfg.MaxOptimizeBytes, req.minFiles, match) {
			if b = boundRecopy(b, stitchTarget/16); len(b) >= 2 {
				bins = append(bins, compactionBin{files: b, stitch: true})
			}
		}
	}
	files, bytes := req.MaxFiles, c.cfg.MaxOptimizeBytes
	for _, b := range bins {
		for _, f := range b.files {
			files--
			bytes -= f.Size
		}
	}
	if files > 0 && bytes > 0 {
		for _, b := range planCompaction(toRewrite, snap.PartitionColumns, rewriteTarget, files, bytes, req.minFiles, match) {
			bins = append(bins, compactionBin{files: b})
		}
	}
	if len(bins) == 0 {
		return OptimizeResult{}, nil
	}
	dataSchema, err := dataArrowSchema(snap.Schema, snap.PartitionColumns)
	if err != nil {
		return OptimizeResult{}, fmt.Errorf("optimize %s: %w", t.name, err)
	}
	var res OptimizeResult
	var adds []delta.Add
	var removes []delta.Remove
	for _, bin := range bins {
		var add delta.Add
		var used []delta.Add
		if bin.stitch {
			add, err = datafile.Stitch(ctx, t.store, datafile.StitchOptions{PartitionColumns: snap.PartitionColumns, MinRowGroupRows: stitchRows}, bin.files)
			switch {
			case err == nil:
				used = bin.files
				res.FilesStitched++
			case errors.Is(err, datafile.ErrNotStitchable):
				t.log.Debug("rewriting files instead of stitching them", "files", len(bin.files), "why", err)
			default:
				return OptimizeResult{}, fmt.Errorf("optimize %s: stitch files: %w", t.name, err)
			}
		}
		if used == nil {
			add, used, err = c.rewrite(ctx, t, snap.PartitionColumns, dataSchema, pol, bin.files)
			if err != nil {
				return OptimizeResult{}, err
			}
			if used == nil {
				continue
			}
		}
		adds = append(adds, add)
		res.FilesAdded++
		res.BytesAdded += add.Size
		for _, f := range used {
			size := f.Size
			removes = append(removes, delta.Remove{Path: delta.EncodePath(f.Path), DataChange: false,
				PartitionValues: f.PartitionValues, Size: &size})
			res.FilesRemoved++
			res.BytesRemoved += f.Size
		}
	}
	if len(adds) == 0 {
		return OptimizeResult{}, nil
	}
	cr, err := c.Commit(ctx, &CommitRequest{
		Table: t.name.String(), ReadVersion: snap.Version, Operation: "OPTIMIZE",
		OperationParameters: map[string]string{"predicate": "[]", "zOrderBy": "[]", "targetSize": strconv.FormatInt(target, 10)},
		Adds:                adds, Removes: removes,
	})
	if err != nil {
		// The files written are orphans now; vacuum deletes them later.
		return OptimizeResult{}, fmt.Errorf("optimize %s: commit: %w", t.name, err)
	}
	res.Version, res.Committed = cr.Version, true
	t.log.Info("compacted files", "version", cr.Version, "removed", res.FilesRemoved, "added", res.FilesAdded,
		"stitched", res.FilesStitched, "bytes_removed", res.BytesRemoved, "bytes_added", res.BytesAdded,
		"stitch_target", stitchTarget, "rewrite_target", rewriteTarget)
	return res, nil
}

// compactionBin is files to compact into one, by stitching or rewriting.
type compactionBin struct {
	files  []delta.Add
	stitch bool
}

// boundRecopy drops from bin (sorted by size) its largest files while one
// is more than twice as large as the others together, and larger than
// minSize (a sixteenth of the target: copying less costs little). A
// stitched file stays small (below half the target) for a long time, and
// without this rule every compaction of its partition copied it again to
// add a few new files to it: a 48 MB file copied to add 2 MB, several
// times a minute, in make up at 8,500 readings/s. With it a file is copied
// again only when it grows by half at least, so the copies of a byte are
// logarithmic in the final file's size.
func boundRecopy(bin []delta.Add, minSize int64) []delta.Add {
	var rest int64
	for _, f := range bin {
		rest += f.Size
	}
	for len(bin) >= 2 {
		last := bin[len(bin)-1].Size
		if last <= 2*(rest-last) || last <= minSize {
			break
		}
		rest -= last
		bin = bin[:len(bin)-1]
	}
	return bin
}

// stitchMinRows is the stitching rule of the catalog: the fewest rows a
// file's row groups must average to be stitched, 0 for never. Tables with
// a sort order (pol.OptimizeSortBy, gold's sensor_id,ts) are stitched too:
// stitching keeps each input's rows where they are, so only the files that
// are rewritten (of few rows) come out sorted. Sorting files of many rows
// bought nothing a reader could use: every input of gold spans all
// sensors over about a second, so a compacted file's min/max are the same
// sorted or not; the rewritten file was one row group (no row-group
// pruning inside it) without page indexes; in make up it came out 4-7 %
// larger than its inputs; and the sorting rewrite cost 80 times the CPU
// per row of stitching (docs/decisions.md, "Compaction by stitching").
func (c *Catalog) stitchMinRows() int64 {
	switch {
	case c.cfg.StitchMinRowGroupRows < 0:
		return 0
	case c.cfg.StitchMinRowGroupRows == 0:
		return datafile.DefaultStitchMinRowGroupRows
	}
	return c.cfg.StitchMinRowGroupRows
}

// splitByRows splits files into those of at least minRows rows (by their
// stats; a file of that many rows in one row group is what stitching
// wants, and plantlake's writers put a file's rows in one row group up to
// a million) and the others.
func splitByRows(files []delta.Add, minRows int64) (large, small []delta.Add) {
	for _, f := range files {
		var s struct {
			NumRecords int64 `json:"numRecords"`
		}
		if f.Stats != "" && json.Unmarshal([]byte(f.Stats), &s) == nil && s.NumRecords >= minRows {
			large = append(large, f)
		} else {
			small = append(small, f)
		}
	}
	return large, small
}

// rewrite decodes the files of bin, sorted by the policy's sortBy, and
// writes their rows as one file. It returns the new file's add and the
// files it holds (nil if fewer than two could be read within
// MaxOptimizeMemory or had the table's schema).
func (c *Catalog) rewrite(ctx context.Context, t *table, partCols []string, dataSchema *arrow.Schema, pol maintenance.Policy, bin []delta.Add) (delta.Add, []delta.Add, error) {
	recs, used, plain, err := t.readFiles(ctx, dataSchema, bin, c.cfg.MaxOptimizeMemory)
	if err != nil {
		releaseAll(recs)
		return delta.Add{}, nil, err
	}
	if len(used) < 2 {
		releaseAll(recs)
		return delta.Add{}, nil, nil
	}
	if recs, err = sortRecords(ctx, dataSchema, recs, sortColumns(pol.OptimizeSortBy)); err != nil {
		return delta.Add{}, nil, fmt.Errorf("optimize %s: %w", t.name, err)
	}
	var decoded int64
	for _, r := range recs {
		decoded += util.TotalRecordSize(r)
	}
	add, err := datafile.Write(ctx, t.store, datafile.Options{
		PartitionColumns: partCols, PartitionValues: used[0].PartitionValues, PlainColumns: plain,
	}, recs...)
	releaseAll(recs)
	if err != nil {
		return delta.Add{}, nil, fmt.Errorf("optimize %s: write compacted file: %w", t.name, err)
	}
	add.DataChange = false
	if add.Size > 0 {
		t.decodedPerFileByte = float64(decoded) / float64(add.Size)
	}
	return add, used, nil
}

// planCompaction groups the small files of each matching partition into
// bins of about target bytes, taking at most maxFiles files and maxBytes
// bytes in all, from the partitions with the most small files first.
func planCompaction(files []delta.Add, partCols []string, target int64, maxFiles int, maxBytes int64, minFiles int, match func(map[string]string) bool) [][]delta.Add {
	byPart := map[string][]delta.Add{}
	for _, f := range files {
		if f.Size >= target/2 || len(f.DeletionVector) > 0 || strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "://") {
			continue
		}
		if !match(f.PartitionValues) {
			continue
		}
		k := partitionKey(partCols, f.PartitionValues)
		byPart[k] = append(byPart[k], f)
	}
	keys := make([]string, 0, len(byPart))
	for k, fs := range byPart {
		if len(fs) >= minFiles {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(byPart[b]), len(byPart[a])), cmp.Compare(a, b))
	})
	var bins [][]delta.Add
	budget, bytesLeft := maxFiles, maxBytes
	for _, k := range keys {
		fs := byPart[k]
		slices.SortFunc(fs, func(a, b delta.Add) int { return cmp.Or(cmp.Compare(a.Size, b.Size), cmp.Compare(a.Path, b.Path)) })
		var bin []delta.Add
		var size int64
		for _, f := range fs {
			if budget == 0 || f.Size > bytesLeft {
				budget = 0
				break
			}
			if size+f.Size > target && len(bin) >= 2 {
				bins = append(bins, bin)
				bin, size = nil, 0
			}
			bin = append(bin, f)
			size += f.Size
			budget--
			bytesLeft -= f.Size
		}
		if len(bin) >= 2 {
			bins = append(bins, bin)
		}
		if budget == 0 {
			break
		}
	}
	return bins
}

// partitionMatcher evaluates partition filters on partition value strings.
func partitionMatcher(partCols []string, filters []Filter) (func(map[string]string) bool, error) {
	type cond struct {
		col, op, val string
	}
	var conds []cond
	for i, f := range filters {
		field := "partition_filters[" + strconv.Itoa(i) + "]"
		if !slices.Contains(partCols, f.Column) {
			return nil, badField(field+".column", "%q is not a partition column", f.Column)
		}
		op := strings.ToUpper(f.Op)
		switch op {
		case "=", "!=", "IS NULL", "IS NOT NULL":
		default:
			return nil, badField(field+".op", "only =, !=, IS NULL and IS NOT NULL are supported on partitions")
		}
		conds = append(conds, cond{f.Column, op, f.Value})
	}
	return func(pv map[string]string) bool {
		for _, c := range conds {
			v := pv[c.col]
			ok := false
			switch c.op {
			case "=":
				ok = v != "" && v == c.val
			case "!=":
				ok = v != "" && v != c.val
			case "IS NULL":
				ok = v == ""
			case "IS NOT NULL":
				ok = v != ""
			}
			if !ok {
				return false
			}
		}
		return true
	}, nil
}

// dataArrowSchema is the Arrow schema of the columns stored in data files.
func dataArrowSchema(schema *delta.StructType, partCols []string) (*arrow.Schema, error) {
	full, err := datafile.ArrowSchema(schema)
	if err != nil {
		return nil, err
	}
	var fields []arrow.Field
	for _, f := range full.Fields() {
		if !slices.ContainsFunc(partCols, func(p string) bool { return strings.EqualFold(p, f.Name) }) {
			fields = append(fields, f)
		}
	}
	return arrow.NewSchema(fields, nil), nil
}

// readFiles reads whole data files whose stored schema is exactly the
// table's; a file written under an older schema is left out (compacting it
// would need the reader's schema evolution). It returns the batches and the
// files they came from. Once two files are read, it stops before a file
// whose rows, decoded, would take the batches held past maxMemory: their
// size is estimated from the file's size and the ratio of decoded to file
// bytes of the files read so far (Parquet files decode to several times
// their size, so a bound on file bytes alone does not bound the memory).
// It also returns the columns the first file stores without a dictionary,
// so that the compacted file keeps the writer's choice (a dictionary of
// values that are nearly all distinct costs CPU and saves nothing).
func (t *table) readFiles(ctx context.Context, want *arrow.Schema, files []delta.Add, maxMemory int64) ([]arrow.RecordBatch, []delta.Add, []string, error) {
	var recs []arrow.RecordBatch
	var used []delta.Add
	var plain []string
	var held, fileBytes int64
	for _, f := range files {
		if len(used) >= 2 && fileBytes > 0 && held+int64(float64(f.Size)*float64(held)/float64(fileBytes)) > maxMemory {
			break
		}
		got, noDict, err := readWholeFile(ctx, t, f.Path, want)
		if errors.Is(err, errSchemaDiffers) {
			t.log.Debug("not compacting a file with an older schema", "path", f.Path)
			continue
		}
		if err != nil {
			return recs, nil, nil, err
		}
		if len(used) == 0 {
			plain = noDict
		}
		for _, r := range got {
			held += util.TotalRecordSize(r)
		}
		fileBytes += f.Size
		recs = append(recs, got...)
		used = append(used, f)
	}
	return recs, used, plain, nil
}

var errSchemaDiffers = errors.New("file schema differs from the table's")

// readWholeFile reads the file at path if its schema is want, and names
// its byte-array columns whose first row group has no dictionary page.
func readWholeFile(ctx context.Context, t *table, path string, want *arrow.Schema) ([]arrow.RecordBatch, []string, error) {
	f, err := t.store.Open(ctx, path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return nil, nil, fmt.Errorf("parquet footer of %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return nil, nil, fmt.Errorf("parquet schema of %s: %w", path, err)
	}
	got, err := fr.Schema()
	if err != nil || got.NumFields() != want.NumFields() {
		return nil, nil, errSchemaDiffers
	}
	for i, wf := range want.Fields() {
		gf := got.Field(i)
		if gf.Name != wf.Name || !arrow.TypeEqual(gf.Type, wf.Type) {
			return nil, nil, errSchemaDiffers
		}
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer rr.Release()
	var out []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		out = append(out, array.NewRecordBatch(want, rec.Columns(), rec.NumRows()))
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		releaseAll(out)
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, plainColumns(pf), nil
}

// plainColumns names the top-level columns of pf's byte-array leaves that
// its first row group stores without a dictionary page.
func plainColumns(pf *file.Reader) []string {
	md := pf.MetaData()
	if md.NumRowGroups() == 0 {
		return nil
	}
	rg := md.RowGroup(0)
	var plain []string
	for i := range md.Schema.NumColumns() {
		col := md.Schema.Column(i)
		if col.PhysicalType() != parquet.Types.ByteArray {
			continue
		}
		cc, err := rg.ColumnChunk(i)
		if err != nil || cc.HasDictionaryPage() {
			continue
		}
		if name := col.ColumnPath()[0]; !slices.Contains(plain, name) {
			plain = append(plain, name)
		}
	}
	return plain
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// logCleanupEvery is how often automatic log cleanup runs at most. It lists
// and stats the whole log (about 1 s for a day of commits every 500 ms), and
// its cutoff moves a day at a time (Delta's retention counts whole days), so
// running it after every checkpoint cost much and freed nothing more.
const logCleanupEvery = time.Hour

// maintain does the maintenance a table's policy says is due. It is the
// scheduler's job: never run twice at once for one table, off the commit
// path.
func (c *Catalog) maintain(ctx context.Context, name string) error {
	t, err := c.table(ctx, name, "table")
	if err != nil {
		return err
	}
	info := t.info()
	pol, err := maintenance.PolicyFrom(info.Properties)
	if err != nil {
		t.log.Warn("bad maintenance properties; using defaults", "err", err)
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	var errs []error
	t.mu.RLock()
	version, lastCP := t.st.version, t.st.lastCheckpoint
	t.mu.RUnlock()
	if pol.CheckpointDue(version, lastCP, t.checkpointActions) {
		if _, err := t.checkpoint(ctx); err != nil {
			errs = append(errs, err)
		} else if pol.ExpiredLogCleanup && time.Since(t.lastLogCleanup) >= logCleanupEvery {
			if _, err := t.dt.CleanupMetadata(ctx); err != nil {
				errs = append(errs, fmt.Errorf("log cleanup of %s: %w", name, err))
			}
			t.lastLogCleanup = time.Now()
		}
	}
	if pol.OptimizeMinFiles > 0 {
		if _, err := c.optimize(ctx, t, OptimizeRequest{
			Table: name, TargetFileSize: pol.OptimizeTargetSize, MaxFiles: c.cfg.MaxOptimizeFiles, minFiles: pol.OptimizeMinFiles,
		}); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, err)
		}
	}
	if pol.VacuumInterval > 0 && time.Since(t.lastVacuum) >= pol.VacuumInterval {
		ret := max(pol.DeletedFileRetention, c.cfg.MinVacuumRetention)
		res, err := t.vacuum(ctx, &ret, false)
		if err != nil {
			errs = append(errs, err)
		}
		if err != nil || !res.More {
			t.lastVacuum = time.Now()
		}
	}
	return errors.Join(errs...)
}
