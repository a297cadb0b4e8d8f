package derive

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/cputime"
)

// seedRows are raw rows of seed-shaped readings, all valid, from 64 sensors.
func seedRows() []Raw {
	units := []struct{ m, u string }{{"temperature", "C"}, {"pressure", "bar"}, {"humidity", "%"}, {"vibration", "mm/s"}}
	rows := make([]Raw, 1024)
	for i := range rows {
		mu := units[i%len(units)]
		sensor := fmt.Sprintf("press%03d", i%64)
		rows[i] = Raw{
			KafkaTopic:     "plant_sensor_readings_raw",
			KafkaPartition: int32(i % 6),
			KafkaOffset:    int64(i),
			KafkaKey:       fmt.Appendf(nil, "plant/line%d/%s/%s", i%64%7, sensor, mu.m),
			Headers: []Header{
				{HeaderMQTTTopic, fmt.Appendf(nil, "plant/line%d/%s/%s", i%64%7, sensor, mu.m)},
				{"mqtt_qos", []byte("1")}, {"mqtt_retain", []byte("false")}, {"mqtt_dup", []byte("false")},
				{HeaderBridgeTS, []byte("1625000099000")},
			},
			BridgeTS: 1625000099_000000, BridgeTSValid: true,
			RawPayload: fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%d.%03d,"unit":%q,"ts":1625000%03d.%06d}`,
				sensor, mu.m, 20+i%60, i*37%1000, mu.u, i%100, i*7919%1000000),
			IngestTS: ingestTS,
		}
	}
	return rows
}

// BenchmarkDerive measures a raw row to a bronze row (size check, parse,
// topic, the default rules file's rules), and with the bronze builder's
// Append:
//
//	GOMAXPROCS=1 go test -run='^$' -bench=Derive -benchmem ./internal/derive
func BenchmarkDerive(b *testing.B) {
	rows := seedRows()
	b.Run("derive", func(b *testing.B) {
		d := newDeriver(b)
		var out Output
		b.ReportAllocs()
		done := cputime.Start(b)
		for i := 0; b.Loop(); i++ {
			if o, err := d.Derive(&rows[i%len(rows)], 1, &out); o != ToBronze || err != nil {
				b.Fatal(o, err, out.DeadLetter)
			}
		}
		done()
	})
	b.Run("derive+append", func(b *testing.B) {
		d := newDeriver(b)
		rb := bronze.NewReadingBuilder(nil)
		var out Output
		b.ReportAllocs()
		done := cputime.Start(b)
		for i := 0; b.Loop(); i++ {
			if o, err := d.Derive(&rows[i%len(rows)], 1, &out); o != ToBronze || err != nil {
				b.Fatal(o, err)
			}
			rb.Append(&out.Reading)
			if rb.Rows() == 65536 {
				for _, batch := range rb.Flush() {
					batch.Record.Release()
				}
			}
		}
		done()
		rb.Discard()
	})
	// rawbatch+derive reads the rows from a raw record batch first.
	b.Run("rawbatch+derive", func(b *testing.B) {
		rec := datafiletest.RawBatch(memory.NewGoAllocator(), 4096, 1, time.Unix(1625000100, 0))
		defer rec.Release()
		rb, err := NewRawBatch(rec)
		if err != nil {
			b.Fatal(err)
		}
		d := newDeriver(b)
		var (
			raw Raw
			out Output
		)
		b.ReportAllocs()
		done := cputime.Start(b)
		for i := 0; b.Loop(); i++ {
			rb.Row(i%rb.Len(), &raw)
			if _, err := d.Derive(&raw, 1, &out); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
	// derive+append+encode adds the Parquet encoding of 65,536-row batches
	// (what a commit writes, without the storage write and the commit).
	b.Run("derive+append+encode", func(b *testing.B) {
		d := newDeriver(b)
		rb := bronze.NewReadingBuilder(nil)
		opts := datafile.Options{PartitionColumns: []string{bronze.ReadingsPartitionColumn}, PlainColumns: bronze.ReadingsPlainColumns}
		encode := func() {
			for _, batch := range rb.Flush() {
				if _, _, err := datafile.Encode(opts, batch.Record); err != nil {
					b.Fatal(err)
				}
				batch.Record.Release()
			}
		}
		var out Output
		b.ReportAllocs()
		done := cputime.Start(b)
		for i := 0; b.Loop(); i++ {
			if o, err := d.Derive(&rows[i%len(rows)], 1, &out); o != ToBronze || err != nil {
				b.Fatal(o, err)
			}
			rb.Append(&out.Reading)
			if rb.Rows() == 65536 {
				encode()
			}
		}
		encode()
		done()
	})
}
