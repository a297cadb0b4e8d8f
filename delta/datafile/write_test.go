package datafile_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
)

// concat joins record batches of one schema into one.
func concat(t *testing.T, recs ...arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	sc := recs[0].Schema()
	cols := make([]arrow.Array, sc.NumFields())
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
		cols[i] = c
	}
	return array.NewRecordBatch(sc, cols, n)
}

func TestSplitAndWriteRawRows(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2024, 5, 6, 23, 59, 59, 999_999_000, time.UTC)
	day2 := day1.Add(time.Microsecond)
	a := datafiletest.RawBatch(nil, 300, 0, day1)
	b := datafiletest.RawBatch(nil, 200, 300, day2)
	c := datafiletest.RawBatch(nil, 100, 500, day1)
	defer a.Release()
	defer b.Release()
	defer c.Release()
	all := concat(t, a, b, c)
	defer all.Release()

	parts, err := datafile.SplitByPartition(ctx, nil, all, datafiletest.RawPartitionColumns)
	if err != nil {
		t.Fatalf("SplitByPartition: %v", err)
	}
	if len(parts) != 2 {
		t.Fatalf("%d partitions, want 2", len(parts))
	}
	wantRows := map[string]int64{"2024-05-06": 400, "2024-05-07": 200}
	for _, p := range parts {
		defer p.Record.Release()
		day := p.Values["ingest_date"]
		if p.Record.NumRows() != wantRows[day] {
			t.Errorf("partition %q: %d rows, want %d", day, p.Record.NumRows(), wantRows[day])
		}
		if len(p.Record.Schema().FieldIndices("ingest_date")) != 0 {
			t.Errorf("partition %q still holds the partition column", day)
		}
		add, err := datafile.Write(ctx, st, datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: p.Values}, p.Record)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		dir := "ingest_date=" + day + "/"
		if !strings.HasPrefix(add.Path, dir) || !strings.HasSuffix(add.Path, ".snappy.parquet") {
			t.Errorf("path %q, want %s...snappy.parquet", add.Path, dir)
		}
		fi, err := st.Stat(ctx, add.Path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size != add.Size || fi.ModTime.UnixMilli() != add.ModificationTime || !add.DataChange {
			t.Errorf("add %+v does not describe file %+v", add, fi)
		}
		if add.PartitionValues["ingest_date"] != day {
			t.Errorf("partitionValues %v", add.PartitionValues)
		}
		var stats struct {
			NumRecords int64
			MinValues  map[string]any
			MaxValues  map[string]any
			NullCount  map[string]any
		}
		if err := json.Unmarshal([]byte(add.Stats), &stats); err != nil {
			t.Fatalf("stats %q: %v", add.Stats, err)
		}
		if stats.NumRecords != wantRows[day] {
			t.Errorf("numRecords %d, want %d", stats.NumRecords, wantRows[day])
		}
		if day == "2024-05-06" {
			// Offsets 0..299 and 500..599; every 10th has no bridge_ts, every 50th no key.
			if stats.MinValues["kafka_offset"] != 0.0 || stats.MaxValues["kafka_offset"] != 599.0 {
				t.Errorf("kafka_offset bounds %v..%v", stats.MinValues["kafka_offset"], stats.MaxValues["kafka_offset"])
			}
			if stats.NullCount["bridge_ts"] != 40.0 || stats.NullCount["kafka_key"] != 8.0 {
				t.Errorf("null counts %v", stats.NullCount)
			}
			if stats.MaxValues["ingest_ts"] != "2024-05-07T00:00:00.000Z" || stats.MinValues["ingest_ts"] != "2024-05-06T23:59:59.999Z" {
				t.Errorf("ingest_ts bounds %v..%v (the max must round up)", stats.MinValues["ingest_ts"], stats.MaxValues["ingest_ts"])
			}
		}
		for _, col := range []string{"raw_payload", "headers"} {
			if _, ok := stats.MinValues[col]; ok {
				t.Errorf("min of %s in stats", col)
			}
		}
		checkParquetTypes(t, st, add.Path)
	}
}

// openParquet opens data file p of st for reading; the test closes it.
func openParquet(t *testing.T, st storage.Store, p string) *file.Reader {
	t.Helper()
	f, err := st.Open(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Close() })
	return pf
}

// checkParquetTypes checks the physical layout Delta readers need.
func checkParquetTypes(t *testing.T, st storage.Store, p string) {
	t.Helper()
	pf := openParquet(t, st, p)
	sc := pf.MetaData().Schema
	for i := 0; i < sc.NumColumns(); i++ {
		col := sc.Column(i)
		if strings.HasSuffix(col.Path(), "_ts") || col.Path() == "kafka_timestamp" {
			lt, ok := col.LogicalType().(schema.TimestampLogicalType)
			if !ok || !lt.IsAdjustedToUTC() || lt.TimeUnit() != schema.TimeUnitMicros {
				t.Errorf("column %s: logical type %v, want TIMESTAMP(MICROS, UTC)", col.Path(), col.LogicalType())
			}
		}
		if col.Path() == "ingest_date" {
			t.Errorf("partition column stored in the file")
		}
	}
	cc, err := pf.MetaData().RowGroup(0).ColumnChunk(0)
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.Compression().String(); got != "SNAPPY" {
		t.Errorf("codec %s, want SNAPPY", got)
	}
}

