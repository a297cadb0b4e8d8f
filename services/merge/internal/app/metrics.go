package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plantlake/plantlake/services/merge/internal/goldsink"
)

// registerMetrics registers merge's own counters, read from the gold sink
// once it is open (zero before).
func registerMetrics(reg prometheus.Registerer, c *control) {
	count := func(name, help string, get func(goldsink.Counts) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "plantlake", Subsystem: serviceName, Name: name, Help: help},
			func() float64 {
				s := c.sink.Load()
				if s == nil {
					return 0
				}
				return float64(get(s.Counts()))
			})
	}
	reg.MustRegister(
		count("rows_inserted_total", "Gold rows inserted (keys new to gold).",
			func(n goldsink.Counts) int64 { return n.Inserted }),
		count("rows_updated_total", "Gold rows replaced by a newer bronze row (latest_wins).",
			func(n goldsink.Counts) int64 { return n.Updated }),
		count("duplicates_total", "Bronze rows dropped as duplicates: inside a batch, or of a key gold holds (first_wins) or holds newer.",
			func(n goldsink.Counts) int64 { return n.Duplicates }),
		count("candidate_files_read_total", "Gold files whose key columns were read to find a batch's keys.",
			func(n goldsink.Counts) int64 { return n.CandidateFiles - n.CachedFiles }),
		count("candidate_files_cached_total", "Candidate gold files not read: the key cache held their keys and none was the batch's.",
			func(n goldsink.Counts) int64 { return n.CachedFiles }),
		count("key_cache_derived_files_total", "Gold files a compaction wrote whose keys the key cache took from the files they replaced, not read.",
			func(n goldsink.Counts) int64 { return n.DerivedFiles }),
		count("files_rewritten_total", "Gold files rewritten by latest_wins merges.",
			func(n goldsink.Counts) int64 { return n.RewrittenFiles }),
	)
}
