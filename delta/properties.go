package delta

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrBadProperty is wrapped by *PropertyError.
var ErrBadProperty = errors.New("delta: bad table property")

// PropertyError is a table property whose value the library refuses.
type PropertyError struct {
	// Key is the property, e.g. "delta.appendOnly".
	Key string
	// Value is the refused value.
	Value string
	// Reason says what a valid value looks like.
	Reason string
}

// Error names the property, its value and what is wrong.
func (e *PropertyError) Error() string {
	return fmt.Sprintf("delta: table property %s=%q: %s", e.Key, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrBadProperty) true.
func (e *PropertyError) Is(target error) bool { return target == ErrBadProperty }

// More table properties this library knows (the ones it acts on are next to
// Snapshot).
const (
	PropEnableChangeDataFeed     = "delta.enableChangeDataFeed"
	PropCheckpointStatsAsJSON    = "delta.checkpoint.writeStatsAsJson"
	PropCheckpointStatsAsStruct  = "delta.checkpoint.writeStatsAsStruct"
	PropEnableExpiredLogCleanup  = "delta.enableExpiredLogCleanup"
	PropEnableDeletionVectors    = "delta.enableDeletionVectors"
	PropMinReaderVersion         = "delta.minReaderVersion"
	PropMinWriterVersion         = "delta.minWriterVersion"
	PropSetTransactionRetention  = "delta.setTransactionRetentionDuration"
	PropCheckpointRetention      = "delta.checkpointRetentionDuration"
	PropDataSkippingNumIndexCols = "delta.dataSkippingNumIndexedCols"
)

// propertyKind says how a known delta.* property's value is parsed.
type propertyKind int

const (
	propBool propertyKind = iota
	propInterval
	propPositiveInt
	propNonNegativeInt
)

var knownProperties = map[string]propertyKind{
	PropAppendOnly:               propBool,
	PropEnableInCommitTimes:      propBool,
	PropEnableChangeDataFeed:     propBool,
	PropCheckpointStatsAsJSON:    propBool,
	PropCheckpointStatsAsStruct:  propBool,
	PropEnableExpiredLogCleanup:  propBool,
	PropEnableDeletionVectors:    propBool,
	PropLogRetention:             propInterval,
	PropDeletedFileRetention:     propInterval,
	PropSetTransactionRetention:  propInterval,
	PropCheckpointRetention:      propInterval,
	PropCheckpointInterval:       propPositiveInt,
	PropICTEnablementVersion:     propNonNegativeInt,
	PropICTEnablementTimeStmp:    propNonNegativeInt,
	PropMinReaderVersion:         propPositiveInt,
	PropMinWriterVersion:         propPositiveInt,
	PropDataSkippingNumIndexCols: propNonNegativeInt,
}

// CheckConfiguration checks the delta.* table properties this library
// knows: booleans are "true" or "false" (any case), intervals Delta's
// "interval <n> <unit>" (n >= 0; units week to microsecond, several pairs
// allowed), counts decimal integers (delta.checkpointInterval >= 1,
// delta.minReaderVersion 1 to 3, delta.minWriterVersion 1 to 7,
// delta.dataSkippingNumIndexedCols >= -1), delta.columnMapping.mode "none"
// (column mapping is not supported). Unknown keys, delta.* ones included,
// pass. The first bad property, in key order, is a *PropertyError.
func CheckConfiguration(conf map[string]string) error {
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := checkProperty(k, conf[k]); err != nil {
			return err
		}
	}
	return nil
}

func checkProperty(k, v string) error {
	bad := func(format string, args ...any) error {
		return &PropertyError{Key: k, Value: v, Reason: fmt.Sprintf(format, args...)}
	}
	if k == PropColumnMappingMode {
		if v != "none" {
			return bad("column mapping is not supported; only \"none\"")
		}
		return nil
	}
	kind, ok := knownProperties[k]
	if !ok {
		return nil
	}
	switch kind {
	case propBool:
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return bad("want true or false")
		}
	case propInterval:
		d, err := ParseInterval(v)
		if err != nil || d < 0 {
			return bad("want Delta's interval syntax, e.g. \"interval 7 days\" (units week, day, hour, minute, second, millisecond, microsecond)")
		}
	case propPositiveInt, propNonNegativeInt:
		n, err := strconv.ParseInt(v, 10, 64)
		lo := int64(1)
		if kind == propNonNegativeInt {
			lo = 0
		}
		if k == PropDataSkippingNumIndexCols {
			lo = -1
		}
		if err != nil || n < lo {
			return bad("want an integer >= %d", lo)
		}
		switch {
		case k == PropMinReaderVersion && n > 3:
			return bad("reader versions are 1 to 3")
		case k == PropMinWriterVersion && n > 7:
			return bad("writer versions are 1 to 7")
		}
	}
	return nil
}
