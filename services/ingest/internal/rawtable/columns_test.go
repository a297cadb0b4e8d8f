package rawtable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta/datafile"
)

// refBatch is what arrow-go's own builders make of rows: the reference a
// Builder's batches must equal.
type refBatch struct {
	date   time.Time
	record arrow.RecordBatch
}

// buildReference builds rows with arrow-go's typed builders, one record per
// ingest_date in date order, the way the Builder did before it kept its own
// columns.
func buildReference(t *testing.T, rows []Row) []refBatch {
	t.Helper()
	mem := memory.NewGoAllocator()
	byDate := map[arrow.Date32]*array.RecordBuilder{}
	for i := range rows {
		r := &rows[i]
		ingest := r.IngestTime.UTC()
		date := arrow.Date32FromTime(ingest)
		rb := byDate[date]
		if rb == nil {
			rb = array.NewRecordBuilder(mem, ArrowSchema)
			byDate[date] = rb
		}
		rb.Field(colTopic).(*array.StringBuilder).Append(r.Topic)
		rb.Field(colPartition).(*array.Int32Builder).Append(r.Partition)
		rb.Field(colOffset).(*array.Int64Builder).Append(r.Offset)
		if r.Timestamp.IsZero() {
			rb.Field(colTimestamp).AppendNull()
		} else {
			rb.Field(colTimestamp).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Timestamp.UnixMicro()))
		}
		if r.Key == nil {
			rb.Field(colKey).AppendNull()
		} else {
			rb.Field(colKey).(*array.StringBuilder).BinaryBuilder.Append(r.Key)
		}
		list := rb.Field(colHeaders).(*array.ListBuilder)
		header := list.ValueBuilder().(*array.StructBuilder)
		list.Append(true)
		bridge, bridgeOK := int64(0), false
		for _, h := range r.Headers {
			header.Append(true)
			header.FieldBuilder(0).(*array.StringBuilder).Append(h.Key)
			if h.Value == nil {
				header.FieldBuilder(1).AppendNull()
			} else {
				header.FieldBuilder(1).(*array.BinaryBuilder).Append(h.Value)
			}
			if !bridgeOK && h.Key == BridgeTimestampHeader {
				bridge, bridgeOK = ParseBridgeTimestamp(h.Value)
			}
		}
		if bridgeOK {
			rb.Field(colBridgeTS).(*array.TimestampBuilder).Append(arrow.Timestamp(bridge))
		} else {
			rb.Field(colBridgeTS).AppendNull()
		}
		if r.Payload == nil {
			rb.Field(colPayload).AppendNull()
		} else {
			rb.Field(colPayload).(*array.BinaryBuilder).Append(r.Payload)
		}
		rb.Field(colIngestTS).(*array.TimestampBuilder).Append(arrow.Timestamp(ingest.UnixMicro()))
		rb.Field(colIngestDate).(*array.Date32Builder).Append(date)
	}
	var out []refBatch
	for date, rb := range byDate {
		out = append(out, refBatch{date: date.ToTime().UTC(), record: rb.NewRecordBatch()})
		rb.Release()
	}
	slices.SortFunc(out, func(x, y refBatch) int { return x.date.Compare(y.date) })
	t.Cleanup(func() {
		for _, b := range out {
			b.record.Release()
		}
	})
	return out
}

// refNewest is what Builder.Newest must say after rows.
func refNewest(rows []Row) time.Time {
	var newest int64
	for _, r := range rows {
		var event int64
		if !r.Timestamp.IsZero() {
			event = r.Timestamp.UnixMicro()
		}
		for _, h := range r.Headers {
			// The first bridge_ts_ms header that parses counts.
			if ts, ok := ParseBridgeTimestamp(h.Value); ok && h.Key == BridgeTimestampHeader {
				event = ts
				break
			}
		}
		newest = max(newest, event)
	}
	if newest == 0 {
		return time.Time{}
	}
	return time.UnixMicro(newest)
}

