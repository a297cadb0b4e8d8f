package datafile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
)

// sameStats fails unless the stats strings a and b hold the same JSON.
func sameStats(t *testing.T, what, got, want string) {
	t.Helper()
	norm := func(s string) string {
		st, err := datafile.ParseStats(s)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if g, w := norm(got), norm(want); g != w {
		t.Errorf("%s: stats\n got %s\nwant %s", what, g, w)
	}
}

// tableRows reads the latest version of tbl with delta/reader as sorted JSON rows.
func tableRows(t *testing.T, st storage.Store, tbl *delta.Table) []string {
	t.Helper()
	ctx := context.Background()
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := reader.Rows(ctx, st, snap, reader.Options{})
	if err != nil {
		t.Fatalf("read version %d: %v", snap.Version(), err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

func TestStitchRawFiles(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 5, 6, 23, 59, 59, 999_500_000, time.UTC)
	pv := map[string]string{"ingest_date": "2024-05-06"}
	var recs []arrow.RecordBatch
	var acts []delta.Action
	for i, n := range []int{300, 500, 200, 400} {
		rec := datafiletest.RawBatch(nil, n, int64(i)*1000, day)
		defer rec.Release()
		recs = append(recs, rec)
		opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: pv}
		if i == 2 {
			// Another codec and encoding: chunks carry their own, so the file still stitches.
			opts.Compression, opts.PlainColumns = datafile.Zstd, []string{"kafka_key"}
		}
		add, err := datafile.Write(ctx, st, opts, rec)
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, delta.Action{Add: &add})
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: acts}); err != nil {
		t.Fatal(err)
	}
	before := tableRows(t, st, tbl)
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inputs := snap.Files()
	add, err := datafile.Stitch(ctx, st, datafile.StitchOptions{PartitionColumns: datafiletest.RawPartitionColumns, MinRowGroupRows: 200}, inputs)
	if err != nil {
		t.Fatalf("Stitch: %v", err)
	}
	if add.DataChange || add.PartitionValues["ingest_date"] != "2024-05-06" || !strings.HasPrefix(add.Path, "ingest_date=2024-05-06/") {
		t.Errorf("add %+v", add)
	}
	fi, err := st.Stat(ctx, add.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size != add.Size || fi.ModTime.UnixMilli() != add.ModificationTime {
		t.Errorf("add size %d, mtime %d; file %+v", add.Size, add.ModificationTime, fi)
	}
	_, want, err := datafile.Encode(datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: pv}, recs...)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := want.JSON()
	sameStats(t, "stitched raw", add.Stats, wantJSON)

	pf := openParquet(t, st, add.Path)
	md := pf.MetaData()
	if md.NumRowGroups() != 4 || md.NumRows != 1400 {
		t.Errorf("%d row groups of %d rows, want 4 of 1400", md.NumRowGroups(), md.NumRows)
	}
	codecs := map[string]int{}
	for r := range md.NumRowGroups() {
		rg := md.RowGroup(r)
		cc, err := rg.ColumnChunk(0)
		if err != nil {
			t.Fatal(err)
		}
		codecs[cc.Compression().String()]++
		for c := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.GetColumnIndexLocation() != nil || cc.GetOffsetIndexLocation() != nil || cc.BloomFilterOffset() != 0 {
				t.Errorf("row group %d column %d keeps an index or bloom filter offset", r, c)
			}
		}
	}
	if codecs["SNAPPY"] != 3 || codecs["ZSTD"] != 1 {
		t.Errorf("row groups by codec %v, want the inputs' 3 Snappy and 1 Zstd", codecs)
	}

	if _, err := tbl.Commit(ctx, delta.CompactionRequest(snap.Version(), inputs, []delta.Add{add}, time.Now())); err != nil {
		t.Fatal(err)
	}
	after := tableRows(t, st, tbl)
	if !slices.Equal(before, after) {
		t.Errorf("%d rows after stitching, %d before (or they differ)", len(after), len(before))
	}
	// Filters skip files by the stitched add's stats: they must still find their rows.
	snap, _ = tbl.Snapshot(ctx)
	for _, f := range []string{"kafka_offset = 3399", "kafka_offset >= 3399", "kafka_offset < 1", "ingest_ts > '2024-05-06T23:59:59.999Z'"} {
		filters, err := reader.ParseFilters(f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := reader.Rows(ctx, st, snap, reader.Options{Filters: filters})
		if err != nil || len(rows) == 0 {
			t.Errorf("%s: %d rows, %v", f, len(rows), err)
		}
	}
}

