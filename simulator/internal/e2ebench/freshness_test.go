package e2ebench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

// TestRankIsNearestRank checks the percentiles on 1..100 ms.
func TestRankIsNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	q := quantiles(ds)
	if q.P50 != 50*time.Millisecond || q.P99 != 99*time.Millisecond || q.Max != 100*time.Millisecond {
		t.Fatalf("quantiles of 1..100 ms = %+v, want p50 50ms, p99 99ms, max 100ms", q)
	}
	if q := quantiles([]time.Duration{7}); q.P50 != 7 || q.P99 != 7 || q.Max != 7 {
		t.Fatalf("quantiles of one value = %+v", q)
	}
}

// TestFreshnessOfKnownTables writes raw, bronze and gold tables with
// delta-rs whose commit times are set, then checks every row's times and
// the summary: a row rewritten by a later gold commit counts from the first,
// a row outside the window is left out.
func TestFreshnessOfKnownTables(t *testing.T) {
	py := devstack.Python(t)
	wh := t.TempDir()
	t0 := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	script := `
import sys, datetime as dt, pyarrow as pa
from deltalake import write_deltalake
wh, t0 = sys.argv[1], dt.datetime.fromisoformat(sys.argv[2])
ms = lambda n: t0 + dt.timedelta(milliseconds=n)
for name in ("raw", "bronze"):
    for v in range(2):
        write_deltalake(wh + "/" + name + "/plant_sensor_readings", pa.table({"x": pa.array([v], pa.int64())}), mode="append")
schema = pa.schema([("ts", pa.timestamp("us", "UTC")), ("bridge_ts", pa.timestamp("us", "UTC")),
    ("raw_version", pa.int64()), ("bronze_version", pa.int64()), ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64())])
def rows(*rs):
    return pa.table({f.name: pa.array([r[i] for r in rs], f.type) for i, f in enumerate(schema)}, schema=schema)
A = (ms(0), ms(5), 0, 0, 0, 1)
B = (ms(10), ms(20), 0, 0, 0, 2)
C = (ms(200), ms(210), 1, 1, 1, 1)
D = (ms(-5000), ms(-4990), 1, 1, 1, 2)
write_deltalake(wh + "/gold/plant_sensor_readings", rows(A, B), mode="append")
write_deltalake(wh + "/gold/plant_sensor_readings", rows(A, C, D), mode="append")
`
	if out, err := exec.Command(py, "-c", script, wh, t0.Format(time.RFC3339Nano)).CombinedOutput(); err != nil {
		t.Fatalf("delta-rs: %v\n%s", err, out)
	}
	commits := map[string][]time.Time{
		RawTable:    {at(100), at(300)},
		BronzeTable: {at(600), at(900)},
		GoldTable:   {at(1000), at(2000)},
	}
	for table, times := range commits {
		for v, tm := range times {
			p := filepath.Join(wh, table, "_delta_log", fmt.Sprintf("%020d.json", v))
			if err := os.Chtimes(p, tm, tm); err != nil {
				t.Fatal(err)
			}
		}
	}

	rows, err := ReadRowTimes(context.Background(), wh, at(-1000), at(1000))
	if err != nil {
		t.Fatal(err)
	}
	want := map[time.Time]RowTimes{
		at(0):   {Published: at(0), Bridge: at(5), Raw: at(100), Bronze: at(600), Gold: at(1000)},
		at(10):  {Published: at(10), Bridge: at(20), Raw: at(100), Bronze: at(600), Gold: at(1000)},
		at(200): {Published: at(200), Bridge: at(210), Raw: at(300), Bronze: at(900), Gold: at(2000)},
	}
	if len(rows) != len(want) {
		t.Fatalf("got %d rows %+v, want %d", len(rows), rows, len(want))
	}
	for _, r := range rows {
		w, ok := want[r.Published]
		if !ok || !r.Bridge.Equal(w.Bridge) || !r.Raw.Equal(w.Raw) || !r.Bronze.Equal(w.Bronze) || !r.Gold.Equal(w.Gold) {
			t.Errorf("row %+v, want %+v", r, w)
		}
	}

	f := Summarize(rows)
	// Totals 1000, 990 and 1800 ms.
	if f.Rows != 3 || f.Total != (Quantiles{P50: 1000 * time.Millisecond, P99: 1800 * time.Millisecond, Max: 1800 * time.Millisecond}) {
		t.Fatalf("total %+v over %d rows, want p50 1s, p99 1.8s, max 1.8s over 3", f.Total, f.Rows)
	}
	// publish -> bridge 5, 10, 10 ms; bridge -> raw 95, 80, 90; raw ->
	// bronze 500, 500, 600; bronze -> gold 400, 400, 1100 (sum of the means:
	// 3790 ms of 3790).
	wantSeg := []struct {
		p50, max time.Duration
		share    float64
	}{
		{10 * time.Millisecond, 10 * time.Millisecond, 25.0 / 3790},
		{90 * time.Millisecond, 95 * time.Millisecond, 265.0 / 3790},
		{500 * time.Millisecond, 600 * time.Millisecond, 1600.0 / 3790},
		{400 * time.Millisecond, 1100 * time.Millisecond, 1900.0 / 3790},
	}
	var shares float64
	for i, s := range f.Segments {
		w := wantSeg[i]
		if s.Q.P50 != w.p50 || s.Q.Max != w.max || s.Share < w.share-1e-9 || s.Share > w.share+1e-9 {
			t.Errorf("segment %s: %+v share %.4f, want p50 %v max %v share %.4f", s.Name, s.Q, s.Share, w.p50, w.max, w.share)
		}
		shares += s.Share
	}
	if shares < 0.999999 || shares > 1.000001 {
		t.Errorf("shares add up to %v, want 1", shares)
	}

	a, err := TableActivity(context.Background(), filepath.Join(wh, GoldTable), at(1500), at(2500))
	if err != nil {
		t.Fatal(err)
	}
	if a != (Activity{Commits: 1, Files: 1}) {
		t.Errorf("gold activity in [1.5s, 2.5s) = %+v, want 1 commit of 1 file", a)
	}
}

