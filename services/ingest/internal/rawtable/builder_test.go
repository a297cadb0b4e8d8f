package rawtable

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestParseBridgeTimestamp(t *testing.T) {
	tests := []struct {
		name   string
		value  []byte
		micros int64
		ok     bool
	}{
		{"millis", []byte("1625000000123"), 1625000000123000, true},
		{"zero", []byte("0"), 0, true},
		{"negative", []byte("-5"), -5000, true},
		{"null", nil, 0, false},
		{"empty", []byte{}, 0, false},
		{"fraction", []byte("1.5"), 0, false},
		{"text", []byte("yesterday"), 0, false},
		{"overflow", []byte("9223372036854775807"), 0, false},
		{"plus sign", []byte("+7"), 7000, true},
		{"sign only", []byte("-"), 0, false},
		{"15 digits", []byte("999999999999999"), 999999999999999000, true},
		{"16 digits", []byte("1000000000000000"), 0, false},
		{"spaces", []byte(" 12"), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			micros, ok := ParseBridgeTimestamp(tc.value)
			if micros != tc.micros || ok != tc.ok {
				t.Errorf("ParseBridgeTimestamp(%q) = %d, %v; want %d, %v", tc.value, micros, ok, tc.micros, tc.ok)
			}
		})
	}
}

func TestDeltaSchemaIsJSONAndMatchesArrow(t *testing.T) {
	var schema struct {
		Type   string `json:"type"`
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(DeltaSchema), &schema); err != nil {
		t.Fatalf("DeltaSchema is not JSON: %v", err)
	}
	if len(schema.Fields) != len(ArrowSchema.Fields()) {
		t.Fatalf("DeltaSchema has %d fields, ArrowSchema %d", len(schema.Fields), len(ArrowSchema.Fields()))
	}
	for i, f := range schema.Fields {
		if got := ArrowSchema.Field(i).Name; got != f.Name {
			t.Errorf("field %d: Delta %q, Arrow %q", i, f.Name, got)
		}
	}
}

// rowView is what a test reads back from one row of a built batch.
type rowView struct {
	topic     string
	partition int32
	offset    int64
	timestamp any // int64 micros or nil
	key       any // string or nil
	headers   []Header
	bridgeTS  any // int64 micros or nil
	payload   []byte
	ingestTS  int64
	date      arrow.Date32
}

func readRows(t *testing.T, rec arrow.RecordBatch) []rowView {
	t.Helper()
	cols := rec.Columns()
	headers := cols[colHeaders].(*array.List)
	header := headers.ListValues().(*array.Struct)
	hk := header.Field(0).(*array.String)
	hv := header.Field(1).(*array.Binary)
	var out []rowView
	for i := 0; i < int(rec.NumRows()); i++ {
		v := rowView{
			topic:     cols[colTopic].(*array.String).Value(i),
			partition: cols[colPartition].(*array.Int32).Value(i),
			offset:    cols[colOffset].(*array.Int64).Value(i),
			ingestTS:  int64(cols[colIngestTS].(*array.Timestamp).Value(i)),
			date:      cols[colIngestDate].(*array.Date32).Value(i),
		}
		if ts := cols[colTimestamp].(*array.Timestamp); ts.IsValid(i) {
			v.timestamp = int64(ts.Value(i))
		}
		if k := cols[colKey].(*array.String); k.IsValid(i) {
			v.key = k.Value(i)
		}
		if b := cols[colBridgeTS].(*array.Timestamp); b.IsValid(i) {
			v.bridgeTS = int64(b.Value(i))
		}
		if p := cols[colPayload].(*array.Binary); p.IsValid(i) {
			v.payload = bytes.Clone(p.Value(i))
			if v.payload == nil {
				v.payload = []byte{}
			}
		}
		start, end := headers.ValueOffsets(i)
		for j := int(start); j < int(end); j++ {
			h := Header{Key: hk.Value(j)}
			if hv.IsValid(j) {
				h.Value = append([]byte{}, hv.Value(j)...)
			}
			v.headers = append(v.headers, h)
		}
		out = append(out, v)
	}
	return out
}

