package reader_test

import (
	"context"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
)

// fuzzSchema has a data column and a partition column of every type a
// partition value can have.
const fuzzSchema = `{"type":"struct","fields":[` +
	`{"name":"id","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"d","type":"date","nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"n","type":"short","nullable":true,"metadata":{}},` +
	`{"name":"b","type":"boolean","nullable":true,"metadata":{}},` +
	`{"name":"dec","type":"decimal(5,2)","nullable":true,"metadata":{}},` +
	`{"name":"f","type":"double","nullable":true,"metadata":{}},` +
	`{"name":"s","type":"string","nullable":true,"metadata":{}}]}`

var fuzzPartitions = []string{"d", "ts", "n", "b", "dec", "f", "s"}

// FuzzCommitKeepsTableReadable commits an add with arbitrary partition
// values, then a metadata change with an arbitrary new column name and
// table property. Whatever Commit accepts, the table must still open: its
// snapshot loads and a scan reads every row.
func FuzzCommitKeepsTableReadable(f *testing.F) {
	f.Add("2024-05-06", "2024-05-06 10:00:00", "12", "true", "-123.45", "1.5", "plant/a", "extra", "delta.appendOnly", "true")
	f.Add("2024-13-45", "not-a-time", "70000", "yes", "1234.5", "0x1p-2", "", "a b", "delta.checkpointInterval", "0")
	f.Add("../../x", "2024-05-06T10:00:00.123456Z", "", "", "", "NaN", "\xff", "../x", "delta.logRetentionDuration", "interval 0 seconds")
	f.Add("", "", "-32768", "FALSE", "999.99", "-Infinity", "=;{}", "x\ty", "delta.enableInCommitTimestamps", "true")
	f.Fuzz(func(t *testing.T, d, ts, n, b, dec, fl, s, column, propKey, propValue string) {
		ctx := context.Background()
		st, err := storage.NewLocal(scratchDir(t))
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: fuzzSchema, PartitionColumns: fuzzPartitions}, delta.Protocol{})
		if err != nil {
			t.Fatal(err)
		}
		add := writeIDs(t, st)
		add.PartitionValues = map[string]string{"d": d, "ts": ts, "n": n, "b": b, "dec": dec, "f": fl, "s": s}
		v, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true,
			Actions: []delta.Action{{Add: &add}}})
		if err == nil {
			mustRead(t, st, v, 3)
		}
		// A metadata change: one more column and one more property.
		schema, err := delta.ParseSchema(fuzzSchema)
		if err != nil {
			t.Fatal(err)
		}
		schema.Fields = append(schema.Fields, delta.StructField{Name: column, Type: delta.String, Nullable: true})
		ss, err := schema.SchemaString()
		if err != nil {
			return
		}
		snap, err := delta.Open(st).Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md := snap.Metadata()
		md.SchemaString = ss
		md.Configuration = map[string]string{propKey: propValue}
		v, err = delta.Open(st).Commit(ctx, delta.CommitRequest{ReadVersion: snap.Version(), Operation: "SET TBLPROPERTIES",
			Actions: []delta.Action{{MetaData: &md}}})
		if err == nil {
			rows := 0
			if snap.NumFiles() > 0 {
				rows = 3
			}
			mustRead(t, st, v, rows)
		}
	})
}

// scratchDir returns a temporary folder on tmpfs when the machine has
// /dev/shm: every commit syncs its file and folder, and on a busy disk that
// made the fuzzer run a few inputs a second instead of hundreds.
func scratchDir(t *testing.T) string {
	fi, err := os.Stat("/dev/shm")
	if err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "plantlake-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeIDs writes a data file of three ids at the table root.
func writeIDs(t *testing.T, st storage.Store) delta.Add {
	t.Helper()
	as := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, as)
	defer bld.Release()
	bld.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
	rec := bld.NewRecordBatch()
	defer rec.Release()
	add, err := datafile.Write(context.Background(), st, datafile.Options{}, rec)
	if err != nil {
		t.Fatal(err)
	}
	return add
}

// mustRead opens the table afresh at version v and scans every row.
func mustRead(t *testing.T, st storage.Store, v int64, wantRows int) {
	t.Helper()
	ctx := context.Background()
	snap, err := delta.Open(st).Snapshot(ctx)
	if err != nil {
		t.Fatalf("accepted commit %d: snapshot: %v", v, err)
	}
	if snap.Version() != v {
		t.Fatalf("snapshot version %d, want %d", snap.Version(), v)
	}
	sc, err := reader.New(st, snap, reader.Options{})
	if err != nil {
		t.Fatalf("accepted commit %d: plan scan: %v", v, err)
	}
	defer sc.Close()
	rows := 0
	for rec, err := range sc.Records(ctx) {
		if err != nil {
			t.Fatalf("accepted commit %d: scan: %v", v, err)
		}
		rows += int(rec.NumRows())
	}
	if rows != wantRows {
		t.Fatalf("accepted commit %d: scan read %d rows, want %d", v, rows, wantRows)
	}
}
