package datafile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// ParseStats decodes an add's stats string; numbers stay json.Number, so that none loses
// precision.
func ParseStats(s string) (*Stats, error) {
	if s == "" {
		return nil, errors.New("datafile: no stats")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var st Stats
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("datafile: decode stats: %w", err)
	}
	return &st, nil
}

// MergeStats returns the stats of a file holding the rows of files whose stats are parts and
// whose columns are schema's (partition columns left out): numRecords and null counts summed,
// the least min and the greatest max. Write's stats are monotone in the rows (a prefix cut of
// the least string is the least of the prefix cuts; timestamps are rounded down and up), so
// the result is what Write computes from all the rows, with one rule kept: a column lacking
// a bound in a part that has non-null values of it (a NaN, an infinity, a string that cannot
// be cut) lacks it in the result; a part whose null count of a column is unknown leaves the
// column without null count and bounds. That rule is where the result can be poorer than
// Write's, never wrong: a part whose floats are all +Inf has no min in its stats (nor a max),
// which cannot be told from a part holding a NaN, so the merged min is left out where Write,
// seeing the other parts' finite values, would have one.
func MergeStats(schema *arrow.Schema, parts ...*Stats) *Stats {
	out := &Stats{MinValues: map[string]any{}, MaxValues: map[string]any{}, NullCount: map[string]any{}}
	views := make([]statsView, len(parts))
	for i, p := range parts {
		out.NumRecords += p.NumRecords
		views[i] = statsView{p.MinValues, p.MaxValues, p.NullCount, p.NumRecords}
	}
	for _, f := range schema.Fields() {
		mergeColumn(newColumnStats(f), views, out.MinValues, out.MaxValues, out.NullCount)
	}
	return out
}

// statsView is one part's stats at one level of nesting.
type statsView struct {
	mins, maxs, nulls map[string]any
	rows              int64
}

func mergeColumn(cs *columnStats, in []statsView, mins, maxs, nulls map[string]any) {
	if cs.isStruct {
		sub := make([]statsView, len(in))
		for i, v := range in {
			sub[i] = statsView{asObject(v.mins[cs.name]), asObject(v.maxs[cs.name]), asObject(v.nulls[cs.name]), v.rows}
		}
		cmin, cmax, cnull := map[string]any{}, map[string]any{}, map[string]any{}
		for _, ch := range cs.children {
			mergeColumn(ch, sub, cmin, cmax, cnull)
		}
		for _, m := range []struct {
			dst, src map[string]any
		}{{mins, cmin}, {maxs, cmax}, {nulls, cnull}} {
			if len(m.src) > 0 {
				m.dst[cs.name] = m.src
			}
		}
		return
	}
	var total int64
	allNull := make([]bool, len(in))
	for i, v := range in {
		n, ok := v.nulls[cs.name].(json.Number)
		if !ok {
			return
		}
		c, err := n.Int64()
		if err != nil {
			return
		}
		total += c
		allNull[i] = c >= v.rows
	}
	nulls[cs.name] = total
	if cs.kind == kindNone {
		return
	}
	if lo, ok := extreme(cs, in, allNull, func(v statsView) map[string]any { return v.mins }, false); ok {
		mins[cs.name] = lo
	}
	if hi, ok := extreme(cs, in, allNull, func(v statsView) map[string]any { return v.maxs }, true); ok {
		maxs[cs.name] = hi
	}
}

// extreme returns the least (or greatest) of the parts' bounds of cs, skipping parts where cs
// is all null; false if a part with values lacks the bound or none has values.
func extreme(cs *columnStats, in []statsView, allNull []bool, bound func(statsView) map[string]any, greatest bool) (any, bool) {
	var best any
	for i, v := range in {
		if allNull[i] {
			continue
		}
		b, ok := bound(v)[cs.name]
		if !ok {
			return nil, false
		}
		if best == nil {
			best = b
			continue
		}
		var less bool
		var err error
		if greatest {
			less, err = statLess(cs, best, b)
		} else {
			less, err = statLess(cs, b, best)
		}
		if err != nil {
			return nil, false
		}
		if less {
			best = b
		}
	}
	return best, best != nil
}

// statLess orders two stats values of cs's kind; a float -0 is less than 0, as Write's min
// keeps -0 and its max 0.
func statLess(cs *columnStats, a, b any) (bool, error) {
	switch cs.kind {
	case kindInt:
		x, err1 := numberInt(a)
		y, err2 := numberInt(b)
		return x < y, errors.Join(err1, err2)
	case kindFloat:
		x, err1 := numberFloat(a)
		y, err2 := numberFloat(b)
		return x < y || (x == 0 && y == 0 && math.Signbit(x) && !math.Signbit(y)), errors.Join(err1, err2)
	case kindDecimal:
		x, ok1 := new(big.Rat).SetString(fmt.Sprint(a))
		y, ok2 := new(big.Rat).SetString(fmt.Sprint(b))
		if !ok1 || !ok2 {
			return false, fmt.Errorf("decimal stats %v, %v", a, b)
		}
		return x.Cmp(y) < 0, nil
	case kindString:
		x, ok1 := a.(string)
		y, ok2 := b.(string)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("string stats %v, %v", a, b)
		}
		return x < y, nil
	case kindDate, kindTimestamp:
		x, err1 := statTime(a)
		y, err2 := statTime(b)
		return x.Before(y), errors.Join(err1, err2)
	}
	return false, fmt.Errorf("no order for %s", cs.typ)
}

func numberInt(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	return n.Int64()
}

func numberFloat(v any) (float64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	return n.Float64()
}

// statTime parses a date or timestamp as Write formats them.
func statTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%v is not a time", v)
	}
	for _, layout := range []string{"2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05.000", time.RFC3339Nano, PartitionDateLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date or timestamp", s)
}

func asObject(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