// checkBatches fails t unless got equals want: same dates, schema, values,
// nulls (counts too, nested ones included), offsets, and the same Parquet
// file when encoded.
func checkBatches(t *testing.T, got []Batch, want []refBatch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i].Record, want[i].record
		if !got[i].Date.Equal(want[i].date) || got[i].Date.Location() != time.UTC {
			t.Errorf("batch %d: date %v, want %v", i, got[i].Date, want[i].date)
		}
		if !g.Schema().Equal(ArrowSchema) {
			t.Errorf("batch %d: schema %v", i, g.Schema())
		}
		header := g.Column(colHeaders).(*array.List).ListValues().(*array.Struct)
		for _, arr := range append(g.Columns(), header.Field(0), header.Field(1)) {
			// Strings hold bytes as they came, not necessarily UTF-8, so
			// they get Validate's bounds checks; their values are compared
			// below.
			var err error
			switch v := arr.(type) {
			case *array.String:
				err = v.Validate()
			case interface{ ValidateFull() error }:
				err = v.ValidateFull()
			}
			if err != nil {
				t.Errorf("batch %d: invalid %s array: %v", i, arr.DataType(), err)
			}
		}
		for c, col := range g.Columns() {
			if !sameNulls(col.Data(), w.Column(c).Data()) {
				t.Errorf("batch %d column %s: null counts differ from arrow-go's builders", i, ArrowSchema.Field(c).Name)
			}
		}
		if !array.RecordEqual(g, w) {
			for c := range g.Columns() {
				if !array.Equal(g.Column(c), w.Column(c)) {
					t.Errorf("batch %d column %s:\n got %v\nwant %v", i, ArrowSchema.Field(c).Name, g.Column(c), w.Column(c))
				}
			}
			t.Fatalf("batch %d differs from arrow-go's builders", i)
		}
		opts := datafile.Options{PartitionColumns: []string{PartitionColumn}, PlainColumns: PlainColumns}
		gf, _, err := datafile.Encode(opts, g)
		if err != nil {
			t.Fatalf("batch %d: encode: %v", i, err)
		}
		wf, _, err := datafile.Encode(opts, w)
		if err != nil {
			t.Fatalf("batch %d: encode reference: %v", i, err)
		}
		if !bytes.Equal(gf, wf) {
			t.Errorf("batch %d: Parquet file of %d bytes differs from the reference's %d", i, len(gf), len(wf))
		}
	}
}

// sameNulls reports whether a and b, and their children, have the same null counts.
func sameNulls(a, b arrow.ArrayData) bool {
	if a.NullN() != b.NullN() || len(a.Children()) != len(b.Children()) {
		return false
	}
	for i := range a.Children() {
		if !sameNulls(a.Children()[i], b.Children()[i]) {
			return false
		}
	}
	return true
}

