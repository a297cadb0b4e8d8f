package datafile

import (
	"fmt"
	"strings"
	"time"
)

// HiveDefaultPartition is the directory value Spark and Hive use for a null partition value.
const HiveDefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// needsEscape reports whether Spark's ExternalCatalogUtils.escapePathName escapes c: control
// characters, the characters that mean something in a path or a URI, and DEL.
func needsEscape(c byte) bool {
	if c >= 0x01 && c <= 0x1F {
		return true
	}
	switch c {
	case '"', '#', '%', '\'', '*', '/', ':', '=', '?', '\\', 0x7F, '{', '[', ']', '^':
		return true
	}
	return false
}

// EscapePartitionName escapes a partition column name or value for use in a directory name the
// way Spark does (%XX for each character that needs it), so that Spark, delta-rs and Hive tools
// see the same layout.
func EscapePartitionName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnescapePartitionName reverses EscapePartitionName.
func UnescapePartitionName(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// PartitionDir returns the directory of a partition relative to the table root, without a
// trailing slash: `col=value/col2=value2`, names and values Hive-escaped, a null value ("" in
// Delta's partitionValues, or a missing key) as __HIVE_DEFAULT_PARTITION__. It is a file
// system path, not yet URI-encoded; see PathURI.
func PartitionDir(columns []string, values map[string]string) string {
	parts := make([]string, 0, len(columns))
	for _, c := range columns {
		v := values[c]
		ev := HiveDefaultPartition
		if v != "" {
			ev = EscapePartitionName(v)
		}
		parts = append(parts, EscapePartitionName(c)+"="+ev)
	}
	return strings.Join(parts, "/")
}

// Partition value serialization (Delta PROTOCOL.md, "Partition Value Serialization").
const (
	// PartitionTimestampLayout is how a timestamp partition value is written (always UTC).
	PartitionTimestampLayout = "2006-01-02 15:04:05.000000"
	// PartitionDateLayout is how a date partition value is written.
	PartitionDateLayout = "2006-01-02"
)

// FormatTimestampPartition formats t (converted to UTC) as a Delta timestamp partition value.
func FormatTimestampPartition(t time.Time) string {
	return t.UTC().Format(PartitionTimestampLayout)
}

// FormatDatePartition formats the calendar date of t (in t's location) as a Delta date
// partition value.
func FormatDatePartition(t time.Time) string {
	return t.Format(PartitionDateLayout)
}
