package chaos

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteReport prints a run's counts, its faults and its differences.
func WriteReport(w io.Writer, r Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	c := r.Check
	row := func(name string, v any) { fmt.Fprintf(tw, "%s\t%v\n", name, v) }
	row("published", fmt.Sprintf("%d (acked %d, unacked %d, publish retries %d, %.0f/s)",
		r.Published.Published, r.Published.Acked, r.Published.Unacked, r.Published.Retries, r.Published.Rate()))
	var kinds []string
	for _, k := range []string{"reading", "late", "duplicate", "too_late", "broken"} {
		for kind, n := range r.Published.ByKind {
			if string(kind) == k {
				kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
			}
		}
	}
	row("published by kind", strings.Join(kinds, " "))
	row("raw rows", fmt.Sprintf("%d (distinct offsets %d, MQTT redeliveries %d, missing %d, never published %d)",
		c.RawRows, c.RawDistinctOffsets, c.RawRedelivered, c.RawMissing, c.RawUnexpected))
	row("bronze rows", fmt.Sprintf("%d (repeated offsets %d, missing %d, unexpected %d)",
		c.BronzeRows, c.BronzeDuplicateOffsets, c.BronzeMissing, c.BronzeUnexpected))
	row("dead letters", fmt.Sprintf("%d for %d broken or too-late messages published, %d of them redelivered by MQTT (repeated offsets %d, missing %d, unexpected %d, wrong code %d, wrong bytes %d)",
		c.DeadLetters, c.ExpectedDeadLetters, max(0, c.DeadLetters+c.DeadLettersMissing-c.DeadLettersUnexpected-c.ExpectedDeadLetters),
		c.DeadLetterDuplicateOffsets, c.DeadLettersMissing, c.DeadLettersUnexpected,
		c.DeadLetterCodeMismatches, c.DeadLetterBytesMismatches))
	row("gold rows", fmt.Sprintf("%d, want %d (missing %d, extra %d, repeated keys %d, value mismatches %d)",
		c.GoldRows, c.ExpectedGold, c.GoldMissing, c.GoldExtra, c.GoldDuplicateKeys, c.GoldValueMismatches))
	var faults []string
	for _, t := range FaultTargets(r.Faults) {
		faults = append(faults, fmt.Sprintf("%s=%d", t, r.Faults[t]))
	}
	row("faults", strings.Join(faults, " "))
	row("times", fmt.Sprintf("publish %v, drain %v, check %v",
		r.PublishTime.Round(time.Second), r.DrainTime.Round(time.Second), r.CheckTime.Round(time.Second)))
	tw.Flush()
	diffs := r.Differences()
	if len(diffs) == 0 {
		fmt.Fprintln(w, "result: OK, nothing lost or doubled")
		return
	}
	fmt.Fprintln(w, "result: FAILED")
	for _, d := range diffs {
		fmt.Fprintln(w, "  "+d)
	}
	for _, e := range c.Examples {
		fmt.Fprintln(w, "  e.g. "+e)
	}
}
