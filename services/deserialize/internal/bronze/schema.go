// Package bronze defines deserialize's two target tables,
// bronze.plant_sensor_readings and bronze.plant_sensor_dead_letters: their
// Delta and Arrow schemas (DESIGN.md section 2), the rows deserialize
// derives, and Builders that turn rows into Arrow record batches, one per
// partition date, ready for delta/datafile.
package bronze

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
)

// Table names in the catalog.
const (
	ReadingsTable    = "bronze.plant_sensor_readings"
	DeadLettersTable = "bronze.plant_sensor_dead_letters"
)

// Partition columns.
const (
	ReadingsPartitionColumn    = "event_date"
	DeadLettersPartitionColumn = "failed_date"
)

// col is a nullable column of a Delta schema.
func col(name string, t delta.DataType) delta.StructField {
	return delta.StructField{Name: name, Type: t, Nullable: true, Metadata: map[string]any{}}
}

// ReadingsSchema is bronze.plant_sensor_readings's Delta schema. Every
// column is nullable, as raw's: Delta's NOT NULL is an invariant every
// writer must enforce, and nothing downstream depends on it.
var ReadingsSchema = &delta.StructType{Fields: []delta.StructField{
	col("sensor_id", delta.String),
	col("measurement", delta.String),
	col("value", delta.Double),
	col("unit", delta.String),
	col("ts", delta.Timestamp),
	col("plant", delta.String),
	col("line", delta.String),
	col("device", delta.String),
	col("mqtt_topic", delta.String),
	col("extra", delta.String),
	col("kafka_topic", delta.String),
	col("kafka_partition", delta.Integer),
	col("kafka_offset", delta.Long),
	col("raw_version", delta.Long),
	col("bridge_ts", delta.Timestamp),
	col("traceparent", delta.String),
	col(ReadingsPartitionColumn, delta.Date),
}}

// DeadLettersSchema is bronze.plant_sensor_dead_letters's Delta schema.
var DeadLettersSchema = &delta.StructType{Fields: []delta.StructField{
	col("raw_payload", delta.Binary),
	col("error_code", delta.String),
	col("error_detail", delta.String),
	col("stage", delta.String),
	col("mqtt_topic", delta.String),
	col("kafka_topic", delta.String),
	col("kafka_partition", delta.Integer),
	col("kafka_offset", delta.Long),
	col("raw_version", delta.Long),
	col("bridge_ts", delta.Timestamp),
	col("failed_at", delta.Timestamp),
	col(DeadLettersPartitionColumn, delta.Date),
}}

// Arrow schemas of the record batches the Builders make, partition column
// included, as datafile maps the Delta schemas (timestamps in "UTC").
var (
	ReadingsArrowSchema    = mustArrow(ReadingsSchema)
	DeadLettersArrowSchema = mustArrow(DeadLettersSchema)
)

// PlainColumns are columns written without dictionary encoding (see
// datafile.Options.PlainColumns): nearly every value is distinct, so a
// dictionary only costs its hash insert per value.
var (
	ReadingsPlainColumns    = []string{"extra", "traceparent"}
	DeadLettersPlainColumns = []string{"error_detail"}
)

func mustArrow(s *delta.StructType) *arrow.Schema {
	as, err := datafile.ArrowSchema(s)
	if err != nil {
		panic(fmt.Sprintf("bronze: schema has no Arrow mapping: %v", err))
	}
	return as
}

// SchemaString returns s in Delta's JSON schema format, for a table's
// metaData.
func SchemaString(s *delta.StructType) string {
	str, err := s.SchemaString()
	if err != nil {
		panic(fmt.Sprintf("bronze: schema does not encode: %v", err))
	}
	return str
}
