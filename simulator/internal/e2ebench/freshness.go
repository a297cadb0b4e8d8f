package e2ebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
)

// The tables a reading passes through, as warehouse-relative folders.
const (
	RawTable    = "raw/plant_sensor_readings"
	BronzeTable = "bronze/plant_sensor_readings"
	GoldTable   = "gold/plant_sensor_readings"
)

// RowTimes is one reading's way through the pipeline: when it was
// published, when the bridge received it, and when the raw, bronze and gold
// commits that first held it were made.
type RowTimes struct {
	Published, Bridge, Raw, Bronze, Gold time.Time
}

// Quantiles are a duration's p50, p99 and maximum (nearest rank).
type Quantiles struct {
	P50, P99, Max time.Duration
}

// Segment is one hop's part of the way from publish to gold.
type Segment struct {
	// Name says where the segment starts and ends ("bridge -> raw commit").
	Name string
	// Q are the segment's quantiles over the rows.
	Q Quantiles
	// Share is the segment's part of the mean publish-to-gold time.
	Share float64
}

// Freshness is publish -> visible in gold over a set of readings.
type Freshness struct {
	// Rows is how many readings it was computed over.
	Rows int
	// Total is publish -> the gold commit that first held the reading.
	Total Quantiles
	// Segments split Total by hop, in pipeline order; their means add up
	// to Total's mean.
	Segments []Segment
}

// segmentNames are the hops of RowTimes, in order.
var segmentNames = []string{"publish -> bridge", "bridge -> raw commit", "raw -> bronze commit", "bronze -> gold commit"}

// Summarize computes the freshness of rows. Rows without a bridge time
// count the publish-to-raw time in the raw segment.
func Summarize(rows []RowTimes) Freshness {
	f := Freshness{Rows: len(rows)}
	if len(rows) == 0 {
		return f
	}
	total := make([]time.Duration, len(rows))
	segs := make([][]time.Duration, len(segmentNames))
	for i := range segs {
		segs[i] = make([]time.Duration, len(rows))
	}
	var sumTotal time.Duration
	sums := make([]time.Duration, len(segmentNames))
	for i, r := range rows {
		bridge := r.Bridge
		if bridge.IsZero() {
			bridge = r.Published
		}
		d := []time.Duration{bridge.Sub(r.Published), r.Raw.Sub(bridge), r.Bronze.Sub(r.Raw), r.Gold.Sub(r.Bronze)}
		for s, v := range d {
			segs[s][i] = v
			sums[s] += v
		}
		total[i] = r.Gold.Sub(r.Published)
		sumTotal += total[i]
	}
	f.Total = quantiles(total)
	for s, name := range segmentNames {
		seg := Segment{Name: name, Q: quantiles(segs[s])}
		if sumTotal != 0 {
			seg.Share = float64(sums[s]) / float64(sumTotal)
		}
		f.Segments = append(f.Segments, seg)
	}
	return f
}

// quantiles sorts ds and returns its nearest-rank p50, p99 and maximum.
func quantiles(ds []time.Duration) Quantiles {
	slices.Sort(ds)
	return Quantiles{P50: rank(ds, 0.50), P99: rank(ds, 0.99), Max: ds[len(ds)-1]}
}

