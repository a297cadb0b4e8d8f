package mergeplan

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func rd(sensor, line string, sec int, value float64, rv int64, topic string, part int32, off int64) bronzetest.Reading {
	return bronzetest.Reading{SensorID: sensor, Measurement: "temperature", Line: line, Value: value,
		TS: t0.Add(time.Duration(sec) * time.Second), RawVersion: rv, Topic: topic, Partition: part, Offset: off}
}

func TestBatchKeepsTheNewestRowOfEachKey(t *testing.T) {
	tests := []struct {
		name      string
		key       []string
		in        []bronzetest.Reading
		wantRows  int
		wantValue float64 // of the first key's row
	}{
		{"larger raw_version wins", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 2, 5, "t", 0, 1), rd("s", "l1", 0, 1, 4, "t", 0, 9)}, 1, 2},
		{"then kafka_topic", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "a", 3, 9), rd("s", "l1", 0, 2, 5, "b", 0, 0)}, 1, 2},
		{"then kafka_partition", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 2, 5, "t", 2, 0), rd("s", "l1", 0, 1, 5, "t", 1, 9)}, 1, 2},
		{"then kafka_offset", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "t", 1, 8), rd("s", "l1", 0, 2, 5, "t", 1, 9)}, 1, 2},
		{"a redelivery of the same record keeps the first", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "t", 1, 8), rd("s", "l1", 0, 2, 5, "t", 1, 8)}, 1, 1},
		{"another ts is another key", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "t", 1, 8), rd("s", "l1", 1, 2, 5, "t", 1, 9)}, 2, 1},
		{"line ignored by the default key", gold.KeyColumns, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "t", 1, 8), rd("s", "l2", 0, 2, 5, "t", 1, 9)}, 1, 2},
		{"line part of the key", gold.KeyColumnsWithLine, []bronzetest.Reading{
			rd("s", "l1", 0, 1, 5, "t", 1, 8), rd("s", "l2", 0, 2, 5, "t", 1, 9)}, 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := NewKeySpec(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			b := NewBatch(spec)
			for i, r := range tc.in {
				rec := bronzetest.Record([]bronzetest.Reading{r})
				if err := b.Append(context.Background(), int64(i), rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			if b.Rows() != len(tc.in) {
				t.Errorf("Rows = %d, want %d", b.Rows(), len(tc.in))
			}
			d := b.Flush()
			if len(d.Rows) != tc.wantRows || d.Duplicates != len(tc.in)-tc.wantRows {
				t.Fatalf("%d rows and %d duplicates, want %d rows", len(d.Rows), d.Duplicates, tc.wantRows)
			}
			if d.Rows[0].Value != tc.wantValue {
				t.Errorf("value = %v, want %v", d.Rows[0].Value, tc.wantValue)
			}
			if b.Rows() != 0 {
				t.Errorf("Rows after Flush = %d", b.Rows())
			}
		})
	}
}

// TestBatchNewestIsTheNewestBridgeTS: the batch's newest data time (the
// status's newest_data_age) is when the newest reading reached the
// pipeline, not a device's ts, which may run ahead of the clock or lag days.
func TestBatchNewestIsTheNewestBridgeTS(t *testing.T) {
	spec, err := NewKeySpec(gold.KeyColumns)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatch(spec)
	ahead := rd("s", "l1", 3600, 1, 1, "t", 0, 1) // the device's clock is an hour ahead
	ahead.BridgeTS = t0.Add(time.Second)
	late := rd("s", "l1", -86400, 2, 1, "t", 0, 2) // a day-old reading that just arrived
	late.BridgeTS = t0.Add(2 * time.Second)
	rec := bronzetest.Record([]bronzetest.Reading{ahead, late})
	defer rec.Release()
	if err := b.Append(context.Background(), 1, rec); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Newest(), t0.Add(2*time.Second); !got.Equal(want) {
		t.Fatalf("Newest() = %v, want the newest bridge_ts %v", got, want)
	}
}

func TestNewKeySpecRejects(t *testing.T) {
	for _, cols := range [][]string{{"sensor_id", "measurement"}, {"ts", "value"}, {"ts", "ts"}} {
		if _, err := NewKeySpec(cols); err == nil {
			t.Errorf("NewKeySpec(%v) accepted", cols)
		}
	}
}

func TestParseStats(t *testing.T) {
	st := ParseStats(`{"numRecords":2,"minValues":{"sensor_id":"a","ts":"2026-12-01T08:00:00.000Z"},"maxValues":{"sensor_id":"m","ts":"2026-12-01T09:00:00.001Z"}}`)
	want := FileStats{SensorMin: "a", SensorMax: "m", HasSensor: true,
		TSMin: t0.UnixMicro(), TSMax: t0.Add(time.Hour).UnixMicro() + 1999, HasTS: true, NumRecords: 2}
	if st != want {
		t.Errorf("ParseStats = %+v, want %+v", st, want)
	}
	if st := ParseStats(`{"numRecords":2}`); st.HasTS || st.HasSensor {
		t.Errorf("stats without bounds gave %+v", st)
	}
	if st := ParseStats(`{"minValues":{},"maxValues":{}}`); st.NumRecords != 0 {
		t.Errorf("stats without numRecords gave %+v", st)
	}
}

