package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func testPlan(seed uint64) PlanConfig {
	return PlanConfig{
		Seed: seed, Start: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC), Rate: 1000,
		Lines: 3, DevicesPerLine: 4, Measurements: MeasurementNames(),
		Shares:    Shares{Duplicate: 0.05, Late: 0.05, TooLate: 0.02, Broken: 0.10},
		ClockSkew: 5 * time.Second, ClockDriftPPM: 100,
	}
}

func plan(t *testing.T, cfg PlanConfig, n int) []*Message {
	t.Helper()
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*Message, n)
	for i := range out {
		out[i] = p.Next()
	}
	return out
}

func TestPlanIsDeterministic(t *testing.T) {
	a, b := plan(t, testPlan(7), 5000), plan(t, testPlan(7), 5000)
	for i := range a {
		if a[i].Topic != b[i].Topic || !bytes.Equal(a[i].Payload, b[i].Payload) || a[i].Kind != b[i].Kind {
			t.Fatalf("message %d differs between two runs with seed 7:\n%s %q\n%s %q", i, a[i].Topic, a[i].Payload, b[i].Topic, b[i].Payload)
		}
	}
	c := plan(t, testPlan(8), 5000)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Payload, c[i].Payload) {
			same++
		}
	}
	if same > 50 {
		t.Errorf("seeds 7 and 8 share %d of 5000 payloads", same)
	}
}

// payloadFields is a reading decoded with encoding/json, independently of
// how the simulator writes it.
type payloadFields struct {
	SensorID    string      `json:"sensor_id"`
	Measurement string      `json:"measurement"`
	Value       float64     `json:"value"`
	Unit        string      `json:"unit"`
	TS          json.Number `json:"ts"`
}

func TestPlanMessages(t *testing.T) {
	cfg := testPlan(42)
	const n = 50000
	msgs := plan(t, cfg, n)
	counts := map[Kind]int{}
	keys := map[goldKey]int64{}
	broken := map[string]int{}
	start := cfg.Start.UnixMicro()
	for _, m := range msgs {
		counts[m.Kind]++
		if m.Kind == KindDuplicate {
			orig := msgs[m.DuplicateOf]
			if !orig.Kind.Gold() || !bytes.Equal(orig.Payload, m.Payload) || orig.Topic != m.Topic || orig.Seq >= m.Seq {
				t.Fatalf("duplicate %d does not repeat an earlier reading: %+v vs %+v", m.Seq, m, orig)
			}
			continue
		}
		if m.Kind == KindBroken {
			broken[m.Broken]++
			checkBroken(t, m)
			continue
		}
		var f payloadFields
		dec := json.NewDecoder(bytes.NewReader(m.Payload))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s %d: %v: %s", m.Kind, m.Seq, err, m.Payload)
		}
		if f.SensorID != m.SensorID || f.Measurement != m.Measurement || f.Value != m.Value || f.Unit != Models[m.Measurement].Unit ||
			f.TS.String() != FormatTS(m.TSMicros) || !strings.HasSuffix(m.Topic, "/"+m.SensorID+"/"+m.Measurement) {
			t.Fatalf("%s %d: payload %s topic %s disagrees with %+v", m.Kind, m.Seq, m.Payload, m.Topic, m)
		}
		model := Models[m.Measurement]
		if m.Value < model.Min || m.Value > model.Max || math.IsNaN(m.Value) {
			t.Fatalf("%d: %s value %v outside %v..%v", m.Seq, m.Measurement, m.Value, model.Min, model.Max)
		}
		age := time.Duration(start+m.Due.Microseconds()-m.TSMicros) * time.Microsecond
		switch m.Kind {
		case KindReading:
			if age.Abs() > 6*time.Second {
				t.Fatalf("reading %d: ts %v off the schedule (skew at most 5s)", m.Seq, age)
			}
		case KindLate:
			if age < 59*time.Minute || age > 5*24*time.Hour+time.Minute {
				t.Fatalf("late %d: %v old", m.Seq, age)
			}
		case KindTooLate:
			if age < 8*24*time.Hour-time.Minute || m.ErrorCode != "ts_window" {
				t.Fatalf("too late %d: %v old, error code %q", m.Seq, age, m.ErrorCode)
			}
		}
		if m.Kind.Gold() {
			k := goldKey{m.SensorID, m.Measurement, m.TSMicros}
			if prev, dup := keys[k]; dup {
				t.Fatalf("messages %d and %d share the gold key %+v", prev, m.Seq, k)
			}
			keys[k] = m.Seq
		}
	}
	for kind, share := range map[Kind]float64{KindDuplicate: 0.05, KindLate: 0.05, KindTooLate: 0.02, KindBroken: 0.10, KindReading: 0.78} {
		got := float64(counts[kind]) / n
		if math.Abs(got-share) > 0.01 {
			t.Errorf("%s: share %.4f, want %.2f", kind, got, share)
		}
	}
	for _, b := range BrokenKinds {
		if broken[b.Name] == 0 {
			t.Errorf("no broken payload of kind %s in %d messages", b.Name, n)
		}
	}
}

