// Package rawtable defines the raw table, raw.plant_sensor_readings: its Delta
// and Arrow schemas, a Builder that turns Kafka records into Arrow record
// batches of that shape (one batch per ingest_date), and what a commit to it
// carries: the txn app id of each Kafka partition and its last offset.
package rawtable

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// Name is the raw table's name in the catalog.
const Name = "raw.plant_sensor_readings"

// PartitionColumn is the raw table's only partition column.
const PartitionColumn = "ingest_date"

// MaxBatchBytes is the largest batch byte limit (Row.Size summed) a Builder
// can be given: Arrow's 32-bit offsets address 2 GiB per column, and a batch
// closes only after the record that crosses its limit, which may be large.
const MaxBatchBytes = 1 << 30

// PlainColumns are the columns whose strings are written without dictionary
// encoding: the header keys, six or so per record, a handful of distinct
// names that Snappy compresses as well as a dictionary would, where the
// dictionary's hash insert per value cost a fifth of the encoding time.
var PlainColumns = []string{"headers"}

// BridgeTimestampHeader is the Kafka header the bridge stamps with the
// moment it read the MQTT message, in Unix milliseconds as decimal text.
const BridgeTimestampHeader = "bridge_ts_ms"

// Column positions in the Arrow schema, in DESIGN.md section 2's order.
const (
	colTopic = iota
	colPartition
	colOffset
	colTimestamp
	colKey
	colHeaders
	colBridgeTS
	colPayload
	colIngestTS
	colIngestDate
	numColumns
)

// DeltaSchema is the raw table's schema in Delta's JSON schema format,
// exactly the columns DESIGN.md section 2 names. Every column is nullable:
// Delta's NOT NULL is an invariant every writer must enforce, and nothing
// downstream depends on it.
const DeltaSchema = `{"type":"struct","fields":[` +
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

// timestampType is Delta's timestamp: microseconds, adjusted to UTC. An empty
// time zone would make it timestamp_ntz.
var timestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// HeaderType is the Arrow type of one element of the headers column.
var HeaderType = arrow.StructOf(
	arrow.Field{Name: "key", Type: arrow.BinaryTypes.String, Nullable: true},
	arrow.Field{Name: "value", Type: arrow.BinaryTypes.Binary, Nullable: true},
)

// ArrowSchema is the Arrow schema of the record batches a Builder makes,
// including the partition column ingest_date.
var ArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "kafka_topic", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "kafka_partition", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "kafka_offset", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "kafka_timestamp", Type: timestampType, Nullable: true},
	{Name: "kafka_key", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "headers", Type: arrow.ListOfField(arrow.Field{Name: "element", Type: HeaderType, Nullable: true}), Nullable: true},
	{Name: "bridge_ts", Type: timestampType, Nullable: true},
	{Name: "raw_payload", Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: "ingest_ts", Type: timestampType, Nullable: true},
	{Name: PartitionColumn, Type: arrow.FixedWidthTypes.Date32, Nullable: true},
}, nil)
