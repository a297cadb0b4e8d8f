package catalog

import (
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/services/catalog/internal/maintenance"
)

// Floors of the catalog's own table properties: values below them would
// make maintenance spin (a vacuum listing every file each nanosecond) or
// rewrite the same files over and over.
const (
	// minVacuumInterval is the shortest plantlake.autoVacuum.interval other
	// than 0 (never).
	minVacuumInterval = time.Minute
	// minOptimizeMinFiles is the smallest plantlake.autoOptimize.minFiles
	// other than 0 (off): compacting one file rewrites it for nothing.
	minOptimizeMinFiles = 2
	// minOptimizeTargetSize is the smallest plantlake.autoOptimize.targetFileSize.
	minOptimizeTargetSize = 1 << 20
)

// catalogProperties are the plantlake.* properties the catalog reads.
var catalogProperties = []string{
	maintenance.PropOptimizeMinFiles, maintenance.PropOptimizeTargetSize, maintenance.PropVacuumInterval,
	maintenance.PropOptimizeSortBy,
}

// checkProperties checks a table's properties, at CreateTable and on every
// metadata change: the delta.* ones the Delta library knows
// (delta.CheckConfiguration), the catalog's plantlake.* ones (unknown
// plantlake.* names are refused: they are typos), and the floors, which the
// error states: delta.deletedFileRetentionDuration not below
// --min-vacuum-retention (minRetention), plantlake.autoVacuum.interval 0 or
// at least a minute, plantlake.autoOptimize.minFiles 0 or at least 2,
// plantlake.autoOptimize.targetFileSize at least 1 MiB. field is the
// request's name of the property map ("properties").
func checkProperties(props map[string]string, minRetention time.Duration, field string) error {
	if err := delta.CheckConfiguration(props); err != nil {
		var pe *delta.PropertyError
		if errors.As(err, &pe) {
			return badField(field+"["+strconv.Quote(pe.Key)+"]", "%s", strings.TrimPrefix(pe.Error(), "delta: "))
		}
		return badField(field, "%v", err)
	}
	bad := func(key, format string, args ...any) error {
		return badField(field+"["+strconv.Quote(key)+"]", format, args...)
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		v := props[k]
		switch {
		case k == delta.PropDeletedFileRetention:
			d, err := delta.ParseInterval(v)
			if err == nil && d < minRetention {
				return bad(k, "%q is below the catalog's floor of %v (--min-vacuum-retention): vacuum could delete the files of commits in flight", v, minRetention)
			}
		case k == maintenance.PropVacuumInterval:
			d, err := maintenance.ParseInterval(v)
			switch {
			case err != nil:
				return bad(k, "%q: %v (e.g. \"interval 1 hour\", \"1h\", or 0 for never)", v, err)
			case d != 0 && d < minVacuumInterval:
				return bad(k, "%q is below the floor of %v (0 turns automatic vacuum off)", v, minVacuumInterval)
			}
		case k == maintenance.PropOptimizeMinFiles:
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case err != nil || n < 0:
				return bad(k, "%q: want an integer >= 0", v)
			case n != 0 && n < minOptimizeMinFiles:
				return bad(k, "%q is below the floor of %d (0 turns automatic compaction off)", v, minOptimizeMinFiles)
			}
		case k == maintenance.PropOptimizeTargetSize:
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case err != nil:
				return bad(k, "%q: want a size in bytes", v)
			case n < minOptimizeTargetSize:
				return bad(k, "%q is below the floor of %d bytes", v, minOptimizeTargetSize)
			}
		case k == maintenance.PropOptimizeSortBy:
			// The names are checked against the schema when a compaction sorts.
			if slices.Contains(sortColumns(v), "") || sortColumns(v) == nil {
				return bad(k, "%q: want column names, comma-separated", v)
			}
		case strings.HasPrefix(k, "plantlake."):
			return bad(k, "unknown plantlake property; the catalog knows %s", strings.Join(catalogProperties, ", "))
		}
	}
	// Whatever passed above, the maintenance policy must read it as well.
	if _, err := maintenance.PolicyFrom(props); err != nil {
		return badField(field, "%v", err)
	}
	return nil
}
