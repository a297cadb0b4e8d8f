package datafile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/storage"
)

// DefaultStitchMinRowGroupRows is StitchOptions.MinRowGroupRows's default: the fewest rows an
// input row group holds on average for Stitch to copy it. A stitched file keeps its inputs' row
// groups, and every row group costs a reader a footer entry per column (some hundred bytes,
// parsed before the first row), a dictionary page per dictionary column and a decompressor and
// page-header pass per column chunk, and compresses less well than one large row group. At
// 2,048 rows a row group of raw or bronze is some 25-40 KB compressed; in make up at 9,000
// readings/s (a median file of 2,600 rows) stitched raw files were 3 % and bronze files 12 %
// larger than rewritten ones. Files of fewer rows (gentle rates: a commit of ten readings) are
// cheap to decode and encode again, and rewriting them makes one large row group.
const DefaultStitchMinRowGroupRows = 2048

// ErrNotStitchable is returned by Stitch for inputs it does not copy: different Parquet
// schemas, key-value metadata or writers, different partition values, row groups too small,
// encrypted files, inputs without stats. The caller rewrites them instead.
var ErrNotStitchable = errors.New("datafile: files cannot be stitched")

// StitchOptions says how to stitch files.
type StitchOptions struct {
	// PartitionColumns are the table's partition columns in table order.
	PartitionColumns []string
	// MinRowGroupRows is the fewest rows the inputs' row groups hold on average;
	// DefaultStitchMinRowGroupRows when zero.
	MinRowGroupRows int64
	// Tags are copied into add.tags.
	Tags map[string]string
}

// Stitch writes one data file made of the row groups of the files inputs names (paths as a
// snapshot lists them, relative to store and not URL-encoded), copying each column chunk's
// bytes as they are (its pages compressed and encoded as the input wrote them) and writing a
// new footer with the chunks' new offsets. It returns the add of the new file: dataChange
// false, the inputs' partition values, and stats combined from the inputs' stats (the same as
// Write computes from the rows, see MergeStats). It holds the new file's bytes and the inputs'
// footers in memory, never decoded rows.
//
// Stitch copies only inputs of one Parquet schema (the same schema elements: names, types,
// repetition, field ids), the same key-value metadata (Arrow's schema among it), the same
// writer (created_by) and column orders, the same partition values, whose row groups hold at
// least opts.MinRowGroupRows rows on average; otherwise it returns an error wrapping
// ErrNotStitchable. Page indexes and bloom filters of the inputs are not copied (nothing
// plantlake writes has them), so their offsets are dropped from the new footer.
func Stitch(ctx context.Context, store storage.Store, opts StitchOptions, inputs []delta.Add) (delta.Add, error) {
	if len(inputs) < 2 {
		return delta.Add{}, fmt.Errorf("%w: %d inputs", ErrNotStitchable, len(inputs))
	}
	minRows := opts.MinRowGroupRows
	if minRows <= 0 {
		minRows = DefaultStitchMinRowGroupRows
	}
	pv := inputs[0].PartitionValues
	for _, in := range inputs[1:] {
		if !samePartition(opts.PartitionColumns, pv, in.PartitionValues) {
			return delta.Add{}, fmt.Errorf("%w: %s and %s are in different partitions", ErrNotStitchable, inputs[0].Path, in.Path)
		}
	}
	footers := make([]*metadata.FileMetaData, len(inputs))
	var rows, rowGroups, chunkBytes, footerBytes int64
	for i, in := range inputs {
		md, err := readFooter(ctx, store, in.Path)
		if err != nil {
			return delta.Add{}, err
		}
		if err := stitchable(footers[0], md); err != nil {
			return delta.Add{}, fmt.Errorf("%w: %s: %w", ErrNotStitchable, in.Path, err)
		}
		footers[i] = md
		for _, rg := range md.RowGroups {
			rows += rg.NumRows
			for _, cc := range rg.Columns {
				chunkBytes += cc.MetaData.TotalCompressedSize
			}
		}
		rowGroups += int64(md.NumRowGroups())
		footerBytes += int64(md.Size())
	}
	if rowGroups == 0 || rows/rowGroups < minRows {
		return delta.Add{}, fmt.Errorf("%w: %d rows in %d row groups, fewer than %d a row group", ErrNotStitchable, rows, rowGroups, minRows)
	}
	arrowSchema, err := pqarrow.FromParquet(footers[0].Schema, nil, footers[0].KeyValueMetadata())
	if err != nil {
		return delta.Add{}, fmt.Errorf("%w: arrow schema of %s: %w", ErrNotStitchable, inputs[0].Path, err)
	}
	parts := make([]*Stats, len(inputs))
	for i, in := range inputs {
		if parts[i], err = ParseStats(in.Stats); err != nil {
			return delta.Add{}, fmt.Errorf("%w: %s: %w", ErrNotStitchable, in.Path, err)
		}
		if parts[i].NumRecords != footers[i].NumRows {
			return delta.Add{}, fmt.Errorf("%w: %s: stats say %d rows, the footer %d", ErrNotStitchable, in.Path, parts[i].NumRecords, footers[i].NumRows)
		}
	}
	stats := MergeStats(arrowSchema, parts...)

	// One allocation of the file's size (the inputs' footers bound the new one), not a pooled
	// buffer: a stitched file is up to the compaction's byte bound, too large to keep around.
	buf := bytes.NewBuffer(make([]byte, 0, chunkBytes+footerBytes+16))
	out, err := footers[0].Subset(nil)
	if err != nil {
		return delta.Add{}, fmt.Errorf("datafile: stitch footer: %w", err)
	}
	buf.WriteString("PAR1")
	for i, in := range inputs {
		if err := copyRowGroups(ctx, store, in.Path, footers[i], out, buf); err != nil {
			return delta.Add{}, err
		}
	}
	footerStart := buf.Len()
	if _, err := out.WriteTo(buf, nil); err != nil {
		return delta.Add{}, fmt.Errorf("datafile: stitch footer: %w", err)
	}
	buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(buf.Len()-footerStart)))
	buf.WriteString("PAR1")

	codec := footers[0].RowGroups[0].Columns[0].MetaData.Codec.String()
	add, err := storeFile(ctx, store, opts.PartitionColumns, pv, strings.ToLower(codec), buf.Bytes(), stats, opts.Tags)
	if err != nil {
		return delta.Add{}, err
	}
	add.DataChange = false
	return add, nil
}