// rank is the nearest-rank percentile p of sorted ds: the smallest value
// with at least p of the values at or below it.
func rank(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p+0.999999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// ReadRowTimes reads, from the warehouse's gold table, every reading whose
// ts lies in [from, to): its ts (the publish time: the simulator's clocks
// have no skew in the benchmark), bridge_ts, and the commit times of the
// raw version (raw_version), the bronze version (bronze_version) and the
// first gold version that held it (Delta commit timestamps).
func ReadRowTimes(ctx context.Context, warehouse string, from, to time.Time) ([]RowTimes, error) {
	rawTimes, err := commitTimes(ctx, filepath.Join(warehouse, RawTable))
	if err != nil {
		return nil, err
	}
	bronzeTimes, err := commitTimes(ctx, filepath.Join(warehouse, BronzeTable))
	if err != nil {
		return nil, err
	}
	goldDir := filepath.Join(warehouse, GoldTable)
	goldTimes, err := commitTimes(ctx, goldDir)
	if err != nil {
		return nil, err
	}
	store, err := storage.NewLocal(goldDir)
	if err != nil {
		return nil, fmt.Errorf("open gold: %w", err)
	}
	snap, err := delta.Open(store).Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("gold snapshot: %w", err)
	}
	added, err := addedFiles(goldDir, snap.Version())
	if err != nil {
		return nil, err
	}
	type key struct{ partition, offset int64 }
	seen := map[key]bool{}
	var out []RowTimes
	opts := reader.Options{Columns: []string{"ts", "bridge_ts", "raw_version", "bronze_version", "kafka_partition", "kafka_offset"}}
	for v := int64(0); v <= snap.Version(); v++ {
		if len(added[v]) == 0 {
			continue
		}
		files := make([]delta.Add, len(added[v]))
		for i, p := range added[v] {
			files[i] = delta.Add{Path: delta.CanonicalPath(p, goldDir)}
		}
		scan, err := reader.NewFiles(store, snap, files, opts)
		if err != nil {
			return nil, fmt.Errorf("gold v%d: %w", v, err)
		}
		for rec, err := range scan.Records(ctx) {
			if err != nil {
				scan.Close()
				return nil, fmt.Errorf("gold v%d: %w", v, err)
			}
			rows, err := reader.RecordRows(rec)
			if err != nil {
				scan.Close()
				return nil, fmt.Errorf("gold v%d: %w", v, err)
			}
			for _, r := range rows {
				k := key{asInt(r["kafka_partition"]), asInt(r["kafka_offset"])}
				if seen[k] {
					continue
				}
				seen[k] = true
				ts, err := asTime(r["ts"])
				if err != nil {
					scan.Close()
					return nil, fmt.Errorf("gold v%d ts: %w", v, err)
				}
				if ts.Before(from) || !ts.Before(to) {
					continue
				}
				bridge, _ := asTime(r["bridge_ts"])
				rt := RowTimes{Published: ts, Bridge: bridge, Gold: goldTimes[v],
					Raw: rawTimes[asInt(r["raw_version"])], Bronze: bronzeTimes[asInt(r["bronze_version"])]}
				if rt.Raw.IsZero() || rt.Bronze.IsZero() || rt.Gold.IsZero() {
					scan.Close()
					return nil, fmt.Errorf("gold v%d: a row names raw v%v / bronze v%v without a commit time", v, r["raw_version"], r["bronze_version"])
				}
				out = append(out, rt)
			}
		}
		if err := scan.Close(); err != nil {
			return nil, fmt.Errorf("gold v%d: %w", v, err)
		}
	}
	return out, nil
}

// commitTimes maps every version of the table in dir to its commit time.
func commitTimes(ctx context.Context, dir string) (map[int64]time.Time, error) {
	store, err := storage.NewLocal(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	hist, err := delta.Open(store).History(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", dir, err)
	}
	out := make(map[int64]time.Time, len(hist))
	for _, c := range hist {
		out[c.Version] = c.Timestamp
	}
	return out, nil
}

// addedFiles returns the paths of the files each commit of the table in dir
// added, up to version last, from the JSON commit files.
func addedFiles(dir string, last int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	for v := int64(0); v <= last; v++ {
		data, err := os.ReadFile(filepath.Join(dir, "_delta_log", fmt.Sprintf("%020d.json", v)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // cleaned up behind a checkpoint: its rows count from a later version
		}
		if err != nil {
			return nil, fmt.Errorf("read commit %d: %w", v, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var a struct {
				Add *struct {
					Path string `json:"path"`
				} `json:"add"`
			}
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				return nil, fmt.Errorf("commit %d of %s: %w", v, dir, err)
			}
			if a.Add != nil {
				out[v] = append(out[v], a.Add.Path)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("commit %d of %s: %w", v, dir, err)
		}
	}
	return out, nil
}

// Activity is what one table's commits did in a time window.
type Activity struct {
	Commits, Files int
}

// TableActivity counts the commits of the table in dir made in [from, to)
// and the files they added.
func TableActivity(ctx context.Context, dir string, from, to time.Time) (Activity, error) {
	times, err := commitTimes(ctx, dir)
	if err != nil {
		return Activity{}, err
	}
	var last int64 = -1
	for v := range times {
		last = max(last, v)
	}
	added, err := addedFiles(dir, last)
	if err != nil {
		return Activity{}, err
	}
	var a Activity
	for v, t := range times {
		if !t.Before(from) && t.Before(to) {
			a.Commits++
			a.Files += len(added[v])
		}
	}
	return a, nil
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	}
	return -1
}

func asTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("timestamp %v is not a string", v)
	}
	return time.Parse(time.RFC3339Nano, s)
}
