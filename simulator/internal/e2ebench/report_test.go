package e2ebench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestFrontReportsTheRoomLeftForTheHops checks the front-alone section: the
// cores the paced front used, the CPU a reading that leaves for the hops,
// and what the hops took in the last hold.
func TestFrontReportsTheRoomLeftForTheHops(t *testing.T) {
	cores := float64(runtime.NumCPU())
	used := cores - 0.5 // half a core left
	r := &Report{Warmup: time.Minute, Front: &FrontHold{Rate: 20000, Achieved: 20000, Share: 0.8, Published: 2_400_000,
		MaxBehind: 40 * time.Millisecond, Drain: 120 * time.Millisecond, Cores: used, OK: true, For: 2 * time.Minute,
		Costs: []Cost{{Name: "bridge", CPUPerReading: 30 * time.Microsecond}, {Name: "kafka", CPUPerReading: 10 * time.Microsecond}}},
		Holds: []Probe{{Rate: 15000, Costs: []Cost{{Name: "bridge", CPUPerReading: 40 * time.Microsecond},
			{Name: "ingest", CPUPerReading: 7 * time.Microsecond}, {Name: "catalog", CPUPerReading: 3 * time.Microsecond},
			{Name: "deserialize", CPUPerReading: 6 * time.Microsecond}, {Name: "merge", CPUPerReading: 5 * time.Microsecond}}}}}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"## The front alone, paced",
		"(0.80× the bridge alone",
		fmt.Sprintf("| 20000 | 20000 | 40 ms | 120 ms | %.2f of %d | yes |", used, runtime.NumCPU()),
		"| **all** | **40.00** |",
		"leaves 0.50 cores, 25.0 µs of CPU a reading, for ingest, deserialize, merge and the catalog together; in the last hold they took 21.0 µs a reading.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	r.Front.Cores, r.Front.OK, r.Front.Why = cores+0.1, false, "published 18000/s"
	b.Reset()
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no: published 18000/s", "nothing is left for the hops"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("overloaded front: report lacks %q:\n%s", want, b.String())
		}
	}
}