// samePartition reports whether a and b hold the same value of every partition column.
func samePartition(cols []string, a, b map[string]string) bool {
	for _, c := range cols {
		if a[c] != b[c] {
			return false
		}
	}
	return true
}

// readFooter reads the Parquet footer of the file at path.
func readFooter(ctx context.Context, store storage.Store, path string) (*metadata.FileMetaData, error) {
	f, err := store.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("datafile: open %s: %w", path, err)
	}
	defer f.Close()
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return nil, fmt.Errorf("datafile: parquet footer of %s: %w", path, err)
	}
	md := pf.MetaData()
	pf.Close()
	md.SetSourceFileSize(f.Size())
	return md, nil
}

// stitchable says why md cannot share a file with first (nil first: md is the first input).
func stitchable(first, md *metadata.FileMetaData) error {
	if md.IsSetEncryptionAlgorithm() || md.FileDecryptor != nil {
		return errors.New("encrypted")
	}
	if md.NumRows == 0 || md.NumRowGroups() == 0 {
		return errors.New("no rows")
	}
	dataEnd := md.GetSourceFileSize() - int64(md.Size()) - 8
	for _, rg := range md.RowGroups {
		if len(rg.Columns) != md.NumColumns() {
			return fmt.Errorf("a row group of %d columns in a schema of %d", len(rg.Columns), md.NumColumns())
		}
		for _, cc := range rg.Columns {
			if cc.MetaData == nil || cc.CryptoMetadata != nil || len(cc.EncryptedColumnMetadata) > 0 {
				return errors.New("a column chunk without plain metadata")
			}
			if cc.FilePath != nil {
				return fmt.Errorf("a column chunk in another file (%s)", *cc.FilePath)
			}
			start, size := chunkRange(cc.MetaData)
			if start < 4 || size <= 0 || start+size > dataEnd {
				return fmt.Errorf("a column chunk at [%d, %d) outside the data [4, %d)", start, start+size, dataEnd)
			}
		}
	}
	if first == nil {
		return nil
	}
	switch {
	case !reflect.DeepEqual(first.FileMetaData.Schema, md.FileMetaData.Schema):
		return errors.New("a different Parquet schema")
	case !reflect.DeepEqual(first.ColumnOrders, md.ColumnOrders):
		return errors.New("different column orders")
	case first.GetCreatedBy() != md.GetCreatedBy():
		return fmt.Errorf("another writer (%q, not %q)", md.GetCreatedBy(), first.GetCreatedBy())
	case first.FileMetaData.Version != md.FileMetaData.Version:
		return errors.New("another Parquet version")
	case !sameKeyValues(first.KeyValueMetadata(), md.KeyValueMetadata()):
		return errors.New("different key-value metadata")
	}
	return nil
}

