package gold

import (
	"testing"
	"time"
)

// TestBuilderRoundTrip appends rows with every column set and rows with
// nulls in every column, after a Reserve smaller than what is appended,
// and reads them back with a RowReader: each row comes back equal.
func TestBuilderRoundTrip(t *testing.T) {
	ts := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC).UnixMicro()
	full := Row{SensorID: "press01", Measurement: "temperature", Unit: "°C", Plant: "p1", Line: "line3", Device: "press01",
		MQTTTopic: "plant/line3/press01/temperature", KafkaTopic: "plant_sensor_readings", Value: 87.25, TS: ts,
		BridgeTS: ts + 5, MergedAt: ts + 900, KafkaPartition: 2, EventDate: EventDateOf(ts), KafkaOffset: 1234,
		RawVersion: 7, BronzeVersion: 9}
	var rows []Row
	for i := range 40 {
		r := full
		r.KafkaOffset += int64(i)
		r.SensorID += string(rune('a' + i%26))
		rows = append(rows, r)
		nulled := r
		col := i % NumColumns
		nulled.Nulls = 1 << col
		zero(&nulled, col)
		rows = append(rows, nulled)
	}
	all := full
	all.Nulls = 1<<NumColumns - 1
	for col := range NumColumns {
		zero(&all, col)
	}
	rows = append(rows, all)

	for _, reserve := range []int{0, 10, len(rows)} {
		b := NewBuilder(nil)
		var sb StringBytes
		sb.AddRow(&full)
		b.Reserve(reserve, sb.PerRow(1))
		for i := range rows {
			b.Append(&rows[i])
		}
		if b.Len() != len(rows) {
			t.Fatalf("Len %d, want %d", b.Len(), len(rows))
		}
		rec := b.NewRecord()
		rr := NewRowReader()
		if err := rr.Bind(rec, nil); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			var got Row
			rr.Read(i, &got)
			if got != rows[i] {
				t.Fatalf("reserve %d, row %d:\n got %+v\nwant %+v", reserve, i, got, rows[i])
			}
		}
		rec.Release()
		b.Release()
	}
}

// zero clears column col of r, as a null column reads.
func zero(r *Row, col int) {
	switch col {
	case ColSensorID:
		r.SensorID = ""
	case ColMeasurement:
		r.Measurement = ""
	case ColValue:
		r.Value = 0
	case ColUnit:
		r.Unit = ""
	case ColTS:
		r.TS = 0
	case ColPlant:
		r.Plant = ""
	case ColLine:
		r.Line = ""
	case ColDevice:
		r.Device = ""
	case ColMQTTTopic:
		r.MQTTTopic = ""
	case ColKafkaTopic:
		r.KafkaTopic = ""
	case ColKafkaPartition:
		r.KafkaPartition = 0
	case ColKafkaOffset:
		r.KafkaOffset = 0
	case ColRawVersion:
		r.RawVersion = 0
	case ColBridgeTS:
		r.BridgeTS = 0
	case ColEventDate:
		r.EventDate = 0
	case ColBronzeVersion:
		r.BronzeVersion = 0
	case ColMergedAt:
		r.MergedAt = 0
	}
}
