package mergeplan

import (
	"cmp"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/plantlake/plantlake/delta"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// FileStats are the bounds of a gold file's key columns, from its add
// action's stats. A bound that is unknown makes the file a candidate for
// every key on that column.
type FileStats struct {
	SensorMin, SensorMax string
	HasSensor            bool
	// TSMin and TSMax are microseconds; Delta's stats cut them to
	// milliseconds, the min rounded down and the max rounded up.
	TSMin, TSMax int64
	HasTS        bool
	// NumRecords is the file's row count; 0 when unknown.
	NumRecords int64
}

// ParseStats reads the key bounds of an add's stats JSON. Stats that do
// not parse give no bounds (the file is then always read).
func ParseStats(stats string) FileStats {
	var s struct {
		NumRecords int64                      `json:"numRecords"`
		Min        map[string]json.RawMessage `json:"minValues"`
		Max        map[string]json.RawMessage `json:"maxValues"`
	}
	if stats == "" || json.Unmarshal([]byte(stats), &s) != nil {
		return FileStats{}
	}
	fs := FileStats{NumRecords: max(s.NumRecords, 0)}
	var lo, hi string
	if json.Unmarshal(s.Min["sensor_id"], &lo) == nil && json.Unmarshal(s.Max["sensor_id"], &hi) == nil {
		fs.SensorMin, fs.SensorMax, fs.HasSensor = lo, hi, true
	}
	if json.Unmarshal(s.Min["ts"], &lo) == nil && json.Unmarshal(s.Max["ts"], &hi) == nil {
		tlo, err1 := time.Parse(time.RFC3339Nano, lo)
		thi, err2 := time.Parse(time.RFC3339Nano, hi)
		if err1 == nil && err2 == nil {
			// Round outward to whole milliseconds whatever the writer did.
			fs.TSMin = tlo.UnixMilli() * 1000
			fs.TSMax = thi.UnixMilli()*1000 + 999
			fs.HasTS = true
		}
	}
	return fs
}

// StatsCache keeps the parsed stats of gold's files by path, so that each
// file's stats JSON is parsed once, not at every batch.
type StatsCache struct{ m map[string]FileStats }

// NewStatsCache returns an empty cache.
func NewStatsCache() *StatsCache { return &StatsCache{m: map[string]FileStats{}} }

// Get returns the stats of add.
func (c *StatsCache) Get(add *delta.Add) FileStats {
	if s, ok := c.m[add.Path]; ok {
		return s
	}
	s := ParseStats(add.Stats)
	c.m[add.Path] = s
	return s
}

// Trim drops the entries of files that are no longer live once the cache
// holds twice as many entries as there are live files.
func (c *StatsCache) Trim(live []delta.Add) {
	if len(c.m) <= 2*len(live)+64 {
		return
	}
	keep := make(map[string]FileStats, len(live))
	for i := range live {
		if s, ok := c.m[live[i].Path]; ok {
			keep[live[i].Path] = s
		}
	}
	c.m = keep
}

// Partition is the batch's rows of one event_date, sorted by (sensor_id,
// ts) so that a file's bounds are checked by binary search.
type Partition struct {
	// Value is the event_date partition value ("" for null).
	Value string
	// Rows index Data.Rows.
	Rows []int32
	// tsMin and tsMax bound the rows' ts; anyNull is true when a row has
	// a null sensor_id or ts (stats do not bound nulls).
	tsMin, tsMax int64
	anyNull      bool
	// bySensor is true when sensor_id is part of the key, so that its
	// bounds may prune.
	bySensor bool
	sensors  []string // sensors[i] = Data.Rows[Rows[i]].SensorID
}

// Partitions groups d's rows by event_date, in partition order.
func Partitions(d *Data, spec KeySpec) []*Partition {
	by := map[string]*Partition{}
	// Rows of a batch nearly all share one day: the partition of the row
	// before is reused without formatting the date and a map lookup.
	var last *Partition
	var lastDate int32
	lastNull := false
	for i := range d.Rows {
		r := &d.Rows[i]
		null := r.Null(gold.ColEventDate)
		p := last
		if p == nil || null != lastNull || (!null && r.EventDate != lastDate) {
			v := ""
			if !null {
				v = gold.FormatDate(r.EventDate)
			}
			p = by[v]
			if p == nil {
				p = &Partition{Value: v, tsMin: r.TS, tsMax: r.TS, bySensor: spec.Has(gold.ColSensorID)}
				by[v] = p
			}
			last, lastDate, lastNull = p, r.EventDate, null
		}
		p.Rows = append(p.Rows, int32(i))
		if r.Null(gold.ColSensorID) || r.Null(gold.ColTS) {
			p.anyNull = true
		}
		p.tsMin, p.tsMax = min(p.tsMin, r.TS), max(p.tsMax, r.TS)
	}
	out := make([]*Partition, 0, len(by))
	for _, p := range by {
		p.sort(d)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Partition) int { return cmp.Compare(a.Value, b.Value) })
	return out
}