func TestBuilderRows(t *testing.T) {
	day1 := time.Date(2025, 3, 1, 23, 59, 59, 999_000, time.UTC)
	day2 := time.Date(2025, 3, 2, 0, 0, 0, 1_000, time.UTC)
	kafkaTS := time.UnixMilli(1625000000123)
	tests := []struct {
		name string
		row  Row
		want rowView
	}{
		{
			name: "full",
			row: Row{Topic: "t", Partition: 3, Offset: 42, Timestamp: kafkaTS, Key: []byte("plant/l1/d1/temp"),
				Headers: []Header{{"mqtt_qos", []byte("1")}, {BridgeTimestampHeader, []byte("1625000000999")}},
				Payload: []byte(`{"v":1}`), IngestTime: day1},
			want: rowView{topic: "t", partition: 3, offset: 42, timestamp: int64(1625000000123000), key: "plant/l1/d1/temp",
				headers:  []Header{{"mqtt_qos", []byte("1")}, {BridgeTimestampHeader, []byte("1625000000999")}},
				bridgeTS: int64(1625000000999000), payload: []byte(`{"v":1}`), ingestTS: day1.UnixMicro(), date: arrow.Date32FromTime(day1)},
		},
		{
			name: "empty payload, no key, no headers, no timestamp",
			row:  Row{Topic: "t", Partition: 0, Offset: 0, Payload: []byte{}, IngestTime: day1},
			want: rowView{topic: "t", payload: []byte{}, ingestTS: day1.UnixMicro(), date: arrow.Date32FromTime(day1)},
		},
		{
			name: "null payload and null header value, bad bridge_ts",
			row: Row{Topic: "t", Offset: 7, Headers: []Header{{"x", nil}, {BridgeTimestampHeader, []byte("soon")}},
				IngestTime: day1},
			want: rowView{topic: "t", offset: 7, headers: []Header{{"x", nil}, {BridgeTimestampHeader, []byte("soon")}},
				ingestTS: day1.UnixMicro(), date: arrow.Date32FromTime(day1)},
		},
		{
			name: "non-UTF-8 payload",
			row:  Row{Topic: "t", Offset: 8, Payload: []byte{0xff, 0x00, 0xfe}, IngestTime: day1},
			want: rowView{topic: "t", offset: 8, payload: []byte{0xff, 0x00, 0xfe}, ingestTS: day1.UnixMicro(), date: arrow.Date32FromTime(day1)},
		},
		{
			name: "next day",
			row:  Row{Topic: "t", Offset: 9, Payload: []byte("x"), IngestTime: day2},
			want: rowView{topic: "t", offset: 9, payload: []byte("x"), ingestTS: day2.UnixMicro(), date: arrow.Date32FromTime(day2)},
		},
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem)
	defer b.Release()
	for i := range tests {
		b.Append(&tests[i].row)
	}
	if b.Rows() != len(tests) {
		t.Fatalf("Rows() = %d, want %d", b.Rows(), len(tests))
	}
	batches := b.Flush()
	if len(batches) != 2 {
		t.Fatalf("Flush returned %d batches, want 2 (one per ingest_date)", len(batches))
	}
	if !batches[0].Date.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) || !batches[1].Date.Equal(time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("batch dates %v, %v", batches[0].Date, batches[1].Date)
	}
	var got []rowView
	for _, batch := range batches {
		got = append(got, readRows(t, batch.Record)...)
		batch.Record.Release()
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !equalRow(got[i], tc.want) {
				t.Errorf("row = %+v\nwant  %+v", got[i], tc.want)
			}
		})
	}
	if b.Rows() != 0 || b.Bytes() != 0 {
		t.Errorf("after Flush: Rows %d Bytes %d, want 0 0", b.Rows(), b.Bytes())
	}
}

func TestBuilderReuseAndDiscard(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(mem)
	defer b.Release()
	now := time.Now()
	for round := range 3 {
		for i := range 100 {
			b.Append(&Row{Topic: "t", Offset: int64(round*100 + i), Payload: []byte("p"), IngestTime: now})
		}
		if round == 1 {
			b.Discard()
			continue
		}
		batches := b.Flush()
		if len(batches) != 1 || batches[0].Record.NumRows() != 100 {
			t.Fatalf("round %d: %d batches", round, len(batches))
		}
		first := readRows(t, batches[0].Record)[0].offset
		if first != int64(round*100) {
			t.Errorf("round %d: first offset %d, want %d", round, first, round*100)
		}
		batches[0].Record.Release()
	}
}

func equalRow(a, b rowView) bool {
	if a.topic != b.topic || a.partition != b.partition || a.offset != b.offset || a.timestamp != b.timestamp ||
		a.key != b.key || a.bridgeTS != b.bridgeTS || a.ingestTS != b.ingestTS || a.date != b.date ||
		!bytes.Equal(a.payload, b.payload) || (a.payload == nil) != (b.payload == nil) || len(a.headers) != len(b.headers) {
		return false
	}
	for i := range a.headers {
		if a.headers[i].Key != b.headers[i].Key || !bytes.Equal(a.headers[i].Value, b.headers[i].Value) ||
			(a.headers[i].Value == nil) != (b.headers[i].Value == nil) {
			return false
		}
	}
	return true
}

// FuzzParseBridgeTimestamp checks the hand-written parser against strconv:
// whenever it accepts a value, strconv reads the same number.
func FuzzParseBridgeTimestamp(f *testing.F) {
	for _, s := range []string{"1625000000123", "0", "-5", "+7", "", "x", "1e3", "999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		micros, ok := ParseBridgeTimestamp(value)
		ms, err := strconv.ParseInt(string(value), 10, 64)
		if ok && (err != nil || ms*1000 != micros) {
			t.Fatalf("ParseBridgeTimestamp(%q) = %d, strconv says %d, %v", value, micros, ms, err)
		}
		if !ok && err == nil && ms > -1e15 && ms < 1e15 {
			t.Fatalf("ParseBridgeTimestamp(%q) refused a timestamp strconv reads as %d", value, ms)
		}
	})
}
