package server

import (
	"encoding/json"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

func TestRowStruct(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null", nil, `null`},
		{"small long", int64(42), `42`},
		{"big long", int64(1) << 60, `"1152921504606846976"`},
		{"negative big long", -(int64(1) << 60), `"-1152921504606846976"`},
		{"double", 87.25, `87.25`},
		{"nan", math.NaN(), `"NaN"`},
		{"decimal exact", json.Number("12.50"), `12.5`},
		{"decimal too precise", json.Number("12345678901234567890.12"), `"12345678901234567890.12"`},
		{"binary", []byte("hi"), `"aGk="`},
		{"list of structs", []any{map[string]any{"key": "k", "value": []byte{1}}}, `[{"key":"k","value":"AQ=="}]`},
		{"string", "2024-01-01", `"2024-01-01"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := rowStruct(map[string]any{"c": tc.in})
			if err != nil {
				t.Fatal(err)
			}
			b, err := protojson.Marshal(st.Fields["c"])
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Fatalf("got %s, want %s", gb, wb)
			}
		})
	}
}
