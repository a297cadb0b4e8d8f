package parse

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// seed is a payload of the shape the simulator and the original design send.
const seed = `{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000}`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    Reading
		extra   string
	}{
		{"seed", seed, Reading{SensorID: "press01", Measurement: "temperature", Value: 87.3, Unit: "C", TS: 1625000000_000000}, ""},
		{"fractional ts", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":1625000000.123456}`,
			Reading{SensorID: "a", Measurement: "m", Value: 1, Unit: "u", TS: 1625000000_123456}, ""},
		{"fraction past microseconds is cut", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":1625000000.1234569}`,
			Reading{SensorID: "a", Measurement: "m", Value: 1, Unit: "u", TS: 1625000000_123456}, ""},
		{"ts with exponent", `{"sensor_id":"a","measurement":"m","value":-2.5e3,"unit":"u","ts":1.6250000001E9}`,
			Reading{SensorID: "a", Measurement: "m", Value: -2500, Unit: "u", TS: 1625000000_100000}, ""},
		{"negative fractional ts floors", `{"sensor_id":"a","measurement":"m","value":0,"unit":"u","ts":-1.0000005}`,
			Reading{SensorID: "a", Measurement: "m", Unit: "u", TS: -1_000_001}, ""},
		{"white space and any order", " {\n \"ts\" : 1 ,\"unit\":\"%\",\t\"value\":55,\"measurement\":\"humidity\",\"sensor_id\":\"h1\"}\r\n",
			Reading{SensorID: "h1", Measurement: "humidity", Value: 55, Unit: "%", TS: 1_000_000}, ""},
		{"unicode and escapes", `{"sensor_id":"Pr\u00e9sse-\ud83d\ude00","measurement":"temp\"erature","value":1,"unit":"°C","ts":0}`,
			Reading{SensorID: "Présse-😀", Measurement: `temp"erature`, Value: 1, Unit: "°C"}, ""},
		{"lone surrogate becomes U+FFFD", `{"sensor_id":"\ud800x","measurement":"m","value":1,"unit":"u","ts":0}`,
			Reading{SensorID: "\uFFFDx", Measurement: "m", Value: 1, Unit: "u"}, ""},
		{"extra fields kept compact", `{"sensor_id":"a","firmware": "1.2" ,"measurement":"m","value":1,"unit":"u","ts":0,"tags":{ "x" : [1, 2, {"y": null}] },"ok":true}`,
			Reading{SensorID: "a", Measurement: "m", Value: 1, Unit: "u"}, `{"firmware":"1.2","tags":{"x":[1,2,{"y":null}]},"ok":true}`},
		{"escaped extra key kept as written", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":0,"k\u00e9y":"a b"}`,
			Reading{SensorID: "a", Measurement: "m", Value: 1, Unit: "u"}, `{"k\u00e9y":"a b"}`},
		{"tiny value underflows to zero", `{"sensor_id":"a","measurement":"m","value":1e-400,"unit":"u","ts":0}`,
			Reading{SensorID: "a", Measurement: "m", Unit: "u"}, ""},
	}
	p := NewParser()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reading
			if err := p.Parse([]byte(tt.payload), &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			extra := string(r.Extra)
			r.Extra, tt.want.Extra = nil, nil
			if !equalReading(r, tt.want) {
				t.Errorf("Parse = %+v, want %+v", r, tt.want)
			}
			if extra != tt.extra {
				t.Errorf("Extra = %s, want %s", extra, tt.extra)
			}
		})
	}
}