func TestCandidatesPruneByPartitionSensorAndTime(t *testing.T) {
	spec, _ := NewKeySpec(gold.KeyColumns)
	b := NewBatch(spec)
	rec := bronzetest.Record([]bronzetest.Reading{rd("m", "l", 0, 1, 1, "t", 0, 0), rd("x", "l", 7200, 1, 1, "t", 0, 1)})
	if err := b.Append(context.Background(), 1, rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	d := b.Flush()
	stats := func(smin, smax string, from, to time.Duration) string {
		f := "2006-01-02T15:04:05.000Z"
		return `{"minValues":{"sensor_id":"` + smin + `","ts":"` + t0.Add(from).Format(f) + `"},"maxValues":{"sensor_id":"` + smax + `","ts":"` + t0.Add(to).Format(f) + `"}}`
	}
	today := map[string]string{"event_date": "2026-12-01"}
	files := []delta.Add{
		{Path: "hit-m", PartitionValues: today, Stats: stats("a", "n", -time.Hour, time.Minute)},
		{Path: "other-day", PartitionValues: map[string]string{"event_date": "2026-11-30"}, Stats: stats("a", "z", -24*time.Hour, 0)},
		{Path: "sensors-outside", PartitionValues: today, Stats: stats("n", "w", 0, 3*time.Hour)},
		{Path: "m-at-other-times", PartitionValues: today, Stats: stats("a", "n", time.Minute, 3*time.Hour)},
		{Path: "hit-x", PartitionValues: today, Stats: stats("w", "z", time.Hour, 3*time.Hour)},
		{Path: "no-stats", PartitionValues: today},
	}
	var got []string
	for _, f := range Candidates(d, Partitions(d, spec), files, NewStatsCache()) {
		got = append(got, f.Path)
	}
	want := []string{"hit-m", "hit-x", "no-stats"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("candidates = %v, want %v", got, want)
	}
}

// TestPartitionsGroupsInterleavedDays checks that rows of several days,
// interleaved and with null dates among them, land in their day's
// partition whatever the row before them was.
func TestPartitionsGroupsInterleavedDays(t *testing.T) {
	spec, err := NewKeySpec(gold.KeyColumns)
	if err != nil {
		t.Fatal(err)
	}
	day := gold.EventDateOf(t0.UnixMicro())
	var d Data
	want := map[string][]int32{}
	for i, dd := range []int32{0, 0, 1, 0, -1, -1, 1, 2, 2, 0, -1} { // -1: a null date
		r := gold.Row{SensorID: "s", TS: t0.UnixMicro() + int64(i), EventDate: day + dd}
		v := gold.FormatDate(day + dd)
		if dd < 0 {
			r.EventDate, r.Nulls, v = day, 1<<gold.ColEventDate, ""
		}
		d.Rows = append(d.Rows, r)
		want[v] = append(want[v], int32(i))
	}
	parts := Partitions(&d, spec)
	if len(parts) != len(want) {
		t.Fatalf("%d partitions, want %d", len(parts), len(want))
	}
	for _, p := range parts {
		if got, w := p.Rows, want[p.Value]; !slices.Equal(got, w) {
			t.Errorf("partition %q: rows %v, want %v", p.Value, got, w)
		}
	}
}

// TestPartitionsSortBySensorAndTS checks the rank-based sort against a
// plain sort of the rows by (sensor_id, ts, row): interleaved sensors,
// shared ts, an empty and a null sensor id, ids that are prefixes of
// others.
func TestPartitionsSortBySensorAndTS(t *testing.T) {
	spec, err := NewKeySpec(gold.KeyColumns)
	if err != nil {
		t.Fatal(err)
	}
	day := gold.EventDateOf(t0.UnixMicro())
	sensors := []string{"s10", "s1", "", "s2", "s1", "a", "s10", "zz", "s", "s1"}
	var d Data
	for i := range 200 {
		r := gold.Row{SensorID: sensors[(i*7)%len(sensors)], TS: t0.UnixMicro() + int64((i*13)%17), EventDate: day}
		if i%23 == 0 {
			r.SensorID, r.Nulls = "", 1<<gold.ColSensorID
		}
		d.Rows = append(d.Rows, r)
	}
	parts := Partitions(&d, spec)
	if len(parts) != 1 {
		t.Fatalf("%d partitions, want 1", len(parts))
	}
	want := make([]int32, len(d.Rows))
	for i := range want {
		want[i] = int32(i)
	}
	slices.SortStableFunc(want, func(a, b int32) int {
		x, y := &d.Rows[a], &d.Rows[b]
		if x.SensorID != y.SensorID {
			if x.SensorID < y.SensorID {
				return -1
			}
			return 1
		}
		return int(x.TS - y.TS)
	})
	p := parts[0]
	if !slices.Equal(p.Rows, want) {
		t.Fatalf("rows %v\nwant %v", p.Rows, want)
	}
	for i, ri := range p.Rows {
		if p.sensors[i] != d.Rows[ri].SensorID {
			t.Fatalf("sensors[%d] = %q, row %d has %q", i, p.sensors[i], ri, d.Rows[ri].SensorID)
		}
	}
}
