package rawtable

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta/datafile"
)

// bridgeRow is a record shaped like the bridge's: six headers, a JSON payload.
func bridgeRow(i int) Row {
	key := fmt.Appendf(nil, "plant/line%d/press%02d/temperature", i%3, i%50)
	return Row{
		Topic: "plant_sensor_readings_raw", Partition: int32(i % 6), Offset: int64(i), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)),
		Key: key,
		Headers: []Header{{"mqtt_topic", key}, {"mqtt_qos", []byte("1")}, {"mqtt_retain", []byte("false")},
			{"mqtt_dup", []byte("false")}, {"bridge_ts_ms", strconv.AppendInt(nil, 1_700_000_000_000+int64(i), 10)}, {"seq", []byte(strconv.Itoa(i))}},
		Payload:    fmt.Appendf(nil, `{"sensor_id":"press%02d","measurement":"temperature","value":%d.%d,"unit":"C","ts":%d}`, i%50, 20+i%70, i%10, 1_700_000_000+i/100),
		IngestTime: time.Now(),
	}
}

// BenchmarkBuildAndEncode measures the CPU cost per row of building the
// Arrow batch and encoding it as a Parquet data file.
func BenchmarkBuildAndEncode(b *testing.B) {
	const rows = 100_000
	src := make([]Row, 1000)
	for i := range src {
		src[i] = bridgeRow(i)
	}
	bld := NewBuilder(nil)
	defer bld.Release()
	opts := datafile.Options{PartitionColumns: []string{PartitionColumn}, PlainColumns: PlainColumns}
	fileBytes := 0
	b.ResetTimer()
	for range b.N {
		for i := range rows {
			bld.Append(&src[i%len(src)])
		}
		for _, batch := range bld.Flush() {
			data, _, err := datafile.Encode(opts, batch.Record)
			if err != nil {
				b.Fatal(err)
			}
			fileBytes += len(data)
			batch.Record.Release()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	b.ReportMetric(float64(fileBytes)/float64(b.N*rows), "file-B/row")
}

// BenchmarkBuild measures building alone.
func BenchmarkBuild(b *testing.B) {
	const rows = 100_000
	src := make([]Row, 1000)
	for i := range src {
		src[i] = bridgeRow(i)
	}
	bld := NewBuilder(nil)
	defer bld.Release()
	b.ResetTimer()
	for range b.N {
		for i := range rows {
			bld.Append(&src[i%len(src)])
		}
		bld.Discard()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
