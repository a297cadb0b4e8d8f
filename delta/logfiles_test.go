package delta

import (
	"math"
	"testing"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"00000000000000000000", 0, true},
		{"00000000000000009990", 9990, true},
		{"09223372036854775807", math.MaxInt64, true},
		{"09223372036854775808", 0, false},
		{"99999999999999999999", 0, false},
		{"0000000000000000000a", 0, false},
		{"-0000000000000000001", 0, false},
		{"0000000000000000001", 0, false},
		{"", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
