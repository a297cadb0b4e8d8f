package e2ebench

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// WriteMarkdown writes the report as Markdown tables.
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	fmt.Fprintf(b, "# End-to-end benchmark (%s run, %s)\n\n", mode, r.Start.UTC().Format(time.RFC3339))
	fmt.Fprintf(b, "Every process on this machine (%s); load average (1/5/15 min) at the start %s, at the end %s.\n\n",
		machine(), r.LoadStart, r.LoadEnd)

	for _, n := range r.Notes {
		fmt.Fprintf(b, "**Note:** %s\n\n", n)
	}
	if r.Ceiling > 0 {
		r.writeThroughput(b)
	}
	if r.Front != nil {
		r.writeFront(b)
	}
	if r.Ceiling > 0 || r.Fresh.F.Rows > 0 || len(r.Holds) > 0 {
		r.writeFreshness(b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeThroughput(b *strings.Builder) {
	b.WriteString("## Sustained throughput\n\n")
	b.WriteString("| path | readings/s | × bridge alone | × MQTT ceiling | load after |\n|---|---:|---:|---:|---|\n")
	fmt.Fprintf(b, "| MQTT ceiling: paho QoS 1 publisher → Mosquitto → ack-only paho subscriber | %.0f | %s | 1.00 | %s |\n",
		r.Ceiling, ratio(r.Ceiling, r.BridgeAlone), r.CeilingLoad)
	fmt.Fprintf(b, "| bridge alone: MQTT → bridge → Kafka | %.0f | 1.00 | %s | %s |\n", r.BridgeAlone, ratio(r.BridgeAlone, r.Ceiling), r.BridgeLoad)
	var holdLoad string
	if n := len(r.Holds); n > 0 {
		holdLoad = r.Holds[n-1].Load
	}
	fmt.Fprintf(b, "| whole pipeline, held %v (MQTT → … → gold, every hop keeping up) | %.0f | %s | %s | %s |\n\n",
		r.HoldFor, r.Sustained, ratio(r.Sustained, r.BridgeAlone), ratio(r.Sustained, r.Ceiling), holdLoad)
	if len(r.CeilingRounds) > 1 || len(r.BridgeRounds) > 1 {
		fmt.Fprintf(b, "The ceiling and the bridge alone are the medians of %d runs each, alternating which went first: ceiling %s; bridge alone %s readings/s.\n\n",
			max(len(r.CeilingRounds), len(r.BridgeRounds)), rates(r.CeilingRounds), rates(r.BridgeRounds))
	}
	if r.Warmup > 0 {
		fmt.Fprintf(b, "Each bridge-alone run's stack carried %v of traffic at %d readings/s, uncounted, before its measured run (Kafka compiles its hot paths in the first minute or so of traffic); its rate runs from the start of publishing to the bridge's last write. The probes and holds run on the stack the freshness run warmed.\n\n", r.Warmup, bridgeWarmupRate)
	} else {
		b.WriteString("The bridge-alone runs were measured on cold stacks (no warm-up): Kafka compiling its hot paths counts against the bridge alone.\n\n")
	}
	fmt.Fprintf(b, "A rate is kept up with when the publishers reach %.0f %% of it, gold holds every reading within %v of the last publish "+
		"and gold's data age (merge's newest_data_age) grows by at most %v from the first to the last third of the run.\n\n",
		minAchieved*100, maxDrain, maxGrowth)
	fmt.Fprintf(b, "The holds start at the highest rate a probe kept up with, but at most %.2f× the bridge alone (the pipeline does the bridge's work and the hops' on the same cores), and a failed hold is tried again %.0f %% lower on a new stack, %d holds at most.\n\n",
		holdCap, holdStep*100, holdAttempts)
	b.WriteString("| run | rate asked | published/s | gold complete after | gold age growth | max data age ingest / deserialize / merge | kept up | load |\n|---|---:|---:|---:|---:|---|---|---|\n")
	for i, p := range r.Probes {
		probeRow(b, fmt.Sprintf("probe %d", i+1), p)
	}
	for i, p := range r.Holds {
		probeRow(b, fmt.Sprintf("hold %d (%v)", i+1, p.End.Sub(p.Start).Round(time.Second)), p)
	}

}

// writeFront reports the front alone's paced hold and the room it leaves
// for the hops.
func (r *Report) writeFront(b *strings.Builder) {
	f := r.Front
	b.WriteString("\n## The front alone, paced\n\n")
	share := ""
	if f.Share > 0 {
		share = fmt.Sprintf(" (%.2f× the bridge alone, the share the whole pipeline is to hold)", f.Share)
	}
	fmt.Fprintf(b, "Publisher → Mosquitto → bridge → Kafka, no hops, on a stack warmed with %v at %d readings/s, held at %.0f readings/s%s for %v: "+
		"the bridge alone's processes at a steady pace rather than at saturation.\n\n", r.Warmup, bridgeWarmupRate, f.Rate, share, f.For)
	b.WriteString("| rate asked | published/s | most behind the schedule | all written after the last publish | CPU cores used | kept up | load |\n|---:|---:|---:|---:|---:|---|---|\n")
	fmt.Fprintf(b, "| %.0f | %.0f | %s | %s | %.2f of %d | %s | %s |\n\n", f.Rate, f.Achieved, ms(f.MaxBehind), drainText(f.Drain), f.Cores, runtime.NumCPU(), keptUp(f.OK, f.Why), f.Load)
	costTable(b, fmt.Sprintf("CPU per reading, front alone at %.0f/s", f.Rate), f.Costs, nil)
	room := (float64(runtime.NumCPU()) - f.Cores) / f.Achieved * 1e6
	if room <= 0 || f.Achieved <= 0 {
		b.WriteString("The front alone used every core at this pace: nothing is left for the hops, so the whole pipeline cannot hold this rate on this machine.\n\n")
		return
	}
	fmt.Fprintf(b, "At this pace the front leaves %.2f cores, %.1f µs of CPU a reading, for ingest, deserialize, merge and the catalog together", float64(runtime.NumCPU())-f.Cores, room)
	if n := len(r.Holds); n > 0 {
		var hops time.Duration
		for _, c := range r.Holds[n-1].Costs {
			if slices.Contains([]string{"ingest", "deserialize", "merge", "catalog"}, c.Name) {
				hops += c.CPUPerReading
			}
		}
		fmt.Fprintf(b, "; in the last hold they took %.1f µs a reading", us(hops))
	}
	b.WriteString(".\n\n")
}

func (r *Report) writeFreshness(b *strings.Builder) {
	b.WriteString("\n## Freshness: publish → visible in gold\n\n")
	fmt.Fprintf(b, "Each freshness run's stack first carried 10 s at a tenth of the rate and %v at the rate, uncounted.\n\n", r.Warmup)
	for _, fr := range []FreshRun{r.Fresh, r.Fast} {
		if fr.F.Rows == 0 {
			continue
		}
		fmt.Fprintf(b, "**%s** at %.0f readings/s (published %.0f/s), %d readings over %.2f min:\n\n", fr.Settings, fr.Probe.Rate, fr.Probe.Achieved, fr.F.Rows, fr.Minutes)
		b.WriteString("| segment | p50 | p99 | max | share of mean |\n|---|---:|---:|---:|---:|\n")
		fmt.Fprintf(b, "| **publish → gold** | **%s** | **%s** | **%s** | 100 %% |\n", ms(fr.F.Total.P50), ms(fr.F.Total.P99), ms(fr.F.Total.Max))
		for _, s := range fr.F.Segments {
			fmt.Fprintf(b, "| %s | %s | %s | %s | %.0f %% |\n", s.Name, ms(s.Q.P50), ms(s.Q.P99), ms(s.Q.Max), s.Share*100)
		}
		b.WriteString("\n| table | commits/min | files/min |\n|---|---:|---:|\n")
		for _, t := range []string{RawTable, BronzeTable, GoldTable} {
			a := fr.Activity[t]
			fmt.Fprintf(b, "| %s | %.0f | %.0f |\n", t, float64(a.Commits)/fr.Minutes, float64(a.Files)/fr.Minutes)
		}
		b.WriteString("\n")
		costTable(b, fmt.Sprintf("CPU per reading at %.0f/s (%s)", fr.Probe.Rate, fr.Settings), fr.Probe.Costs, nil)
	}
	b.WriteString("Publish time is the reading's ts (the simulator's clocks are true; a reading is published when due, " +
		"so a publisher behind its schedule adds to the figures); the commit times are the Delta commits' timestamps of raw_version, " +
		"bronze_version and the first gold version holding the row.\n\n")

	b.WriteString("## CPU per reading and peak RSS\n\n")
	if n := len(r.Holds); n > 0 {
		costTable(b, fmt.Sprintf("whole pipeline at %.0f/s (the last hold)", r.Holds[n-1].Rate), r.Holds[n-1].Costs, r.PeakRSS)
	} else if len(r.PeakRSS) > 0 {
		costTable(b, fmt.Sprintf("whole pipeline at %.0f/s (defaults)", r.Fresh.Probe.Rate), r.Fresh.Probe.Costs, r.PeakRSS)
	}
	if r.BridgeAlone > 0 {
		costTable(b, fmt.Sprintf("bridge alone at %.0f/s", r.BridgeAlone), r.BridgeCosts, nil)
	}
	b.WriteString("CPU is user + system time from /proc over the run divided by the readings published; peak RSS is the process's " +
		"high-water mark (VmHWM) over the default stack's whole life (the services' read every 50 ms while they run and before their graceful stop).\n")
}

// drainText is a drain time for a table (negative: not within the wait).
func drainText(d time.Duration) string {
	if d < 0 {
		return "not within the wait"
	}
	return ms(d)
}

// keptUp is a run's verdict for a table.
func keptUp(ok bool, why string) string {
	if ok {
		return "yes"
	}
	return "no: " + why
}

func probeRow(b *strings.Builder, name string, p Probe) {
	drain, ok := drainText(p.Drain), keptUp(p.OK, p.Why)
	fmt.Fprintf(b, "| %s | %.0f | %.0f | %s | %s | %s / %s / %s | %s | %s |\n", name, p.Rate, p.Achieved, drain, ms(p.Growth),
		ms(p.MaxAge["ingest"]), ms(p.MaxAge["deserialize"]), ms(p.MaxAge["merge"]), ok, p.Load)
}

func costTable(b *strings.Builder, title string, costs, rss []Cost) {
	fmt.Fprintf(b, "%s:\n\n", title)
	peak := map[string]int64{}
	for _, c := range rss {
		peak[c.Name] = c.PeakRSSKiB
	}
	if rss != nil {
		b.WriteString("| process | CPU µs/reading | peak RSS MiB |\n|---|---:|---:|\n")
	} else {
		b.WriteString("| process | CPU µs/reading |\n|---|---:|\n")
	}
	var total time.Duration
	for _, c := range costs {
		total += c.CPUPerReading
		if rss != nil {
			mark := ""
			if slices.Contains(plantlakeServices, c.Name) && peak[c.Name] >= rssLimitKiB {
				mark = " (over 256 MiB)"
			}
			fmt.Fprintf(b, "| %s | %.2f | %.0f%s |\n", c.Name, us(c.CPUPerReading), float64(peak[c.Name])/1024, mark)
		} else {
			fmt.Fprintf(b, "| %s | %.2f |\n", c.Name, us(c.CPUPerReading))
		}
	}
	if rss != nil {
		fmt.Fprintf(b, "| **all** | **%.2f** | |\n\n", us(total))
	} else {
		fmt.Fprintf(b, "| **all** | **%.2f** |\n\n", us(total))
	}
}

// rssLimitKiB is the peak RSS every plantlake service must stay under
// (issue 14: < 256 MiB).
const rssLimitKiB = 256 << 10

// plantlakeServices are the processes the RSS limit applies to (not the
// brokers or the benchmark's own publisher).
var plantlakeServices = []string{"bridge", "ingest", "catalog", "deserialize", "merge"}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// rates lists readings/s figures, rounded, in the order given.
func rates(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}
