// Package datafiletest builds record batches shaped like plantlake's tables, for tests and
// benchmarks of Delta data files and the readers of them.
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

// RawSchemaString is the Delta schema of raw.plant_sensor_readings (DESIGN.md section 2), as
// ingest writes it (services/ingest/internal/rawtable.DeltaSchema; a test there fails if the
// two differ: the delta module cannot import the service that owns the table).
const RawSchemaString = `{"type":"struct","fields":[` +
	`{"name":"kafka_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_partition","type":"integer","nullable":true,"metadata":{}},` +
	`{"name":"kafka_offset","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"kafka_timestamp","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"kafka_key","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"headers","type":{"type":"array","elementType":{"type":"struct","fields":[` +
	`{"name":"key","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"value","type":"binary","nullable":true,"metadata":{}}]},"containsNull":true},"nullable":true,"metadata":{}},` +
	`{"name":"bridge_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"raw_payload","type":"binary","nullable":true,"metadata":{}},` +
	`{"name":"ingest_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"ingest_date","type":"date","nullable":true,"metadata":{}}]}`

// RawPartitionColumns are the partition columns of the raw table.
var RawPartitionColumns = []string{"ingest_date"}

// RawSchema returns the raw table's Delta schema and its Arrow schema.
func RawSchema() (*delta.StructType, *arrow.Schema) {
	s, err := delta.ParseSchema(RawSchemaString)
	if err != nil {
		panic(fmt.Sprintf("datafiletest: raw schema: %v", err))
	}
	as, err := datafile.ArrowSchema(s)
	if err != nil {
		panic(fmt.Sprintf("datafiletest: raw arrow schema: %v", err))
	}
	return s, as
}

// RawBatch builds n raw rows starting at Kafka offset first, with ingest_ts at ingest (its
// UTC date is ingest_date) and Kafka timestamps a few hundred microseconds earlier. Every
// 10th row has no bridge_ts header (null bridge_ts); every 50th has a null kafka_key and an
// empty payload.
func RawBatch(mem memory.Allocator, n int, first int64, ingest time.Time) arrow.RecordBatch {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	_, schema := RawSchema()
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	topic := b.Field(0).(*array.StringBuilder)
	part := b.Field(1).(*array.Int32Builder)
	off := b.Field(2).(*array.Int64Builder)
	kts := b.Field(3).(*array.TimestampBuilder)
	key := b.Field(4).(*array.StringBuilder)
	hdrs := b.Field(5).(*array.ListBuilder)
	hdr := hdrs.ValueBuilder().(*array.StructBuilder)
	hk := hdr.FieldBuilder(0).(*array.StringBuilder)
	hv := hdr.FieldBuilder(1).(*array.BinaryBuilder)
	bts := b.Field(6).(*array.TimestampBuilder)
	payload := b.Field(7).(*array.BinaryBuilder)
	its := b.Field(8).(*array.TimestampBuilder)
	date := b.Field(9).(*array.Date32Builder)
	for _, fb := range b.Fields() {
		fb.Reserve(n)
	}
	ingestUS := ingest.UnixMicro()
	day := arrow.Date32FromTime(ingest.UTC())
	measurements := []string{"temperature", "pressure", "vibration", "humidity"}
	for i := 0; i < n; i++ {
		o := first + int64(i)
		line, dev := o%7, o%97
		m := measurements[o%4]
		mqttTopic := "plant/line" + strconv.FormatInt(line, 10) + "/press" + strconv.FormatInt(dev, 10) + "/" + m
		topic.Append("plant_sensor_readings_raw")
		part.Append(int32(o % 6))
		off.Append(o)
		kafkaUS := ingestUS - 300 - o%500
		kts.Append(arrow.Timestamp(kafkaUS))
		hdrs.Append(true)
		hdr.Append(true)
		hk.Append("mqtt_topic")
		hv.Append([]byte(mqttTopic))
		hdr.Append(true)
		hk.Append("mqtt_qos")
		hv.Append([]byte("1"))
		if o%10 == 0 {
			bts.AppendNull()
		} else {
			bridgeMS := kafkaUS/1000 - 2
			hdr.Append(true)
			hk.Append("bridge_ts_ms")
			hv.Append([]byte(strconv.FormatInt(bridgeMS, 10)))
			bts.Append(arrow.Timestamp(bridgeMS * 1000))
		}
		if o%50 == 0 {
			key.AppendNull()
			payload.Append([]byte{})
		} else {
			key.Append(mqttTopic)
			payload.Append(fmt.Appendf(nil, `{"sensor_id":"press%02d","measurement":"%s","value":%d.%d,"unit":"C","ts":%d}`,
				dev, m, 20+o%80, o%10, kafkaUS/1_000_000))
		}
		its.Append(arrow.Timestamp(ingestUS))
		date.Append(day)
	}
	return b.NewRecordBatch()
}