// randomRows returns n rows of random shape: null, empty and long values,
// zero to many headers, ingest times over dates (day boundaries included).
// nullRate is the chance of each nullable value being null.
func randomRows(rng *rand.Rand, n int, nullRate float64, days []time.Time) []Row {
	bytesOf := func(max int) []byte {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	nullable := func(max int) []byte {
		switch {
		case rng.Float64() < nullRate:
			return nil
		case rng.IntN(10) == 0:
			return []byte{}
		case rng.IntN(50) == 0:
			return bytesOf(5000)
		}
		return bytesOf(max)
	}
	topics := []string{"plant_sensor_readings_raw", "", "other", "t\x00\xff"}
	keys := []string{"mqtt_topic", "mqtt_qos", BridgeTimestampHeader, "", "seq"}
	rows := make([]Row, n)
	for i := range rows {
		r := Row{
			Topic:     topics[rng.IntN(len(topics))],
			Partition: rng.Int32() - 1<<30,
			Offset:    rng.Int64() - 1<<62,
			Key:       nullable(40),
			Payload:   nullable(300),
		}
		if rng.Float64() >= nullRate {
			// Some before 1970, some with nanoseconds below a microsecond.
			r.Timestamp = time.Unix(rng.Int64N(4e9)-1e9, rng.Int64N(1e9))
		}
		nh := rng.IntN(8)
		if rng.IntN(20) == 0 {
			nh = 40 + rng.IntN(60)
		}
		for range nh {
			h := Header{Key: keys[rng.IntN(len(keys))], Value: nullable(30)}
			if h.Key == BridgeTimestampHeader && rng.IntN(3) > 0 {
				h.Value = strconv.AppendInt(nil, rng.Int64N(2e12), 10)
			}
			r.Headers = append(r.Headers, h)
		}
		day := days[rng.IntN(len(days))]
		switch rng.IntN(10) {
		case 0:
			r.IngestTime = day // midnight
		case 1:
			r.IngestTime = day.Add(24*time.Hour - time.Nanosecond) // the day's last instant
		default:
			r.IngestTime = day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		}
		if rng.IntN(2) == 0 {
			r.IngestTime = r.IngestTime.In(time.FixedZone("east", 5*3600))
		}
		rows[i] = r
	}
	return rows
}

// appendAll appends rows to b and checks Rows, Bytes and Newest.
func appendAll(t *testing.T, b *Builder, rows []Row) {
	t.Helper()
	size := 0
	for i := range rows {
		b.Append(&rows[i])
		size += rows[i].Size()
	}
	if b.Rows() != len(rows) || b.Bytes() != size {
		t.Errorf("Rows %d Bytes %d, want %d %d", b.Rows(), b.Bytes(), len(rows), size)
	}
	if got, want := b.Newest(), refNewest(rows); !got.Equal(want) {
		t.Errorf("Newest %v, want %v", got, want)
	}
}

// nullAt returns n rows whose nullable values are null exactly at the given rows.
func nullAt(n int, nulls ...int) []Row {
	day := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{Topic: "t", Offset: int64(i), Timestamp: time.UnixMilli(int64(i) + 1), Key: []byte("k"),
			Headers:    []Header{{Key: BridgeTimestampHeader, Value: []byte(strconv.Itoa(i))}},
			Payload:    []byte("p"),
			IngestTime: day}
	}
	for _, i := range nulls {
		rows[i].Timestamp, rows[i].Key, rows[i].Payload = time.Time{}, nil, nil
		rows[i].Headers[0].Value = nil
	}
	return rows
}

