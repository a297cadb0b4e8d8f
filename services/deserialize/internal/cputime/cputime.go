// Package cputime reports a benchmark's CPU time per operation beside its
// wall time. On a machine shared with other work a benchmark gets a fraction
// of a core and its ns/op grows with the load; the process's user and system
// time per operation does not, so the deserialize benchmarks report both.
package cputime

import (
	"syscall"
	"testing"
	"time"
)

// Start records the process's CPU time so far; call the returned function
// when the measured loop ends (before b's timer stops) to report the CPU time
// per operation as the metric "cpu-ns/op".
func Start(b *testing.B) func() {
	b.Helper()
	start := used()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(used()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// used is the process's user plus system time.
func used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