func TestWriteRefusesUnsignedAndEmpty(t *testing.T) {
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sc := arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint32}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Field(0).(*array.Uint32Builder).Append(1)
	rec := b.NewRecordBatch()
	defer rec.Release()
	empty := rec.NewSlice(0, 0)
	defer empty.Release()
	i64 := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	eb := array.NewRecordBuilder(memory.DefaultAllocator, i64)
	defer eb.Release()
	none := eb.NewRecordBatch()
	defer none.Release()
	for name, r := range map[string]arrow.RecordBatch{"unsigned": rec, "no rows": none} {
		t.Run(name, func(t *testing.T) {
			if _, err := datafile.Write(context.Background(), st, datafile.Options{}, r); err == nil {
				t.Fatal("Write succeeded")
			}
		})
	}
}

// TestEncodingChoices checks which string columns are dictionary-encoded, that one Write
// makes one row group whether it gets one record batch or several, and that the rows read
// back as written.
func TestEncodingChoices(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)
	a := datafiletest.RawBatch(nil, 300, 0, day)
	b := datafiletest.RawBatch(nil, 200, 300, day)
	defer a.Release()
	defer b.Release()
	both := concat(t, a, b)
	defer both.Release()
	values := map[string]string{"ingest_date": "2024-05-06"}
	cases := []struct {
		name  string
		plain []string
		recs  []arrow.RecordBatch
		// dict is whether each string column has a dictionary page.
		dict map[string]bool
	}{
		{"defaults, one batch", nil, []arrow.RecordBatch{both},
			map[string]bool{"kafka_topic": true, "kafka_key": true, "headers.list.element.key": true}},
		{"plain headers, two batches", []string{"HEADERS"}, []arrow.RecordBatch{a, b},
			map[string]bool{"kafka_topic": true, "kafka_key": true, "headers.list.element.key": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: values, PlainColumns: tc.plain}
			add, err := datafile.Write(ctx, st, opts, tc.recs...)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			pf := openParquet(t, st, add.Path)
			if n := pf.NumRowGroups(); n != 1 {
				t.Errorf("%d row groups, want 1", n)
			}
			md := pf.MetaData()
			seen := 0
			for i := 0; i < md.Schema.NumColumns(); i++ {
				want, ok := tc.dict[md.Schema.Column(i).Path()]
				if !ok {
					continue
				}
				seen++
				cc, err := md.RowGroup(0).ColumnChunk(i)
				if err != nil {
					t.Fatal(err)
				}
				if got := cc.HasDictionaryPage(); got != want {
					t.Errorf("column %s: dictionary page %v, want %v", md.Schema.Column(i).Path(), got, want)
				}
			}
			if seen != len(tc.dict) {
				t.Errorf("found %d of the columns %v", seen, tc.dict)
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fr.ReadTable(ctx)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			defer got.Release()
			want := both.Column(0).Len()
			if int(got.NumRows()) != want {
				t.Fatalf("%d rows read back, want %d", got.NumRows(), want)
			}
			for i := 0; i < int(got.NumCols()); i++ {
				name := got.Schema().Field(i).Name
				wantCol := both.Column(both.Schema().FieldIndices(name)[0])
				gotCol, err := array.Concatenate(got.Column(i).Data().Chunks(), memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				if !array.Equal(gotCol, wantCol) {
					t.Errorf("column %s differs after the round trip", name)
				}
				gotCol.Release()
			}
		})
	}
}

// TestWidePagesBounded: a column of 64 KiB values (binary or fixed-size binary) is written in
// data pages of about Parquet's page size, not in one page per 1024 values (the writer checks the
// page size only between batches of values, and a page is held three times over while it is
// built: with 256 values of 64 KiB that was one 16 MiB page and 75 MB of heap), and a narrow
// column beside it reads back as written.
func TestWidePagesBounded(t *testing.T) {
	const rows, width, pageSize = 256, 64 << 10, 1 << 20
	for _, typ := range []arrow.DataType{arrow.BinaryTypes.Binary, &arrow.FixedSizeBinaryType{ByteWidth: width}} {
		t.Run(typ.String(), func(t *testing.T) {
			ctx := context.Background()
			st, err := storage.NewLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			sc := arrow.NewSchema([]arrow.Field{
				{Name: "n", Type: arrow.PrimitiveTypes.Int64},
				{Name: "payload", Type: typ, Nullable: true},
			}, nil)
			b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
			defer b.Release()
			value := make([]byte, width)
			for i := range rows {
				b.Field(0).(*array.Int64Builder).Append(int64(i))
				for j := range value {
					value[j] = byte(i*31 + j*7)
				}
				b.Field(1).(interface{ Append([]byte) }).Append(value)
			}
			rec := b.NewRecordBatch()
			defer rec.Release()
			add, err := datafile.Write(ctx, st, datafile.Options{}, rec)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			pf := openParquet(t, st, add.Path)
			pr, err := pf.RowGroup(0).GetColumnPageReader(1)
			if err != nil {
				t.Fatal(err)
			}
			pages, largest := 0, 0
			for pr.Next() {
				if dp, ok := pr.Page().(file.DataPage); ok {
					pages++
					largest = max(largest, int(dp.UncompressedSize()))
				}
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d data pages of %d KiB values, the largest %d bytes uncompressed", pages, width>>10, largest)
			if largest > pageSize*5/4+width+4 {
				t.Errorf("largest data page %d bytes uncompressed (%d pages), want at most a page (%d), a quarter and one value", largest, pages, pageSize)
			}
			if want := rows * width * 4 / (pageSize * 5); pages < want {
				t.Errorf("%d data pages, want at least %d", pages, want)
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fr.ReadTable(ctx)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			defer got.Release()
			for i := range sc.NumFields() {
				gotCol, err := array.Concatenate(got.Column(i).Data().Chunks(), memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				if !array.Equal(gotCol, rec.Column(i)) {
					t.Errorf("column %s differs after the round trip", sc.Field(i).Name)
				}
				gotCol.Release()
			}
		})
	}
}
