package datafiletest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
)

// BronzeSchemaString is the Delta schema of bronze.plant_sensor_readings as deserialize writes
// it (services/deserialize/internal/bronze.ReadingsSchema, which the delta module cannot
// import), the partition column event_date last.
const BronzeSchemaString = `{"type":"struct","fields":[` +
	`{"name":"sensor_id","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"measurement","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"value","type":"double","nullable":true,"metadata":{}},` +
	`{"name":"unit","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"plant","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"line","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"device","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"mqtt_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"extra","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_partition","type":"integer","nullable":true,"metadata":{}},` +
	`{"name":"kafka_offset","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"raw_version","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"bridge_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"traceparent","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"event_date","type":"date","nullable":true,"metadata":{}}]}`

// BronzePartitionColumns are the partition columns of the bronze readings table.
var BronzePartitionColumns = []string{"event_date"}

// BronzePlainColumns are the columns deserialize writes without a dictionary.
var BronzePlainColumns = []string{"extra", "traceparent"}

// BronzeSchema returns the bronze readings table's Delta schema and its Arrow schema.
func BronzeSchema() (*delta.StructType, *arrow.Schema) {
	s, err := delta.ParseSchema(BronzeSchemaString)
	if err != nil {
		panic(fmt.Sprintf("datafiletest: bronze schema: %v", err))
	}
	as, err := datafile.ArrowSchema(s)
	if err != nil {
		panic(fmt.Sprintf("datafiletest: bronze arrow schema: %v", err))
	}
	return s, as
}

// BronzeBatch builds n bronze readings from Kafka offset first: 7 lines × 97 devices × 4
// measurements in turn, 70 µs apart from at, extra null, one reading in 1,000 with a
// traceparent.
func BronzeBatch(mem memory.Allocator, n int, first int64, at time.Time) arrow.RecordBatch {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	_, schema := BronzeSchema()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	measurements := []string{"temperature", "pressure", "vibration", "humidity"}
	units := []string{"C", "bar", "mm/s", "%"}
	day := arrow.Date32FromTime(at.UTC())
	for i := range n {
		o := first + int64(i)
		line, dev, m := o%7, o%97, o%4
		device := "press" + strconv.FormatInt(dev, 10)
		lineS := "line" + strconv.FormatInt(line, 10)
		topic := "plant1/" + lineS + "/" + device + "/" + measurements[m]
		us := at.UnixMicro() + o*70
		b.Field(0).(*array.StringBuilder).Append(topic)
		b.Field(1).(*array.StringBuilder).Append(measurements[m])
		b.Field(2).(*array.Float64Builder).Append(20 + float64(o%8000)/100)
		b.Field(3).(*array.StringBuilder).Append(units[m])
		b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(us - 1500))
		b.Field(5).(*array.StringBuilder).Append("plant1")
		b.Field(6).(*array.StringBuilder).Append(lineS)
		b.Field(7).(*array.StringBuilder).Append(device)
		b.Field(8).(*array.StringBuilder).Append(topic)
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