func TestStitchFallsBack(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)
	pv := map[string]string{"ingest_date": "2024-05-06"}
	opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: pv}
	write := func(o datafile.Options, rec arrow.RecordBatch) delta.Add {
		t.Helper()
		defer rec.Release()
		add, err := datafile.Write(ctx, st, o, rec)
		if err != nil {
			t.Fatal(err)
		}
		return add
	}
	a := write(opts, datafiletest.RawBatch(nil, 300, 0, day))
	b := write(opts, datafiletest.RawBatch(nil, 300, 300, day))
	narrow := write(opts, dropLastColumnButPartition(datafiletest.RawBatch(nil, 300, 600, day)))
	otherDay := write(datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-07"}},
		datafiletest.RawBatch(nil, 300, 900, day.Add(24*time.Hour)))
	tiny1 := write(opts, datafiletest.RawBatch(nil, 10, 2000, day))
	tiny2 := write(opts, datafiletest.RawBatch(nil, 10, 2010, day))
	noStats := b
	noStats.Stats = ""
	sopts := datafile.StitchOptions{PartitionColumns: datafiletest.RawPartitionColumns, MinRowGroupRows: 100}
	for _, tc := range []struct {
		name   string
		opts   datafile.StitchOptions
		inputs []delta.Add
		why    string
	}{
		{"another schema", sopts, []delta.Add{a, narrow}, "Parquet schema"},
		{"another partition", sopts, []delta.Add{a, otherDay}, "partitions"},
		{"tiny row groups", datafile.StitchOptions{PartitionColumns: datafiletest.RawPartitionColumns}, []delta.Add{a, tiny1, tiny2}, "row groups"},
		{"tiny by the default", datafile.StitchOptions{PartitionColumns: datafiletest.RawPartitionColumns}, []delta.Add{a, b}, "row groups"},
		{"no stats", sopts, []delta.Add{a, noStats}, "no stats"},
		{"one input", sopts, []delta.Add{a}, "1 inputs"},
	} {
		_, err := datafile.Stitch(ctx, st, tc.opts, tc.inputs)
		if !errors.Is(err, datafile.ErrNotStitchable) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: %v, want ErrNotStitchable for %q", tc.name, err, tc.why)
		}
	}
	// The averaging rule: one small file among large ones still stitches.
	if _, err := datafile.Stitch(ctx, st, sopts, []delta.Add{a, b, tiny1}); err != nil {
		t.Errorf("300, 300 and 10 rows: %v", err)
	}
}

// dropLastColumnButPartition drops the column before ingest_date (ingest_ts).
func dropLastColumnButPartition(rec arrow.RecordBatch) arrow.RecordBatch {
	defer rec.Release()
	n := int(rec.NumCols())
	fields := slices.Clone(rec.Schema().Fields())
	fields = append(fields[:n-2], fields[n-1])
	cols := slices.Clone(rec.Columns())
	cols = append(cols[:n-2], cols[n-1])
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// randomSchema has a column of every kind Write keeps stats for, a struct and columns it keeps
// only null counts of.
var randomSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "ntz", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 12, Scale: 3}, Nullable: true},
	{Name: "st", Type: arrow.StructOf(
		arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		arrow.Field{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
	), Nullable: true},
	{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "flag", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "list", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64), Nullable: true},
}, nil)

