package mergeplan

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/services/merge/internal/bronzetest"
	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// BenchmarkBatchAppend appends bronze record batches as merge streams them
// at about 14,000 readings/s: batches of 3,500 readings of one instant
// (1,750 sensors × 2 measurements of several devices and lines), 5 % of
// them a redelivery, flushed and released like the runner does. It
// reports the CPU time (user + system, steadier than wall time on a shared
// machine) per reading and the allocations per record batch.
func BenchmarkBatchAppend(b *testing.B) {
	const sensors = 1750
	spec, err := NewKeySpec(gold.KeyColumns)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]arrow.RecordBatch, 8)
	for n := range recs {
		var rs []bronzetest.Reading
		for s := range sensors {
			for m, meas := range []string{"pressure", "temperature"} {
				r := bronzetest.Reading{SensorID: fmt.Sprintf("line%d/dev%03d/sensor%04d", s%4, s%50, s), Measurement: meas,
					Line: fmt.Sprint("line", s%4), Value: float64(s), TS: t0.Add(time.Duration(n) * 250 * time.Millisecond),
					RawVersion: int64(n + 1), Topic: "raw", Partition: int32(s % 3), Offset: int64(len(rs))}
				rs = append(rs, r)
				if (s*2+m)%20 == 7 {
					rs = append(rs, r)
				}
			}
		}
		recs[n] = bronzetest.Record(rs)
		defer recs[n].Release()
	}
	ctx := context.Background()
	batch := NewBatch(spec)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuNow()
	rows := 0
	for i := range b.N {
		rec := recs[i%len(recs)]
		if err := batch.Append(ctx, int64(i), rec); err != nil {
			b.Fatal(err)
		}
		rows += int(rec.NumRows())
		batch.Release(batch.Flush())
	}
	b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(rows), "cpu-ns/reading")
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
