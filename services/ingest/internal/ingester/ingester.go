// Package ingester is ingest's hop on the pipeline module: a Kafka source
// (consumer group) whose records become raw-table rows, and a table sink on
// raw.plant_sensor_readings whose commits carry one txn per Kafka partition
// (app id ingest/<topic>/<partition>, version = last offset written).
//
// The exactly-once machinery (batching, one commit in flight, the one place
// a batch is acknowledged, repositioning after a failed commit) is the
// pipeline runner's (pipeline/ack.go); the consumer group, rebalancing and
// seeking past the table's offsets are the Kafka source's
// (pipeline/kafkasource). This package only says what a raw row is.
package ingester

import (
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/pipeline/tablesink"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// traceparentHeader is the W3C trace context header the bridge sets on
// sampled readings.
const traceparentHeader = "traceparent"

// Table is the raw table as the sink creates and writes it.
var Table = tablesink.Table{
	Name:             rawtable.Name,
	SchemaJSON:       rawtable.DeltaSchema,
	PartitionColumns: []string{rawtable.PartitionColumn},
	Description:      "Every Kafka record of the plant sensor topics as it arrived (plantlake ingest).",
	Files: datafile.Options{
		Compression:  datafile.Snappy,
		PlainColumns: rawtable.PlainColumns,
	},
}

// Rows is the batch of raw rows: the Kafka source appends records to it and
// the runner flushes it into one data file per ingest_date.
type Rows struct {
	b   *rawtable.Builder
	row rawtable.Row
}

// NewRows returns an empty batch.
func NewRows() *Rows { return &Rows{b: rawtable.NewBuilder(nil)} }

// Append adds the Kafka record m, read at now, as a raw row.
func (r *Rows) Append(m *kafka.Message, now time.Time) (traced bool) {
	row := &r.row
	row.Topic = *m.TopicPartition.Topic
	row.Partition = m.TopicPartition.Partition
	row.Offset = int64(m.TopicPartition.Offset)
	row.Timestamp = time.Time{}
	if m.TimestampType != kafka.TimestampNotAvailable {
		row.Timestamp = m.Timestamp
	}
	row.Key = m.Key
	row.Headers = row.Headers[:0]
	for _, h := range m.Headers {
		row.Headers = append(row.Headers, rawtable.Header{Key: h.Key, Value: h.Value})
		traced = traced || h.Key == traceparentHeader
	}
	row.Payload = m.Value
	row.IngestTime = now
	r.b.Append(row)
	return traced
}

// Rows is the number of rows appended since the last Flush.
func (r *Rows) Rows() int { return r.b.Rows() }

// Bytes is the size of those rows as the batch byte limit counts it.
func (r *Rows) Bytes() int { return r.b.Bytes() }

// Newest is the newest row's event time (bridge_ts, else Kafka timestamp).
func (r *Rows) Newest() time.Time { return r.b.Newest() }

// Flush returns the rows as one file per ingest_date.
func (r *Rows) Flush() []tablesink.File {
	batches := r.b.Flush()
	files := make([]tablesink.File, len(batches))
	for i, b := range batches {
		files[i] = tablesink.File{
			PartitionValues: map[string]string{rawtable.PartitionColumn: datafile.FormatDatePartition(b.Date)},
			Record:          b.Record,
		}
	}
	return files
}

// Release frees files once they are written.
func (r *Rows) Release(files []tablesink.File) { tablesink.Release(files) }

// Discard drops the rows appended since the last Flush.
func (r *Rows) Discard() { r.b.Discard() }

// Close frees the builder's memory; the batch must not be used after.
func (r *Rows) Close() { r.b.Release() }
