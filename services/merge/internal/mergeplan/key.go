// Package mergeplan is merge's logic without input or output: the merge key,
// the batch that removes duplicates while bronze rows are appended to it,
// the strategies, and the choice of the gold files that may hold a batch's
// keys (by partition and by the min/max stats of sensor_id and ts), so that
// the cost of a merge grows with the batch and not with gold.
package mergeplan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// ErrInvalidKey is wrapped by errors about a key's columns.
var ErrInvalidKey = errors.New("mergeplan: invalid key")

// Key is a row's merge key. Columns not in the key spec are zero.
type Key struct {
	SensorID, Measurement string
	Line, Plant, Device   string
	TS                    int64
	// Nulls has the gold column bits of the key columns that are null.
	Nulls uint32
}

// keyable are the columns a key may use.
var keyable = map[string]int{
	"sensor_id":   gold.ColSensorID,
	"measurement": gold.ColMeasurement,
	"ts":          gold.ColTS,
	"line":        gold.ColLine,
	"plant":       gold.ColPlant,
	"device":      gold.ColDevice,
}

// KeySpec says which columns form the key.
type KeySpec struct {
	cols []string
	mask uint32
}

// NewKeySpec returns the spec of the key made of cols. The key must hold
// ts, from which event_date derives: a key's rows then all live in one
// partition, which is what lets a merge look at only that partition.
func NewKeySpec(cols []string) (KeySpec, error) {
	var s KeySpec
	for _, c := range cols {
		c = strings.TrimSpace(c)
		bit, ok := keyable[c]
		switch {
		case !ok:
			return KeySpec{}, fmt.Errorf("%w: column %q (allowed: sensor_id, measurement, ts, line, plant, device)", ErrInvalidKey, c)
		case s.mask&(1<<bit) != 0:
			return KeySpec{}, fmt.Errorf("%w: column %q twice", ErrInvalidKey, c)
		}
		s.mask |= 1 << bit
		s.cols = append(s.cols, c)
	}
	if s.mask&(1<<gold.ColTS) == 0 {
		return KeySpec{}, fmt.Errorf("%w: the key must include ts (event_date derives from it)", ErrInvalidKey)
	}
	return s, nil
}

// Columns are the key's columns in the order given.
func (s KeySpec) Columns() []string { return slices.Clone(s.cols) }

// Has reports whether gold column col is part of the key.
func (s KeySpec) Has(col int) bool { return s.mask&(1<<col) != 0 }

// String is the key as a merge predicate, for commit parameters.
func (s KeySpec) String() string {
	parts := make([]string, len(s.cols))
	for i, c := range s.cols {
		parts[i] = "gold." + c + " = bronze." + c
	}
	return strings.Join(parts, " AND ")
}

// Key returns r's key.
func (s KeySpec) Key(r *gold.Row) Key {
	k := Key{TS: r.TS, Nulls: r.Nulls & s.mask}
	if s.Has(gold.ColSensorID) {
		k.SensorID = r.SensorID
	}
	if s.Has(gold.ColMeasurement) {
		k.Measurement = r.Measurement
	}
	if !s.Has(gold.ColTS) {
		k.TS = 0
	}
	if s.Has(gold.ColLine) {
		k.Line = r.Line
	}
	if s.Has(gold.ColPlant) {
		k.Plant = r.Plant
	}
	if s.Has(gold.ColDevice) {
		k.Device = r.Device
	}
	return k
}

// Strategy is what a key already in gold gets.
type Strategy string

// Strategies.
const (
	// FirstWins skips a bronze row whose key is in gold: an insert-only
	// merge that adds files and removes none.
	FirstWins Strategy = "first_wins"
	// LatestWins replaces the gold row by a newer bronze row, rewriting
	// only the files that hold such keys.
	LatestWins Strategy = "latest_wins"
)

// ParseStrategy returns the strategy named s.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case FirstWins, LatestWins:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("mergeplan: unknown strategy %q (first_wins or latest_wins)", s)
}