func equalReading(a, b Reading) bool {
	return a.SensorID == b.SensorID && a.Measurement == b.Measurement && a.Unit == b.Unit &&
		math.Float64bits(a.Value) == math.Float64bits(b.Value) && a.TS == b.TS && bytes.Equal(a.Extra, b.Extra)
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		code    string
		field   string
		detail  string // a part of the detail
	}{
		{"empty", ``, CodeEmpty, "", "empty"},
		{"white space only", "  \n", CodeInvalidJSON, "", "white space"},
		{"invalid UTF-8", "{\"sensor_id\":\"a\xff\"}", CodeInvalidUTF8, "", "offset 15"},
		{"truncated", `{"sensor_id":"press01","measurement":"temp`, CodeInvalidJSON, "", "unterminated string"},
		{"bad JSON", `{sensor_id: "a"}`, CodeInvalidJSON, "", "expected a key"},
		{"trailing garbage", seed + `x`, CodeInvalidJSON, "", "data after the object"},
		{"two objects", seed + seed, CodeInvalidJSON, "", "data after the object"},
		{"array", `[1,2]`, CodeNotObject, "", "not an object"},
		{"string", `"x"`, CodeNotObject, "", "not an object"},
		{"missing value", `{"sensor_id":"a","measurement":"m","unit":"u","ts":0}`, CodeMissingField, "value", "field value is missing"},
		{"missing several", `{"value":1}`, CodeMissingField, "sensor_id", "[sensor_id measurement unit ts]"},
		{"empty object", `{}`, CodeMissingField, "sensor_id", "missing"},
		{"empty sensor_id", `{"sensor_id":"","measurement":"m","value":1,"unit":"u","ts":0}`, CodeEmptyField, "sensor_id", `field sensor_id is empty ("")`},
		{"blank measurement", `{"sensor_id":"a","measurement":" \t","value":1,"unit":"u","ts":0}`, CodeEmptyField, "measurement", "is empty"},
		{"escaped blank sensor_id", `{"sensor_id":"\u0020","measurement":"m","value":1,"unit":"u","ts":0}`, CodeEmptyField, "sensor_id", "is empty"},
		{"empty sensor_id, then a syntax error", `{"sensor_id":"","measurement":"m",}`, CodeInvalidJSON, "", "expected a key"},
		{"empty sensor_id, missing ts", `{"sensor_id":"","measurement":"m","value":1,"unit":"u"}`, CodeEmptyField, "sensor_id", "is empty"},
		{"value as string", `{"sensor_id":"a","measurement":"m","value":"87.3","unit":"u","ts":0}`, CodeWrongType, "value", `must be a number, got string "87.3"`},
		{"NaN string", `{"sensor_id":"a","measurement":"m","value":"NaN","unit":"u","ts":0}`, CodeWrongType, "value", `got string "NaN"`},
		{"Infinity string", `{"sensor_id":"a","measurement":"m","value":"Infinity","unit":"u","ts":0}`, CodeWrongType, "value", "Infinity"},
		{"bare NaN", `{"sensor_id":"a","measurement":"m","value":NaN,"unit":"u","ts":0}`, CodeInvalidJSON, "", "expected a value"},
		{"1e400", `{"sensor_id":"a","measurement":"m","value":1e400,"unit":"u","ts":0}`, CodeValueNotFinite, "value", "1e400"},
		{"-1e400", `{"sensor_id":"a","measurement":"m","value":-1e400,"unit":"u","ts":0}`, CodeValueNotFinite, "value", "-1e400"},
		{"null value", `{"sensor_id":"a","measurement":"m","value":null,"unit":"u","ts":0}`, CodeWrongType, "value", "got null"},
		{"sensor_id number", `{"sensor_id":7,"measurement":"m","value":1,"unit":"u","ts":0}`, CodeWrongType, "sensor_id", "must be a string, got number"},
		{"unit object", `{"sensor_id":"a","measurement":"m","value":1,"unit":{"x":1},"ts":0}`, CodeWrongType, "unit", "got object"},
		{"ts string", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":"2021-06-29T00:00:00Z"}`, CodeWrongType, "ts", "must be a number, got string"},
		{"ts too large", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":1e20}`, CodeTSOutOfRange, "ts", "1e20"},
		{"ts before year 1", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":-62135596801}`, CodeTSOutOfRange, "ts", "0001"},
		{"duplicate key", `{"sensor_id":"a","measurement":"m","value":1,"value":2,"unit":"u","ts":0}`, CodeDuplicateKey, "value", "appears twice"},
		{"duplicate escaped key", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":0,"\u0074s":1}`, CodeDuplicateKey, "ts", "twice"},
		{"duplicate unknown key", `{"sensor_id":"a","measurement":"m","value":1,"unit":"u","ts":0,"x":1,"x":2}`, CodeDuplicateKey, "x", "twice"},
		{"syntax error wins over type error", `{"sensor_id":1,"measurement":"m",}`, CodeInvalidJSON, "", "expected a key"},
		{"deep nesting", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, CodeTooDeep, "", "deeper"},
		{"control character", "{\"sensor_id\":\"a\tb\"}", CodeInvalidJSON, "", "control character"},
		{"bad escape", `{"sensor_id":"a\x"}`, CodeInvalidJSON, "", "bad escape"},
		{"leading zero", `{"sensor_id":"a","measurement":"m","value":01,"unit":"u","ts":0}`, CodeInvalidJSON, "", "expected ',' or '}'"},
		{"number without digits", `{"sensor_id":"a","measurement":"m","value":1.,"unit":"u","ts":0}`, CodeInvalidJSON, "", "no digits after"},
	}
	p := NewParser()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reading
			err := p.Parse([]byte(tt.payload), &r)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %s", tt.payload, r, tt.code)
			}
			if err.Code != tt.code || err.Field != tt.field || !strings.Contains(err.Detail, tt.detail) {
				t.Errorf("Parse(%q) error = %+v, want code %s, field %q, detail containing %q", tt.payload, err, tt.code, tt.field, tt.detail)
			}
		})
	}
}