// sort orders p.Rows by sensor_id and ts (ties by row) and fills
// p.sensors. A batch holds many rows of each of a few hundred sensors:
// the rows are sorted by each sensor's rank among the distinct sensors,
// so that no string is compared row against row (a third of merge's
// sorting time compared sensor ids).
func (p *Partition) sort(d *Data) {
	type sortKey struct {
		sensor int32
		row    int32
		ts     int64
	}
	rank := map[string]int32{}
	var names []string
	keys := make([]sortKey, len(p.Rows))
	for i, ri := range p.Rows {
		r := &d.Rows[ri]
		k, ok := rank[r.SensorID]
		if !ok {
			k = int32(len(names))
			rank[r.SensorID] = k
			names = append(names, r.SensorID)
		}
		keys[i] = sortKey{sensor: k, row: ri, ts: r.TS}
	}
	// Ranks in sensor order.
	order := make([]int32, len(names))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(names[a], names[b]) })
	sorted := make([]int32, len(names))
	for pos, k := range order {
		sorted[k] = int32(pos)
	}
	for i := range keys {
		keys[i].sensor = sorted[keys[i].sensor]
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		return cmp.Or(cmp.Compare(a.sensor, b.sensor), cmp.Compare(a.ts, b.ts), cmp.Compare(a.row, b.row))
	})
	p.sensors = make([]string, len(keys))
	for i, k := range keys {
		p.Rows[i] = k.row
		p.sensors[i] = names[order[k.sensor]]
	}
}

// MayHold reports whether a file of the partition with stats st may hold
// one of the partition's keys: some row's sensor_id and ts both fall in the
// file's bounds.
func (p *Partition) MayHold(d *Data, st FileStats) bool {
	if p.anyNull || !st.HasTS {
		return true
	}
	if p.tsMax < st.TSMin || p.tsMin > st.TSMax {
		return false
	}
	if !p.bySensor || !st.HasSensor {
		for _, ri := range p.Rows {
			if ts := d.Rows[ri].TS; ts >= st.TSMin && ts <= st.TSMax {
				return true
			}
		}
		return false
	}
	i := sort.SearchStrings(p.sensors, st.SensorMin)
	for ; i < len(p.sensors) && p.sensors[i] <= st.SensorMax; i++ {
		if ts := d.Rows[p.Rows[i]].TS; ts >= st.TSMin && ts <= st.TSMax {
			return true
		}
	}
	return false
}

// Candidates returns the files of snapshot files that may hold a key of
// one of parts: those of the partitions' event_dates whose stats admit one
// of the partition's rows.
func Candidates(d *Data, parts []*Partition, files []delta.Add, cache *StatsCache) []delta.Add {
	byValue := make(map[string]*Partition, len(parts))
	for _, p := range parts {
		byValue[p.Value] = p
	}
	var out []delta.Add
	for i := range files {
		f := &files[i]
		p := byValue[f.PartitionValues[gold.PartitionColumn]]
		if p == nil {
			continue
		}
		if p.MayHold(d, cache.Get(f)) {
			out = append(out, *f)
		}
	}
	return out
}

// Admitted calls fn with each of the partition's rows (indexes of
// Data.Rows) that a file with stats st may hold, as MayHold judges them,
// until fn returns false.
func (p *Partition) Admitted(d *Data, st FileStats, fn func(ri int32) bool) {
	switch {
	case p.anyNull || !st.HasTS:
		for _, ri := range p.Rows {
			if !fn(ri) {
				return
			}
		}
	case p.tsMax < st.TSMin || p.tsMin > st.TSMax:
	case !p.bySensor || !st.HasSensor:
		for _, ri := range p.Rows {
			if ts := d.Rows[ri].TS; ts >= st.TSMin && ts <= st.TSMax && !fn(ri) {
				return
			}
		}
	default:
		i := sort.SearchStrings(p.sensors, st.SensorMin)
		for ; i < len(p.sensors) && p.sensors[i] <= st.SensorMax; i++ {
			ri := p.Rows[i]
			if ts := d.Rows[ri].TS; ts >= st.TSMin && ts <= st.TSMax && !fn(ri) {
				return
			}
		}
	}
}
