package datafile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
)

// bronzeSchema is the Arrow schema of bronze.plant_sensor_readings (services/deserialize's
// bronze.ReadingsSchema, which the delta module cannot import), partition column last.
var bronzeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "sensor_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "measurement", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "unit", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "plant", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "line", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "device", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "mqtt_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "extra", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "raw_version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "bridge_ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "traceparent", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "event_date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
}, nil)

// bronzeBatch is n bronze readings of 7 lines × 97 devices × 4 measurements from offset
// first, one reading in 1,000 sampled for tracing.
func bronzeBatch(n int, first int64, at time.Time) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, bronzeSchema)
	defer b.Release()
	measurements := []string{"temperature", "pressure", "vibration", "humidity"}
	units := []string{"C", "bar", "mm/s", "%"}
	day := arrow.Date32FromTime(at.UTC())
	for i := range n {
		o := first + int64(i)
		line, dev, m := o%7, o%97, o%4
		device := "press" + strconv.FormatInt(dev, 10)
		lineS := "line" + strconv.FormatInt(line, 10)
		us := at.UnixMicro() + o*70
		b.Field(0).(*array.StringBuilder).Append("plant1/" + lineS + "/" + device + "/" + measurements[m])
		b.Field(1).(*array.StringBuilder).Append(measurements[m])
		b.Field(2).(*array.Float64Builder).Append(20 + float64(o%8000)/100)
		b.Field(3).(*array.StringBuilder).Append(units[m])
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(us - 1500))
		b.Field(5).(*array.StringBuilder).Append("plant1")
		b.Field(6).(*array.StringBuilder).Append(lineS)
		b.Field(7).(*array.StringBuilder).Append(device)
		b.Field(8).(*array.StringBuilder).Append("plant1/" + lineS + "/" + device + "/" + measurements[m])
		b.Field(9).(*array.StringBuilder).AppendNull()
		b.Field(10).(*array.StringBuilder).Append("plant_sensor_readings_raw")
		b.Field(11).(*array.Int32Builder).Append(int32(o % 6))
		b.Field(12).(*array.Int64Builder).Append(o)
		b.Field(13).(*array.Int64Builder).Append(o / 14000)
		b.Field(14).(*array.TimestampBuilder).Append(arrow.Timestamp(us - 1000))
		if o%1000 == 0 {
			b.Field(15).(*array.StringBuilder).Append(fmt.Sprintf("00-%032x-%016x-01", o, o))
		} else {
			b.Field(15).(*array.StringBuilder).AppendNull()
		}
		b.Field(16).(*array.Date32Builder).Append(day)
	}
	return b.NewRecordBatch()
}

// compactionInputs writes files of rows rows each, as ingest (raw) or deserialize (bronze)
// writes them, and returns their adds with paths as a snapshot lists them.
func compactionInputs(b *testing.B, st storage.Store, table string, files, rows int) ([]delta.Add, datafile.Options) {
	b.Helper()
	at := time.Date(2024, 5, 6, 12, 0, 0, 0, time.UTC)
	var opts datafile.Options
	var batch func(i int) arrow.RecordBatch
	switch table {
	case "raw":
		opts = datafile.Options{PartitionColumns: datafiletest.RawPartitionColumns, PartitionValues: map[string]string{"ingest_date": "2024-05-06"}, PlainColumns: []string{"headers"}}
		batch = func(i int) arrow.RecordBatch { return datafiletest.RawBatch(nil, rows, int64(i*rows), at) }
	default:
		opts = datafile.Options{PartitionColumns: []string{"event_date"}, PartitionValues: map[string]string{"event_date": "2024-05-06"}, PlainColumns: []string{"extra", "traceparent"}}
		batch = func(i int) arrow.RecordBatch { return bronzeBatch(rows, int64(i*rows), at) }
	}
	var adds []delta.Add
	for i := range files {
		rec := batch(i)
		add, err := datafile.Write(context.Background(), st, opts, rec)
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
		adds = append(adds, add)
	}
	return adds, opts
}

// rewriteFiles is compaction without stitching, as the catalog does it for a table without a
// sort order: every file decoded to Arrow (64 Ki-row batches) and the rows encoded again.
func rewriteFiles(ctx context.Context, st storage.Store, opts datafile.Options, inputs []delta.Add) (delta.Add, error) {
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, in := range inputs {
		f, err := st.Open(ctx, in.Path)
		if err != nil {
			return delta.Add{}, err
		}
		pf, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()))
		if err != nil {
			f.Close()
			return delta.Add{}, err
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
		if err != nil {
			return delta.Add{}, err
		}
		rr, err := fr.GetRecordReader(ctx, nil, nil)
		if err != nil {
			return delta.Add{}, err
		}
		for rr.Next() {
			rec := rr.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return delta.Add{}, err
		}
		rr.Release()
		pf.Close()
		f.Close()
	}
	add, err := datafile.Write(ctx, st, opts, recs...)
	add.DataChange = false
	return add, err
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCompact measures compaction of 50 files of 14,000 rows (a commit's file of raw or
// bronze at some 14,000 readings/s) into one: rewriting (decode and encode) against stitching
// (copy the column chunks). cpu-ns/row is the process's CPU time (all threads, the
// collector's too) per row compacted; the files are written to local disk.
func BenchmarkCompact(b *testing.B) {
	const files, rows = 50, 14_000
	for _, table := range []string{"raw", "bronze"} {
		st, err := storage.NewLocal(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		inputs, opts := compactionInputs(b, st, table, files, rows)
		var inBytes int64
		for _, in := range inputs {
			inBytes += in.Size
		}
		for _, mode := range []string{"rewrite", "stitch"} {
			b.Run(table+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				var out int64
				b.ReportAllocs()
				cpu0 := cpuTime()
				b.ResetTimer()
				for range b.N {
					var add delta.Add
					var err error
					if mode == "stitch" {
						add, err = datafile.Stitch(ctx, st, datafile.StitchOptions{PartitionColumns: opts.PartitionColumns}, inputs)
					} else {
						add, err = rewriteFiles(ctx, st, opts, inputs)
					}
					if err != nil {
						b.Fatal(err)
					}
					out = add.Size
					b.StopTimer()
					if err := st.Delete(ctx, add.Path); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				b.StopTimer()
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*files*rows), "cpu-ns/row")
				b.ReportMetric(float64(inBytes)/files/1000, "input-KB/file")
				b.ReportMetric(float64(out)/1e6, "output-MB")
				datafiletest.ReportRows(b, files*rows, out)
			})
		}
	}
}