func TestEpochMicros(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"1625000000", 1625000000_000000, true},
		{"1625000000.5", 1625000000_500000, true},
		{"1625000000.000001", 1625000000_000001, true},
		{"1625000000.0000019", 1625000000_000001, true},
		{"-0.0000001", -1, true},
		{"-1.5", -1_500_000, true},
		{"1e3", 1_000_000_000, true},
		{"1E-6", 1, true},
		{"1e-7", 0, true},
		{"0.000000e999999999999", 0, true},
		{"16250000000000000000000e-13", 1625000000_000000, true},
		{"253402300799.999999", MaxMicros, true},
		{"253402300800", 0, false},
		{"-62135596800", MinMicros, true},
		{"-62135596800.000001", 0, false},
		{"9223372036854.775807", 0, false},
		{"1e400", 0, false},
		{"1e-400", 0, true},
	}
	for _, tt := range tests {
		got, ok := epochMicros([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("epochMicros(%s) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTopicPattern(t *testing.T) {
	tests := []struct {
		pattern, plant, topic string
		ok                    bool
		want                  Topic
	}{
		{DefaultTopicPattern, "hamburg", "plant/l1/press01/temperature", true,
			Topic{Plant: "hamburg", Line: "l1", Device: "press01", Measurement: "temperature", HasLine: true, HasDevice: true, HasMeasurement: true}},
		{DefaultTopicPattern, "hamburg", "plant/l1/press01", false, Topic{Plant: "hamburg"}},
		{DefaultTopicPattern, "hamburg", "plant/l1/press01/temperature/x", false, Topic{Plant: "hamburg"}},
		{DefaultTopicPattern, "hamburg", "factory/l1/press01/temperature", false, Topic{Plant: "hamburg"}},
		{"{plant}/+/{device}", "default", "berlin/anything/d9", true, Topic{Plant: "berlin", Device: "d9", HasDevice: true}},
		{"site/{plant}/{line}/{device}/{measurement}", "", "site/p/l//m", true,
			Topic{Plant: "p", Line: "l", Measurement: "m", HasLine: true, HasDevice: true, HasMeasurement: true}},
	}
	for _, tt := range tests {
		tp, err := NewTopicPattern(tt.pattern, tt.plant)
		if err != nil {
			t.Fatalf("NewTopicPattern(%q): %v", tt.pattern, err)
		}
		var got Topic
		if ok := tp.Match(tt.topic, &got); ok != tt.ok || got != tt.want {
			t.Errorf("%q.Match(%q) = %+v, %v, want %+v, %v", tt.pattern, tt.topic, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTopicPatternRefused(t *testing.T) {
	for _, pattern := range []string{"", "plant/{zone}/{device}", "plant/{line}/{line}", "plant/#", "plant/x{line}"} {
		if _, err := NewTopicPattern(pattern, "p"); err == nil {
			t.Errorf("NewTopicPattern(%q) accepted", pattern)
		}
	}
}

func TestParseAllocations(t *testing.T) {
	p := NewParser()
	payload := []byte(seed)
	var r Reading
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Parse(payload, &r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse of a seen sensor allocates %.1f times, want 0", allocs)
	}
}

// encodeReading writes r back as a payload, extra fields included, ts as
// an exact decimal (microseconds with an exponent).
func encodeReading(r *Reading) []byte {
	b := []byte(`{"sensor_id":`)
	b = appendString(b, r.SensorID)
	b = append(b, `,"measurement":`...)
	b = appendString(b, r.Measurement)
	b = append(b, `,"value":`...)
	b = strconv.AppendFloat(b, r.Value, 'g', -1, 64)
	b = append(b, `,"unit":`...)
	b = appendString(b, r.Unit)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	b = append(b, "e-6"...)
	if len(r.Extra) > 0 {
		b = append(b, ',')
		b = append(b, r.Extra[1:len(r.Extra)-1]...)
	}
	return append(b, '}')
}

func appendString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return append(b, q...)
}

// FuzzParse checks that Parse never panics, that what it accepts is JSON
// that encoding/json decodes to the same values, and that a parsed reading
// written back parses to the same reading.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		seed,
		`{"sensor_id":"a","measurement":"m","value":-1.5e-3,"unit":"u","ts":1625000000.123456,"x":{"y":[1,"\u00e9"]}}`,
		`{"sensor_id":"a\"b","measurement":"m","value":1e400,"unit":"u","ts":-0.5}`,
		`{"sensor_id":"a","measurement":"m","value":"NaN","unit":"u","ts":0,"ts":1}`,
		`[]`, ``, "\xff", `{"a":[[[[[]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		p := NewParser()
		var r Reading
		perr := p.Parse(payload, &r)
		if perr != nil {
			if perr.Code == CodeInvalidJSON && json.Valid(payload) {
				t.Fatalf("Parse(%q) = %v, but encoding/json finds it valid", payload, perr)
			}
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("Parse(%q) accepted what encoding/json finds invalid", payload)
		}
		var std struct {
			SensorID    string  `json:"sensor_id"`
			Measurement string  `json:"measurement"`
			Value       float64 `json:"value"`
			Unit        string  `json:"unit"`
		}
		if err := json.Unmarshal(payload, &std); err != nil {
			t.Fatalf("encoding/json cannot decode accepted %q: %v", payload, err)
		}
		if std.SensorID != r.SensorID || std.Measurement != r.Measurement || std.Unit != r.Unit || std.Value != r.Value {
			t.Fatalf("Parse(%q) = %+v, encoding/json decodes %+v", payload, r, std)
		}
		if blank(r.SensorID) || blank(r.Measurement) {
			t.Fatalf("Parse(%q) = %+v: a blank sensor_id or measurement accepted", payload, r)
		}
		if math.IsInf(r.Value, 0) || math.IsNaN(r.Value) || r.TS < MinMicros || r.TS > MaxMicros {
			t.Fatalf("Parse(%q) = %+v: out of range", payload, r)
		}
		if r.Extra != nil && !json.Valid(r.Extra) {
			t.Fatalf("Parse(%q) Extra %q is not JSON", payload, r.Extra)
		}
		first := r
		first.Extra = bytes.Clone(r.Extra)
		again := encodeReading(&first)
		var r2 Reading
		if err := NewParser().Parse(again, &r2); err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", again, err)
		}
		if r2.SensorID != first.SensorID || r2.Measurement != first.Measurement || r2.Unit != first.Unit ||
			math.Float64bits(r2.Value) != math.Float64bits(first.Value) || r2.TS != first.TS || !bytes.Equal(r2.Extra, first.Extra) {
			t.Fatalf("round trip of %q: %+v, then %+v", payload, first, r2)
		}
	})
}
