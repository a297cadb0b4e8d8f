// Package gold defines the gold table, gold.plant_sensor_readings: its Delta
// and Arrow schemas (DESIGN.md section 2: bronze's columns but extra and
// traceparent, plus bronze_version and merged_at, partitioned by event_date),
// the Row a reading is while it is merged, and the conversions between rows
// and Arrow record batches: bronze batches read by column name, gold batches
// read and built in gold's own shape.
package gold

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/pipeline/tablesink"
)

// Name is the gold table's name in the catalog.
const Name = "gold.plant_sensor_readings"

// BronzeName is the table merge follows.
const BronzeName = "bronze.plant_sensor_readings"

// AppID is the txn app id under which gold stores the last bronze version merged.
const AppID = "merge/" + BronzeName

// PartitionColumn is gold's only partition column.
const PartitionColumn = "event_date"

// Column positions in gold's schema (and bits of Row.Nulls).
const (
	ColSensorID = iota
	ColMeasurement
	ColValue
	ColUnit
	ColTS
	ColPlant
	ColLine
	ColDevice
	ColMQTTTopic
	ColKafkaTopic
	ColKafkaPartition
	ColKafkaOffset
	ColRawVersion
	ColBridgeTS
	ColEventDate
	ColBronzeVersion
	ColMergedAt
	NumColumns
)

// DeltaSchema is gold's schema in Delta's JSON schema format. Every column
// is nullable, as in raw and bronze: NOT NULL is an invariant every writer
// (delta-rs, Spark) would have to enforce, and nothing depends on it.
const DeltaSchema = `{"type":"struct","fields":[` +
	`{"name":"sensor_id","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"measurement","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"value","type":"double","nullable":true,"metadata":{}},` +
	`{"name":"unit","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"plant","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"line","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"device","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"mqtt_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_topic","type":"string","nullable":true,"metadata":{}},` +
	`{"name":"kafka_partition","type":"integer","nullable":true,"metadata":{}},` +
	`{"name":"kafka_offset","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"raw_version","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"bridge_ts","type":"timestamp","nullable":true,"metadata":{}},` +
	`{"name":"event_date","type":"date","nullable":true,"metadata":{}},` +
	`{"name":"bronze_version","type":"long","nullable":true,"metadata":{}},` +
	`{"name":"merged_at","type":"timestamp","nullable":true,"metadata":{}}]}`

// TimestampType is Delta's timestamp: microseconds, adjusted to UTC.
var TimestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// ArrowSchema is the Arrow schema of gold's record batches, the partition
// column included, in DeltaSchema's order.
var ArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "sensor_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "measurement", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "unit", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ts", Type: TimestampType, Nullable: true},
	{Name: "plant", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "line", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "device", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "mqtt_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "raw_version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "bridge_ts", Type: TimestampType, Nullable: true},
	{Name: PartitionColumn, Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "bronze_version", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "merged_at", Type: TimestampType, Nullable: true},
}, nil)

// Table is gold as the table sink creates it.
var Table = tablesink.Table{
	Name:             Name,
	SchemaJSON:       DeltaSchema,
	PartitionColumns: []string{PartitionColumn},
	Description:      "Plant sensor readings, each (sensor_id, measurement, ts) once, merged from " + BronzeName,
	// When the catalog's compaction rewrites files (those of few rows),
	// it orders their rows by sensor and time; files of many rows are
	// stitched as they are (each merge batch is already written sorted,
	// and spans all sensors over about a second, so a file's min/max
	// stats are the same either way; docs/decisions.md).
	Properties: map[string]string{"plantlake.autoOptimize.sortBy": "sensor_id,ts"},
}

// KeyColumns are gold's default merge key (DESIGN.md section 2).
var KeyColumns = []string{"sensor_id", "measurement", "ts"}

// KeyColumnsWithLine is the key of a plant whose sensor ids repeat across lines.
var KeyColumnsWithLine = []string{"sensor_id", "measurement", "ts", "line"}

// OrderColumns decide which of two rows with one key is newer: the larger
// (raw_version, kafka_topic, kafka_partition, kafka_offset).
var OrderColumns = []string{"raw_version", "kafka_topic", "kafka_partition", "kafka_offset"}

// BronzeColumns are the bronze columns gold keeps: all of gold's but
// bronze_version and merged_at, which merge sets.
func BronzeColumns() []string {
	var out []string
	for i, f := range ArrowSchema.Fields() {
		if i != ColBronzeVersion && i != ColMergedAt {
			out = append(out, f.Name)
		}
	}
	return out
}