// randomBatch builds n rows of randomSchema; nullShare of the values are null, and a column
// may be all null. Values sit on the edges of the stats: long and non-ASCII strings, strings
// of the largest code point, NaN, infinities, -0, sub-millisecond timestamps.
func randomBatch(r *rand.Rand, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, randomSchema)
	defer b.Release()
	nullShare := []float64{0, 0.1, 0.5, 1}[r.IntN(4)]
	isNull := func() bool { return r.Float64() < nullShare }
	strs := []string{"", "a", "plant/line1/press1", strings.Repeat("x", 40), strings.Repeat("é", 33) + "z", strings.Repeat("\U0010FFFF", 34),
		strings.Repeat("\U0010FFFF", 31) + "a" + strings.Repeat("b", 5), "Ω", "zz" + strings.Repeat("y", 31)}
	floats := []float64{0, math.Copysign(0, -1), 1.5, -2.25, 1e300, math.Inf(1), math.Inf(-1), math.NaN(), 0.1}
	str := func() string {
		if r.IntN(3) == 0 {
			return fmt.Sprintf("s%06d", r.IntN(1000000))
		}
		return strs[r.IntN(len(strs))]
	}
	flt := func() float64 {
		if r.IntN(20) == 0 {
			return floats[r.IntN(len(floats))]
		}
		if r.IntN(3) == 0 {
			return floats[r.IntN(5)]
		}
		return r.NormFloat64() * 100
	}
	for range n {
		for c := range randomSchema.NumFields() {
			fb := b.Field(c)
			if isNull() {
				fb.AppendNull()
				continue
			}
			switch fb := fb.(type) {
			case *array.Int64Builder:
				fb.Append(r.Int64N(1<<40) - 1<<39)
			case *array.Int16Builder:
				fb.Append(int16(r.IntN(65536) - 32768))
			case *array.Float64Builder:
				fb.Append(flt())
			case *array.Float32Builder:
				fb.Append(float32(flt()))
			case *array.StringBuilder:
				fb.Append(str())
			case *array.TimestampBuilder:
				fb.Append(arrow.Timestamp(1_700_000_000_000_000 + r.Int64N(1<<36) - 1<<35))
			case *array.Date32Builder:
				fb.Append(arrow.Date32(19000 + r.IntN(1000) - 500))
			case *array.Decimal128Builder:
				fb.Append(decimal128.FromI64(r.Int64N(1e11) - 5e10))
			case *array.StructBuilder:
				fb.Append(true)
				ab := fb.FieldBuilder(0).(*array.Int32Builder)
				sb := fb.FieldBuilder(1).(*array.StringBuilder)
				if isNull() {
					ab.AppendNull()
				} else {
					ab.Append(r.Int32N(1000) - 500)
				}
				if isNull() {
					sb.AppendNull()
				} else {
					sb.Append(str())
				}
			case *array.BinaryBuilder:
				fb.Append([]byte(str()))
			case *array.BooleanBuilder:
				fb.Append(r.IntN(2) == 0)
			case *array.ListBuilder:
				fb.Append(true)
				vb := fb.ValueBuilder().(*array.Int64Builder)
				for range r.IntN(3) {
					vb.Append(r.Int64N(100))
				}
			}
		}
	}
	return b.NewRecordBatch()
}