func TestBuilderMatchesArrowBuilders(t *testing.T) {
	days := []time.Time{
		time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	bridge := make([]Row, 3000)
	for i := range bridge {
		bridge[i] = bridgeRow(i)
	}
	tests := []struct {
		name   string
		rounds func(rng *rand.Rand) [][]Row
	}{
		{"random rows, several dates", func(rng *rand.Rand) [][]Row {
			return [][]Row{randomRows(rng, 700, 0.2, days), randomRows(rng, 2000, 0.1, days), randomRows(rng, 50, 0.5, days)}
		}},
		{"rare nulls", func(rng *rand.Rand) [][]Row {
			return [][]Row{randomRows(rng, 3000, 0.002, days[:1]), randomRows(rng, 3000, 0.002, days[:1])}
		}},
		{"no nulls, bridge-shaped", func(*rand.Rand) [][]Row { return [][]Row{bridge, bridge[:10], bridge} }},
		{"all null", func(rng *rand.Rand) [][]Row { return [][]Row{randomRows(rng, 100, 1, days[1:2])} }},
		{"single row", func(rng *rand.Rand) [][]Row {
			return [][]Row{randomRows(rng, 1, 0.5, days), randomRows(rng, 1, 0, days)}
		}},
		{"null first", func(*rand.Rand) [][]Row { return [][]Row{nullAt(20, 0)} }},
		{"null at the end of a bitmap byte", func(*rand.Rand) [][]Row { return [][]Row{nullAt(20, 7)} }},
		{"null at the start of a bitmap byte", func(*rand.Rand) [][]Row { return [][]Row{nullAt(20, 8)} }},
		{"null mid-byte, then nulls", func(*rand.Rand) [][]Row { return [][]Row{nullAt(30, 13, 14, 29)} }},
		{"null last, then none", func(*rand.Rand) [][]Row { return [][]Row{nullAt(1000, 999), nullAt(1000)} }},
		{"no headers at all", func(*rand.Rand) [][]Row {
			rows := nullAt(10, 3)
			for i := range rows {
				rows[i].Headers = nil
			}
			return [][]Row{rows}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			b := NewBuilder(mem)
			defer b.Release()
			// Every round reuses the memory the previous one released.
			for _, rows := range tc.rounds(rand.New(rand.NewPCG(1, 2))) {
				appendAll(t, b, rows)
				got := b.Flush()
				checkBatches(t, got, buildReference(t, rows))
				for _, batch := range got {
					batch.Record.Release()
				}
				if b.Rows() != 0 || b.Bytes() != 0 || !b.Newest().IsZero() {
					t.Errorf("after Flush: Rows %d Bytes %d Newest %v", b.Rows(), b.Bytes(), b.Newest())
				}
			}
		})
	}
}

// dataAddress is where the values of a batch's kafka_offset column start:
// batches of as many rows have them at the same place if they share memory.
func dataAddress(rec arrow.RecordBatch) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(rec.Column(colOffset).Data().Buffers()[1].Bytes())))
}

func TestBuilderReusesMemoryOnlyAfterRelease(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem)
	defer b.Release()
	rng := rand.New(rand.NewPCG(3, 4))
	days := []time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	build := func(rows []Row) Batch {
		t.Helper()
		appendAll(t, b, rows)
		batches := b.Flush()
		if len(batches) != 1 {
			t.Fatalf("%d batches, want 1", len(batches))
		}
		return batches[0]
	}

	rowsA := randomRows(rng, 500, 0.2, days)
	a := build(rowsA)
	wantA := buildReference(t, rowsA)
	addrA := dataAddress(a.Record)

	// B is built while A is held: A must not change, B must not use A's memory.
	rowsB := randomRows(rng, 500, 0.2, days)
	batchB := build(rowsB)
	checkBatches(t, []Batch{a}, wantA)
	checkBatches(t, []Batch{batchB}, buildReference(t, rowsB))
	if dataAddress(batchB.Record) == addrA {
		t.Fatal("B uses the memory of A, which was not released")
	}

	// A slice of A outlives A's record: its memory stays A's until it goes.
	slice := a.Record.NewSlice(10, 20)
	a.Record.Release()
	rowsC := randomRows(rng, 500, 0.2, days)
	c := build(rowsC)
	if dataAddress(c.Record) == addrA {
		t.Fatal("C uses the memory of A while a slice of A is held")
	}
	checkBatches(t, []Batch{{Date: a.Date, Record: slice}}, []refBatch{{date: wantA[0].date, record: wantA[0].record.NewSlice(10, 20)}})
	slice.Release()

	// Now A's memory is free, and the next batch reuses it.
	rowsD := randomRows(rng, 500, 0.2, days)
	d := build(rowsD)
	if dataAddress(d.Record) != addrA {
		t.Error("D does not reuse the memory of A, released")
	}
	checkBatches(t, []Batch{batchB, c, d}, []refBatch{
		buildReference(t, rowsB)[0], buildReference(t, rowsC)[0], buildReference(t, rowsD)[0]})
	batchB.Record.Release()
	c.Record.Release()
	d.Record.Release()
}