// TestCPUTimeCounts burns CPU and checks that /proc counts what getrusage
// counts, within two clock ticks.
func TestCPUTimeCounts(t *testing.T) {
	usage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ruBefore := usage()
	x := 0
	for usage()-ruBefore < 300*time.Millisecond {
		x++
	}
	after, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, want := after-before, usage()-ruBefore
	if got < want-2*clockTick || got > want+2*clockTick {
		t.Fatalf("/proc counted %v of CPU over %d rounds, getrusage %v", got, x, want)
	}
	if kib, err := peakRSSKiB(os.Getpid()); err != nil || kib <= 0 {
		t.Fatalf("peak RSS = %d KiB, %v", kib, err)
	}
}

func TestMedianIndex(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want int
	}{
		{[]float64{5}, 0},
		{[]float64{3, 1, 2}, 2},
		{[]float64{22707, 26319, 24000}, 2},
		{[]float64{4, 1}, 1}, // the lower middle of an even count
		{[]float64{2, 9, 1, 5}, 0},
	} {
		if got := medianIndex(c.xs); got != c.want {
			t.Errorf("medianIndex(%v) = %d, want %d", c.xs, got, c.want)
		}
	}
}

// TestSettleWaitsForTheLastWrite checks waitWritten with a quiet time: that a settled count is the final
// one, that the time it reports is that of the last change (not of the
// quiet that follows), that a pause shorter than settleQuiet before want is
// reached does not end the wait, and that a count that never settles fails.
func TestSettleWaitsForTheLastWrite(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	// Grows by 1 a poll for 300 ms, pauses 1 s (below want), then grows to
	// 1,000 by 1.6 s and stays there.
	counter := func() (int64, error) {
		el := time.Since(start)
		switch {
		case el < 300*time.Millisecond:
			return int64(el / time.Millisecond), nil
		case el < 1300*time.Millisecond:
			return 300, nil
		case el < 1600*time.Millisecond:
			return int64(el/time.Millisecond) - 1000, nil
		}
		return 1000, nil
	}
	n, last, err := waitWritten(ctx, counter, 1000, settleQuiet, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Errorf("settled at %d, want 1000", n)
	}
	if at := last.Sub(start); at < 1550*time.Millisecond || at > 1700*time.Millisecond {
		t.Errorf("last change at %v, want about 1.6 s", at)
	}
	if waited := time.Since(start); waited < 1600*time.Millisecond+settleQuiet {
		t.Errorf("returned after %v, before %v of quiet", waited, settleQuiet)
	}

	moving := func() (int64, error) { return time.Now().UnixNano(), nil }
	if _, _, err := waitWritten(ctx, moving, 0, settleQuiet, 3*time.Second); err == nil {
		t.Error("a count that never stops moving settled")
	}
	stuck := func() (int64, error) { return 5, nil }
	if _, _, err := waitWritten(ctx, stuck, 6, settleQuiet, 3*time.Second); err == nil {
		t.Error("a count below want settled")
	}
	at := time.Now()
	if n, _, err := waitWritten(ctx, stuck, 5, 0, 3*time.Second); err != nil || n != 5 || time.Since(at) > time.Second {
		t.Errorf("with no quiet time, a count at want: %d, %v after %v; want 5 at once", n, err, time.Since(at))
	}
}
