package reader

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
)

// TestWrittenStatsNeverHideRows writes files of awkward values (long strings that end in the
// highest code points, sub-millisecond timestamps, NaN, signed zeros, floats without an exact
// decimal form, nulls) and checks that pruning by the stats datafile wrote never drops a
// matching row, for filters on values taken from the data.
func TestWrittenStatsNeverHideRows(t *testing.T) {
	ctx := context.Background()
	const schema = `{"type":"struct","fields":[` +
		`{"name":"l","type":"long","nullable":true,"metadata":{}},` +
		`{"name":"f","type":"float","nullable":true,"metadata":{}},` +
		`{"name":"d","type":"double","nullable":true,"metadata":{}},` +
		`{"name":"s","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
		`{"name":"ntz","type":"timestamp_ntz","nullable":true,"metadata":{}},` +
		`{"name":"day","type":"date","nullable":true,"metadata":{}},` +
		`{"name":"dec","type":"decimal(12,3)","nullable":true,"metadata":{}}]}`
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: schema}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := delta.ParseSchema(schema)
	as, err := datafile.ArrowSchema(ds)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", strings.Repeat("z", 40), strings.Repeat("b", 31) + "\U0010FFFF\U0010FFFFx", strings.Repeat("é", 33), "\uD7FF" + strings.Repeat("q", 35), "mid"}
	floats := []float64{0, math.Copysign(0, -1), 0.1, 0.234, -46.566, 1e-7, math.NaN(), math.Inf(1), 3.4e38}
	var acts []delta.Action
	for file := 0; file < 12; file++ {
		b := array.NewRecordBuilder(memory.DefaultAllocator, as)
		for r := 0; r < 20; r++ {
			null := func() bool { return rng.IntN(6) == 0 }
			for i := range as.NumFields() {
				if null() {
					b.Field(i).AppendNull()
					continue
				}
				switch fb := b.Field(i).(type) {
				case *array.Int64Builder:
					fb.Append(rng.Int64N(1000)*int64(file+1) - 500)
				case *array.Float32Builder:
					fb.Append(float32(floats[rng.IntN(len(floats))] * float64(file%3+1)))
				case *array.Float64Builder:
					fb.Append(floats[rng.IntN(len(floats))] / float64(file%4+1))
				case *array.StringBuilder:
					fb.Append(strs[rng.IntN(len(strs))] + strings.Repeat("x", file))
				case *array.TimestampBuilder:
					fb.Append(arrow.Timestamp(1_700_000_000_000_000 + int64(file)*1_000 + rng.Int64N(3_000)))
				case *array.Date32Builder:
					fb.Append(arrow.Date32(19000 + file + rng.IntN(3)))
				case *array.Decimal128Builder:
					fb.Append(decimal128.FromI64(rng.Int64N(2_000_000) - 1_000_000))
				}
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		add, err := datafile.Write(ctx, st, datafile.Options{}, rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, delta.Action{Add: &add})
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: acts}); err != nil {
		t.Fatal(err)
	}
	snap, err := tbl.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Rows(ctx, st, snap, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pruned := 0
	for _, f := range ds.Fields {
		k := kindOf(f.Type)
		values := sampleValues(all, f.Name, k)
		// Every distinct value, not just three: boundaries are where stats go wrong.
		seen := map[string]bool{}
		for _, r := range all {
			if v, ok := r[f.Name].(string); ok && !seen[v] && len(seen) < 25 {
				seen[v] = true
				values = append(values, v)
			}
		}
		for _, v := range values {
			for _, op := range []Op{Eq, Ne, Lt, Le, Gt, Ge} {
				flt := Filter{Column: f.Name, Op: op, Value: v}
				s, err := New(st, snap, Options{Filters: []Filter{flt}})
				if err != nil {
					t.Fatalf("%s: %v", flt, err)
				}
				s.Close()
				pruned += s.Pruned()
				if s.Pruned() == 0 {
					continue // the same files are read either way
				}
				got, err := Rows(ctx, st, snap, Options{Filters: []Filter{flt}})
				if err != nil {
					t.Fatal(err)
				}
				want, err := Rows(ctx, st, snap, Options{Filters: []Filter{flt}, noPrune: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Errorf("%s: %d rows with pruning, %d without", flt, len(got), len(want))
				}
			}
		}
	}
	if pruned == 0 {
		t.Error("no file was pruned: the test checks nothing")
	}
	t.Logf("%d files pruned", pruned)
}
