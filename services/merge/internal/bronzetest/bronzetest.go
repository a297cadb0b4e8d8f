// Package bronzetest writes bronze.plant_sensor_readings-shaped tables
// through the catalog for merge's tests and benchmark: the bronze schema
// (DESIGN.md section 2) and readings turned into its record batches, one
// data file per event_date per version.
package bronzetest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// DeltaSchema is bronze's schema as DESIGN.md section 2 lists it (one
// copy for the delta module's tests and merge's).
const DeltaSchema = datafiletest.BronzeSchemaString

// Schema is bronze's Arrow schema.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "sensor_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "measurement", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "unit", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: gold.TimestampType, Nullable: true},
	{Name: "plant", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "line", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "device", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "mqtt_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "extra", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "raw_version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "bridge_ts", Type: gold.TimestampType, Nullable: true},
	{Name: "traceparent", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "event_date", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
}, nil)

// Table is bronze as the sink creates it.
var Table = tablesink.Table{
	Name:             gold.BronzeName,
	SchemaJSON:       DeltaSchema,
	PartitionColumns: []string{gold.PartitionColumn},
}

// Reading is one bronze row; the columns not named here are derived
// (plant "p1", device and mqtt_topic from line and sensor, unit "C",
// bridge_ts = ts unless set, extra null; traceparent null unless set).
type Reading struct {
	SensorID, Measurement, Line string
	Value                       float64
	TS                          time.Time
	RawVersion                  int64
	Topic                       string
	Partition                   int32
	Offset                      int64
	// Traceparent is a sampled reading's W3C trace context ("": null).
	Traceparent string
	// BridgeTS is when the bridge received it (zero: TS).
	BridgeTS time.Time
}

// Record returns rs as one bronze record batch (the caller releases it).
func Record(rs []Reading) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	defer b.Release()
	str := func(i int, s string) { b.Field(i).(*array.StringBuilder).Append(s) }
	for _, r := range rs {
		ts := arrow.Timestamp(r.TS.UnixMicro())
		str(0, r.SensorID)
		str(1, r.Measurement)
		b.Field(2).(*array.Float64Builder).Append(r.Value)
		str(3, "C")
		b.Field(4).(*array.TimestampBuilder).Append(ts)
		str(5, "p1")
		str(6, r.Line)
		str(7, "dev-"+r.SensorID)
		str(8, "plant/"+r.Line+"/dev-"+r.SensorID+"/"+r.Measurement)
		b.Field(9).AppendNull()
		str(10, r.Topic)
		b.Field(11).(*array.Int32Builder).Append(r.Partition)
		b.Field(12).(*array.Int64Builder).Append(r.Offset)
		b.Field(13).(*array.Int64Builder).Append(r.RawVersion)
		bridgeTS := ts
		if !r.BridgeTS.IsZero() {
			bridgeTS = arrow.Timestamp(r.BridgeTS.UnixMicro())
		}
		b.Field(14).(*array.TimestampBuilder).Append(bridgeTS)
		if r.Traceparent == "" {
			b.Field(15).AppendNull()
		} else {
			str(15, r.Traceparent)
		}
		b.Field(16).(*array.Date32Builder).Append(arrow.Date32(gold.EventDateOf(r.TS.UnixMicro())))
	}
	return b.NewRecordBatch()
}

// Writer appends versions to a bronze table through the catalog.
type Writer struct {
	T *tablesink.Target
}

// Open creates the bronze table if it is missing.
func Open(ctx context.Context, client catalogv1.CatalogServiceClient) (*Writer, error) {
	t, err := tablesink.Open(ctx, client, Table, slog.Default())
	if err != nil {
		return nil, err
	}
	return &Writer{T: t}, nil
}

// Write commits rs as one bronze version, one file per event_date, and
// returns the version.
func (w *Writer) Write(ctx context.Context, rs []Reading) (int64, error) {
	pos, err := w.T.Positions(ctx, nil)
	if err != nil {
		return 0, err
	}
	by := map[int32][]Reading{}
	for _, r := range rs {
		d := gold.EventDateOf(r.TS.UnixMicro())
		by[d] = append(by[d], r)
	}
	days := make([]int32, 0, len(by))
	for d := range by {
		days = append(days, d)
	}
	slices.Sort(days)
	var files []tablesink.File
	for _, d := range days {
		files = append(files, tablesink.File{
			PartitionValues: map[string]string{gold.PartitionColumn: gold.FormatDate(d)},
			Record:          Record(by[d]),
		})
	}
	defer tablesink.Release(files)
	res, err := w.T.Commit(ctx, tablesink.Write{ReadVersion: pos.ReadVersion,
		Txns: []pipeline.Txn{{AppID: "bronzetest", Version: pos.ReadVersion + 1}}, Files: files, Rows: len(rs)})
	if err != nil {
		return 0, fmt.Errorf("write bronze: %w", err)
	}
	return res.Version, nil
}
