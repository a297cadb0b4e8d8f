package bronze

import (
	"testing"

	"github.com/plantlake/plantlake/services/deserialize/internal/cputime"
)

// BenchmarkReadingBuilder measures Append of a seed-shaped bronze row, with
// a Flush every 65,536 rows:
//
//	GOMAXPROCS=1 go test -run='^$' -bench=Builder -benchmem ./internal/bronze
func BenchmarkReadingBuilder(b *testing.B) {
	r := testReadings[0]
	r.Extra, r.Traceparent = nil, nil
	rb := NewReadingBuilder(nil)
	b.ReportAllocs()
	done := cputime.Start(b)
	for i := 0; b.Loop(); i++ {
		r.KafkaOffset = int64(i)
		rb.Append(&r)
		if rb.Rows() == 65536 {
			for _, batch := range rb.Flush() {
				batch.Record.Release()
			}
		}
	}
	done()
	rb.Discard()
}