func sameKeyValues(a, b metadata.KeyValueMetadata) bool {
	if a.Len() != b.Len() {
		return false
	}
	ak, av, bk, bv := a.Keys(), a.Values(), b.Keys(), b.Values()
	for i := range ak {
		if ak[i] != bk[i] || av[i] != bv[i] {
			return false
		}
	}
	return true
}

// chunkMeta is the column chunk metadata of a Parquet footer.
type chunkMeta = interface {
	GetDataPageOffset() int64
	IsSetDictionaryPageOffset() bool
	GetDictionaryPageOffset() int64
	IsSetIndexPageOffset() bool
	GetIndexPageOffset() int64
	GetTotalCompressedSize() int64
}

// chunkRange is where a column chunk's pages start and how many bytes they take: from its
// dictionary page (or index page) if it has one before the first data page. A dictionary
// offset of 0 is a known writer bug meaning none.
func chunkRange(m chunkMeta) (start, size int64) {
	start = m.GetDataPageOffset()
	if m.IsSetDictionaryPageOffset() && m.GetDictionaryPageOffset() > 0 && m.GetDictionaryPageOffset() < start {
		start = m.GetDictionaryPageOffset()
	}
	if m.IsSetIndexPageOffset() && m.GetIndexPageOffset() > 0 && m.GetIndexPageOffset() < start {
		start = m.GetIndexPageOffset()
	}
	return start, m.GetTotalCompressedSize()
}

// copyRowGroups appends the column chunks of the file at path (footer md) to buf and their
// row groups, offsets moved to where they now are, to out.
func copyRowGroups(ctx context.Context, store storage.Store, path string, md, out *metadata.FileMetaData, buf *bytes.Buffer) error {
	f, err := store.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("datafile: open %s: %w", path, err)
	}
	defer f.Close()
	if f.Size() != md.GetSourceFileSize() {
		return fmt.Errorf("datafile: %s changed size while stitching (%d, then %d bytes)", path, md.GetSourceFileSize(), f.Size())
	}
	for _, src := range md.RowGroups {
		if err := ctx.Err(); err != nil {
			return err
		}
		rg := *src
		rg.Columns = slices.Clone(src.Columns)
		var total int64
		for i, scc := range src.Columns {
			start, size := chunkRange(scc.MetaData)
			at := int64(buf.Len())
			buf.Grow(int(size))
			dst := buf.AvailableBuffer()[:size]
			if _, err := f.ReadAt(dst, start); err != nil {
				return fmt.Errorf("datafile: read column chunk of %s at %d: %w", path, start, err)
			}
			buf.Write(dst)
			delta := at - start
			cc := *scc
			m := *scc.MetaData
			m.DataPageOffset += delta
			if m.DictionaryPageOffset != nil {
				v := *m.DictionaryPageOffset + delta
				if *m.DictionaryPageOffset == 0 {
					v = 0
				}
				m.DictionaryPageOffset = &v
			}
			if m.IndexPageOffset != nil {
				v := *m.IndexPageOffset + delta
				m.IndexPageOffset = &v
			}
			m.BloomFilterOffset, m.BloomFilterLength = nil, nil
			cc.MetaData = &m
			cc.FileOffset = at
			cc.OffsetIndexOffset, cc.OffsetIndexLength = nil, nil
			cc.ColumnIndexOffset, cc.ColumnIndexLength = nil, nil
			rg.Columns[i] = &cc
			total += size
			if i == 0 {
				first := at
				rg.FileOffset = &first
			}
		}
		ord := int16(len(out.RowGroups))
		rg.Ordinal = &ord
		rg.TotalCompressedSize = &total
		out.RowGroups = append(out.RowGroups, &rg)
		out.NumRows += rg.NumRows
	}
	return nil
}