// TestBuilderConcurrentRelease runs the Builder as ingest does, under -race:
// each batch is checked and released on another goroutine while the next
// is built.
func TestBuilderConcurrentRelease(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem)
	rng := rand.New(rand.NewPCG(5, 6))
	days := []time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)}

	type work struct {
		got  []Batch
		want []refBatch
	}
	queue := make(chan work, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for w := range queue {
			if len(w.got) != len(w.want) {
				t.Errorf("%d batches, want %d", len(w.got), len(w.want))
			}
			for i := range min(len(w.got), len(w.want)) {
				if !array.RecordEqual(w.got[i].Record, w.want[i].record) {
					t.Errorf("batch %d differs from arrow-go's builders", i)
				}
				w.got[i].Record.Release()
			}
		}
	}()
	for range 30 {
		rows := randomRows(rng, 200+rng.IntN(400), 0.1, days)
		appendAll(t, b, rows)
		queue <- work{got: b.Flush(), want: buildReference(t, rows)}
	}
	close(queue)
	<-done
	b.Release()
}

func TestBuilderReleaseFreesMemory(t *testing.T) {
	days := make([]time.Time, 6)
	for i := range days {
		days[i] = time.Date(2025, 3, 1+i, 0, 0, 0, 0, time.UTC)
	}
	tests := []struct {
		name string
		// releaseFirst releases the batches before the Builder.
		releaseFirst bool
	}{
		{"batches, then builder", true},
		{"builder, then batches", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			b := NewBuilder(mem)
			appendAll(t, b, randomRows(rand.New(rand.NewPCG(7, 8)), 1000, 0.1, days))
			batches := b.Flush()
			if len(batches) != len(days) {
				t.Fatalf("%d batches, want %d", len(batches), len(days))
			}
			release := func() {
				for _, batch := range batches {
					batch.Record.Release()
				}
			}
			if tc.releaseFirst {
				release()
				// Six sets came back; the pool keeps two.
				if n := len(b.pool.free); n != maxPooled {
					t.Errorf("pool keeps %d column sets, want %d", n, maxPooled)
				}
				if kept := b.pool.free[0].capBytes() + b.pool.free[1].capBytes(); mem.CurrentAlloc() != kept {
					t.Errorf("%d bytes allocated with %d pooled: the dropped sets were not freed", mem.CurrentAlloc(), kept)
				}
				b.Release()
			} else {
				b.Release()
				if mem.CurrentAlloc() == 0 {
					t.Fatal("memory of unreleased batches freed")
				}
				release()
			}
			mem.AssertSize(t, 0)
		})
	}
}

func TestFlushedBuffersAreReadOnlyAndFreedOnce(t *testing.T) {
	b := NewBuilder(nil)
	defer b.Release()
	b.Append(&Row{Topic: "topic", Payload: []byte("p"), IngestTime: time.Now()})
	rec := b.Flush()[0].Record
	buf := rec.Column(colTopic).Data().Buffers()[2]
	tests := []struct {
		name   string
		resize func()
	}{
		{"grow", func() { buf.Reserve(1 << 20) }},
		{"shrink", func() { buf.Resize(1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("resizing a flushed buffer did not panic")
				}
			}()
			tc.resize()
		})
	}
	// Resizing to nothing frees the buffer, and the record's release frees
	// it again: the set must count it once.
	buf.Resize(0)
	rec.Release()
	if n := len(b.pool.free); n != 1 {
		t.Fatalf("%d column sets pooled, want 1", n)
	}
	if refs := b.pool.free[0].refs.Load(); refs != 0 {
		t.Errorf("pooled set has %d references, want 0", refs)
	}
}

func ExampleBuilder() {
	b := NewBuilder(nil)
	defer b.Release()
	b.Append(&Row{Topic: "t", Offset: 1, Payload: []byte("{}"), IngestTime: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	for _, batch := range b.Flush() {
		fmt.Println(batch.Date.Format(time.DateOnly), batch.Record.NumRows())
		batch.Record.Release()
	}
	// Output: 2025-03-01 1
}