// TestStitchRandomFiles stitches files of random rows: the stitched file holds exactly their
// rows, read back by pqarrow, and its stats are Write's of all the rows.
func TestStitchRandomFiles(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 14))
	for round := range 25 {
		var recs []arrow.RecordBatch
		var inputs []delta.Add
		for range 2 + r.IntN(4) {
			rec := randomBatch(r, 1+r.IntN(300))
			recs = append(recs, rec)
			opts := datafile.Options{Compression: datafile.Compression(r.IntN(2)), RowGroupRows: int64(1 + r.IntN(400))}
			add, err := datafile.Write(ctx, st, opts, rec)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, add)
		}
		add, err := datafile.Stitch(ctx, st, datafile.StitchOptions{MinRowGroupRows: 1}, inputs)
		if err != nil {
			t.Fatalf("seed %d round %d: %v", seed, round, err)
		}
		_, want, err := datafile.Encode(datafile.Options{}, recs...)
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]*datafile.Stats, len(inputs))
		for i, in := range inputs {
			if parts[i], err = datafile.ParseStats(in.Stats); err != nil {
				t.Fatal(err)
			}
		}
		withoutUnmergeableFloatBounds(want, parts)
		wantJSON, _ := want.JSON()
		sameStats(t, fmt.Sprintf("seed %d round %d", seed, round), add.Stats, wantJSON)

		data, err := st.ReadFile(ctx, add.Path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pqarrow.ReadTable(ctx, bytes.NewReader(data), nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatalf("seed %d round %d: read stitched file: %v", seed, round, err)
		}
		wantTbl := array.NewTableFromRecords(randomSchema, recs)
		if got.NumRows() != wantTbl.NumRows() {
			t.Fatalf("seed %d round %d: %d rows, want %d", seed, round, got.NumRows(), wantTbl.NumRows())
		}
		for c := range int(wantTbl.NumCols()) {
			if !array.ChunkedApproxEqual(got.Column(c).Data(), wantTbl.Column(c).Data(), array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
				t.Errorf("seed %d round %d: column %s differs", seed, round, randomSchema.Field(c).Name)
			}
		}
		got.Release()
		wantTbl.Release()
		for _, rec := range recs {
			rec.Release()
		}
	}
}

// TestMergeStatsMatchesWrite splits random rows into parts many times: the merged stats of the
// parts are Write's stats of all the rows.
func TestMergeStatsMatchesWrite(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 41))
	for round := range 200 {
		var recs []arrow.RecordBatch
		var parts []*datafile.Stats
		for range 1 + r.IntN(5) {
			rec := randomBatch(r, 1+r.IntN(20))
			recs = append(recs, rec)
			_, s, err := datafile.Encode(datafile.Options{}, rec)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := s.JSON()
			p, err := datafile.ParseStats(js)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, p)
		}
		_, want, err := datafile.Encode(datafile.Options{}, recs...)
		if err != nil {
			t.Fatal(err)
		}
		withoutUnmergeableFloatBounds(want, parts)
		wantJSON, _ := want.JSON()
		gotJSON, _ := datafile.MergeStats(randomSchema, parts...).JSON()
		sameStats(t, fmt.Sprintf("seed %d round %d", seed, round), gotJSON, wantJSON)
		for _, rec := range recs {
			rec.Release()
		}
		if t.Failed() {
			break
		}
	}
}

// withoutUnmergeableFloatBounds drops from want, Write's stats of all the rows, the float
// bounds MergeStats cannot give for parts: a part whose non-null floats are all -Inf (+Inf)
// has no max (min) in its stats, which cannot be told from a NaN's missing bounds, so the
// merged stats leave that bound out where Write, seeing the other parts' finite values, has one
// (MergeStats's doc). Stitch merges its inputs' stats the same way.
func withoutUnmergeableFloatBounds(want *datafile.Stats, parts []*datafile.Stats) {
	for _, col := range []string{"f", "f32"} {
		for _, p := range parts {
			if n, _ := p.NullCount[col].(json.Number).Int64(); n == p.NumRecords {
				continue
			}
			if _, ok := p.MinValues[col]; !ok {
				delete(want.MinValues, col)
			}
			if _, ok := p.MaxValues[col]; !ok {
				delete(want.MaxValues, col)
			}
		}
	}
}

// testSeed is the random tests' seed: $PLANTLAKE_TEST_SEED when set (to
// replay a failure), else the clock's.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("PLANTLAKE_TEST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("PLANTLAKE_TEST_SEED: %v", err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}