// checkBroken checks, with encoding/json, that m is broken in the one way
// its error code says.
func checkBroken(t *testing.T, m *Message) {
	t.Helper()
	var obj map[string]any
	err := json.Unmarshal(m.Payload, &obj)
	valid := json.Valid(m.Payload)
	ok := true
	switch m.ErrorCode {
	case "parse.empty":
		ok = len(m.Payload) == 0
	case "parse.invalid_utf8":
		ok = !utf8.Valid(m.Payload)
	case "parse.invalid_json":
		ok = utf8.Valid(m.Payload) && len(m.Payload) > 0 && !valid
	case "parse.not_object":
		ok = valid && err != nil
	case "parse.duplicate_key":
		ok = valid && strings.Count(string(m.Payload), `"value":`) == 2
	case "parse.missing_field":
		ok = err == nil && len(obj) == 4
	case "parse.empty_field":
		ok = err == nil && len(obj) == 5 && obj["sensor_id"] == ""
	case "parse.wrong_type":
		_, isNum := obj["value"].(float64)
		_, tsNum := obj["ts"].(float64)
		ok = err == nil && len(obj) == 5 && (!isNum || !tsNum)
	case "parse.value_not_finite":
		ok = bytes.Contains(m.Payload, []byte(`"value":1e400`))
	case "parse.ts_out_of_range":
		ok = err == nil && obj["ts"].(float64) > 253402300800
	case "unit_allowed":
		ok = err == nil && obj["unit"] != Models[m.Measurement].Unit
	case "topic_matches":
		levels := strings.Split(m.Topic, "/")
		ok = err == nil && (len(levels) != 4 || levels[2] != obj["sensor_id"])
	case "payload_size":
		ok = err == nil && len(m.Payload) > 65536
	default:
		t.Fatalf("broken %d: unexpected error code %q", m.Seq, m.ErrorCode)
	}
	if !ok {
		t.Fatalf("broken %d (%s): payload %.200q does not fit error code %s", m.Seq, m.Broken, m.Payload, m.ErrorCode)
	}
}

func TestPlanConfigRefused(t *testing.T) {
	tests := map[string]func(*PlanConfig){
		"zero rate":         func(c *PlanConfig) { c.Rate = 0 },
		"no lines":          func(c *PlanConfig) { c.Lines = 0 },
		"no devices":        func(c *PlanConfig) { c.DevicesPerLine = 0 },
		"skew beyond 30m":   func(c *PlanConfig) { c.ClockSkew = time.Hour },
		"shares above 1":    func(c *PlanConfig) { c.Shares = Shares{Duplicate: 0.6, Broken: 0.6} },
		"negative share":    func(c *PlanConfig) { c.Shares.Late = -0.1 },
		"unknown measure":   func(c *PlanConfig) { c.Measurements = []string{"colour"} },
		"no measurements":   func(c *PlanConfig) { c.Measurements = nil },
		"drift beyond 1000": func(c *PlanConfig) { c.ClockDriftPPM = 2000 },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testPlan(1)
			change(&cfg)
			if _, err := NewPlanner(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestFormatTS(t *testing.T) {
	tests := map[int64]string{
		1_625_000_000_000_000: "1625000000.000000",
		1_625_000_000_123_456: "1625000000.123456",
		-1_500_000:            "-1.500000",
	}
	for us, want := range tests {
		if got := FormatTS(us); got != want {
			t.Errorf("FormatTS(%d) = %s, want %s", us, got, want)
		}
	}
}
