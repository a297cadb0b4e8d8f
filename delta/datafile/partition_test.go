package datafile

import (
	"testing"

	"github.com/plantlake/plantlake/delta"
)

func TestEscapePartitionName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2024-01-02", "2024-01-02"},
		{"a b", "a b"},
		{"a/b", "a%2Fb"},
		{"x=y:z", "x%3Dy%3Az"},
		{"100%", "100%25"},
		{"2021-09-08 11:11:11", "2021-09-08 11%3A11%3A11"},
		{"{[^]}", "%7B%5B%5E%5D}"},
		{"tab\there", "tab%09here"},
		{"ünï", "ünï"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := EscapePartitionName(tt.in); got != tt.want {
				t.Errorf("EscapePartitionName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if back := UnescapePartitionName(EscapePartitionName(tt.in)); back != tt.in {
				t.Errorf("round trip of %q gave %q", tt.in, back)
			}
		})
	}
}

func TestPartitionPath(t *testing.T) {
	tests := []struct {
		name    string
		cols    []string
		values  map[string]string
		wantDir string
		wantURI string
	}{
		{"date", []string{"ingest_date"}, map[string]string{"ingest_date": "2024-05-06"}, "ingest_date=2024-05-06", "ingest_date=2024-05-06"},
		{"null", []string{"p"}, map[string]string{"p": ""}, "p=__HIVE_DEFAULT_PARTITION__", "p=__HIVE_DEFAULT_PARTITION__"},
		{"missing is null", []string{"p"}, map[string]string{}, "p=__HIVE_DEFAULT_PARTITION__", "p=__HIVE_DEFAULT_PARTITION__"},
		{"timestamp", []string{"ts"}, map[string]string{"ts": "2021-09-08 11:11:11.000000"}, "ts=2021-09-08 11%3A11%3A11.000000", "ts=2021-09-08%2011%253A11%253A11.000000"},
		{"two", []string{"a", "b"}, map[string]string{"a": "x/y", "b": "1"}, "a=x%2Fy/b=1", "a=x%252Fy/b=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := PartitionDir(tt.cols, tt.values)
			if dir != tt.wantDir {
				t.Errorf("PartitionDir = %q, want %q", dir, tt.wantDir)
			}
			uri := delta.EncodePath(dir)
			if uri != tt.wantURI {
				t.Errorf("PathURI = %q, want %q", uri, tt.wantURI)
			}
			if back := delta.CanonicalPath(uri, ""); back != dir {
				t.Errorf("CanonicalPath(%q) = %q, want %q", uri, back, dir)
			}
		})
	}
}

func TestTruncateMax(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
		ok   bool
	}{
		{"short", "abc", 5, "abc", true},
		{"cut", "abcdef", 3, "abd", true},
		{"carry past max rune", "ab\U0010FFFFz", 3, "ac", true},
		{"all max", "\U0010FFFF\U0010FFFF\U0010FFFF", 2, "", false},
		{"surrogate gap", "a\uD7FFzz", 2, "a\uE000", true},
		{"invalid utf8", "ab\xffcd", 2, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := truncateMax(tt.in, tt.n)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("truncateMax(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, got, ok, tt.want, tt.ok)
			}
			if ok && got < tt.in {
				t.Fatalf("max %q is below the value %q", got, tt.in)
			}
		})
	}
}
