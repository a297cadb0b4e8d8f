package rules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
)

const defaultFile = "../../rules.default.yaml"

// ingest is the ingest_ts of the test readings.
var ingest = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMicro()

func input(r parse.Reading) *Input {
	topic := "plant/l1/" + r.SensorID + "/" + r.Measurement
	return &Input{
		Reading:   &r,
		Topic:     &parse.Topic{Plant: "p", Line: "l1", Device: r.SensorID, Measurement: r.Measurement, HasLine: true, HasDevice: true, HasMeasurement: true},
		TopicOK:   true,
		MQTTTopic: topic,
		Pattern:   parse.DefaultTopicPattern,
		IngestTS:  ingest,
	}
}

func good() parse.Reading {
	return parse.Reading{SensorID: "press01", Measurement: "temperature", Value: 87.3, Unit: "C", TS: ingest - 5_000_000}
}

func TestDefaultFileMatchesDefaults(t *testing.T) {
	data, err := os.ReadFile(defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Builtin, DefaultConfig().Builtin) {
		t.Errorf("rules.default.yaml's built-in settings differ from DefaultConfig:\nfile:    %+v\ndefault: %+v", cfg.Builtin, DefaultConfig().Builtin)
	}
	s, err := Load(defaultFile)
	if err != nil {
		t.Fatalf("Load(%s): %v", defaultFile, err)
	}
	if len(s.custom) != len(cfg.Custom) || len(cfg.Custom) == 0 {
		t.Errorf("custom rules compiled: %d, in the file: %d", len(s.custom), len(cfg.Custom))
	}
	for _, v := range Variables {
		if !strings.Contains(string(data), v.Name) {
			t.Errorf("rules.default.yaml does not document variable %s", v.Name)
		}
	}
}

// dropBy is the verdict of a validate-stage drop by rule, the zero Verdict
// (keep) for "".
func dropBy(rule string) Verdict {
	if rule == "" {
		return Verdict{}
	}
	return Verdict{Action: Drop, Rule: rule, Code: rule, Stage: StageValidate}
}

func TestValidate(t *testing.T) {
	s, err := Load(defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*parse.Reading)) parse.Reading {
		r := good()
		f(&r)
		return r
	}
	tests := []struct {
		name   string
		in     *Input
		code   string
		detail string
	}{
		{"good", input(good()), "", ""},
		{"seven days old", input(mod(func(r *parse.Reading) { r.TS = ingest - 7*24*3600_000_000 })), "", ""},
		{"too old", input(mod(func(r *parse.Reading) { r.TS = ingest - 7*24*3600_000_000 - 1 })), RuleTSWindow, "before ingest_ts 2026-12-01T12:00:00Z (limit 168h0m0s)"},
		{"an hour ahead", input(mod(func(r *parse.Reading) { r.TS = ingest + 3600_000_000 })), "", ""},
		{"too far ahead", input(mod(func(r *parse.Reading) { r.TS = ingest + 3600_000_001 })), RuleTSWindow, "after ingest_ts"},
		{"year 9999", input(mod(func(r *parse.Reading) { r.TS = parse.MaxMicros })), RuleTSWindow, "9999-12-31T23:59:59.999999Z"},
		{"unit not allowed", input(mod(func(r *parse.Reading) { r.Unit = "bar" })), RuleUnitAllowed, `unit "bar" is not allowed for measurement "temperature"`},
		{"unknown measurement allowed", input(mod(func(r *parse.Reading) { r.Measurement, r.Unit = "torque", "Nm" })), "", ""},
		{"device differs", func() *Input { in := input(good()); in.Topic.Device = "press02"; return in }(), RuleTopicMatches, `names device "press02" but sensor_id is "press01"`},
		{"measurement differs", func() *Input { in := input(good()); in.Topic.Measurement = "pressure"; return in }(), RuleTopicMatches, `names measurement "pressure"`},
		{"topic does not fit", func() *Input { in := input(good()); in.TopicOK = false; in.MQTTTopic = "x/y"; return in }(), RuleTopicMatches, `topic "x/y" does not fit the pattern`},
		{"below absolute zero", input(mod(func(r *parse.Reading) { r.Value = -300 })), "temperature_physical", "is false"},
		{"humidity above 100", input(mod(func(r *parse.Reading) { r.Measurement, r.Unit, r.Value = "humidity", "%", 100.5 })), "humidity_percent", "is false"},
		{"warn rule keeps", input(mod(func(r *parse.Reading) { r.Value = 500 })), "", ""},
	}
	e := s.NewEvaluator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := e.Validate(tt.in)
			detail := v.Detail
			v.Detail = ""
			if want := dropBy(tt.code); v != want || !strings.Contains(detail, tt.detail) {
				t.Errorf("Validate = %+v (detail %q), want %+v, detail containing %q", v, detail, want, tt.detail)
			}
		})
	}
	e.Flush()
	counts := map[string]RuleStats{}
	for _, st := range s.Snapshot() {
		counts[st.Name] = st
	}
	if got := counts["temperature_range_celsius"]; got.Failed != 1 || got.Action != Warn {
		t.Errorf("temperature_range_celsius counts %+v, want 1 failure (warn)", got)
	}
	if got := counts[RuleTSWindow]; got.Failed != 3 || got.Passed != int64(len(tests)-3) {
		t.Errorf("ts_window counts %+v, want 3 failed and %d passed", got, len(tests)-3)
	}
	if got := counts[RuleJSONParses]; got.Passed != int64(len(tests)) || got.Stage != StageParse {
		t.Errorf("json_parses counts %+v, want %d passed in stage parse", got, len(tests))
	}
}

func TestParseStage(t *testing.T) {
	s, err := Parse([]byte("builtin:\n  value_finite: {action: fail}\n  payload_size: {action: drop, max_bytes: 100}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.NewEvaluator()
	tests := []struct {
		name string
		v    Verdict
		want Verdict
	}{
		{"within the size", e.CheckSize(100, false, ""), Verdict{}},
		{"too large", e.CheckSize(101, false, ""), Verdict{Action: Drop, Rule: RulePayloadSize, Code: RulePayloadSize, Stage: StageParse, Detail: "the payload has 101 bytes, more than the limit of 100"}},
		{"oversized", e.CheckSize(50, true, "2000000"), Verdict{Action: Drop, Rule: RulePayloadSize, Code: CodeOversized, Stage: StageParse, Detail: "the payload of 2000000 bytes was cut to 50 bytes by the bridge (oversized_bytes header)"}},
		{"bad JSON", e.ParseFailed(&parse.Error{Code: parse.CodeInvalidJSON, Detail: "d"}), Verdict{Action: Drop, Rule: RuleJSONParses, Code: parse.CodeInvalidJSON, Stage: StageParse, Detail: "d"}},
		{"wrong type", e.ParseFailed(&parse.Error{Code: parse.CodeWrongType, Detail: "d"}), Verdict{Action: Drop, Rule: RuleRequiredFields, Code: parse.CodeWrongType, Stage: StageParse, Detail: "d"}},
		{"not finite fails", e.ParseFailed(&parse.Error{Code: parse.CodeValueNotFinite, Detail: "d"}), Verdict{Action: Fail, Rule: RuleValueFinite, Code: parse.CodeValueNotFinite, Stage: StageParse, Detail: "d"}},
	}
	for _, tt := range tests {
		if tt.v != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, tt.v, tt.want)
		}
	}
}

func TestPartialBuiltins(t *testing.T) {
	s, err := Parse([]byte("builtin:\n  ts_window: {max_future: 0s}\n  unit_allowed: {action: warn}\n  payload_size: {max_bytes: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := s.Config().Builtin
	if b.TSWindow.Action != Drop || time.Duration(*b.TSWindow.MaxAge) != DefaultMaxAge || *b.TSWindow.MaxFuture != 0 {
		t.Errorf("ts_window %+v (max_age %v, max_future %v), want drop, the default max_age and max_future 0", b.TSWindow, *b.TSWindow.MaxAge, *b.TSWindow.MaxFuture)
	}
	if b.UnitAllowed.Action != Warn || !reflect.DeepEqual(b.UnitAllowed.Units, DefaultUnits()) || b.UnitAllowed.UnknownMeasurement != "allow" {
		t.Errorf("unit_allowed %+v, want warn with the default table", b.UnitAllowed)
	}
	if b.PayloadSize.Action != Drop || b.PayloadSize.MaxBytes != 10 {
		t.Errorf("payload_size %+v, want drop at 10 bytes", b.PayloadSize)
	}
	in := input(good())
	in.Reading.TS = in.IngestTS + 1
	if v := s.NewEvaluator().Validate(in); v.Rule != RuleTSWindow {
		t.Errorf("a reading 1 µs ahead with max_future 0s: %+v, want dropped by ts_window", v)
	}
}

func TestRefusedAtLoad(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"syntax", "custom: [", "invalid rules"},
		{"unknown key", "builtin:\n  ts_window: {action: drop, max_age: 1h, maxfuture: 1h}\n", "field maxfuture not found"},
		{"bad action", "builtin:\n  ts_window: {action: maybe}\n", `rule ts_window: action "maybe"`},
		{"warn on parse rule", "builtin:\n  json_parses: {action: warn}\n", "rule json_parses: action \"warn\" is not one of [drop fail]"},
		{"bad duration", "builtin:\n  ts_window: {action: drop, max_age: 7d}\n", `unknown unit "d"`},
		{"custom does not compile", "custom:\n  - {name: broken, action: drop, expr: 'value > '}\n", "custom rule broken: ERROR"},
		{"custom type error", "custom:\n  - {name: int_compare, action: drop, expr: 'value > 1'}\n", "custom rule int_compare: ERROR"},
		{"custom unknown variable", "custom:\n  - {name: typo, action: drop, expr: 'valu > 1.0'}\n", "undeclared reference to 'valu'"},
		{"custom not bool", "custom:\n  - {name: number, action: drop, expr: 'value + 1.0'}\n", "custom rule number: the expression is of type double, not bool"},
		{"custom bad name", "custom:\n  - {name: Bad-Name, action: drop, expr: 'true'}\n", `name "Bad-Name" must match`},
		{"custom built-in name", "custom:\n  - {name: ts_window, action: drop, expr: 'true'}\n", "custom rule ts_window: the name is a built-in rule's"},
		{"custom twice", "custom:\n  - {name: a, action: drop, expr: 'true'}\n  - {name: a, action: warn, expr: 'true'}\n", "custom rule a: the name appears twice"},
		{"custom no action", "custom:\n  - {name: a, expr: 'true'}\n", `custom rule a: action ""`},
		{"two documents", "custom: []\n---\ncustom: []\n", "more than one document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file))
			if err == nil || !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want ErrInvalidRules containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadReplacesOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// JSON is YAML too.
	write(`{"custom":[{"name":"positive","action":"drop","expr":"value > 0.0"}]}`)
	first, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	write(`{"custom":[{"name":"positive","action":"drop","expr":"value > 0"}]}`)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "custom rule positive") {
		t.Fatalf("Load of a rule comparing double with int = %v, want an error naming the rule", err)
	}
	write(`{"custom":[{"name":"positive","action":"drop","expr":"value >= 0.0"}]}`)
	second, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if second.Generation() <= first.Generation() || second.Digest() == first.Digest() {
		t.Errorf("generations %d then %d, digests %s then %s: want both to change", first.Generation(), second.Generation(), first.Digest(), second.Digest())
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestCustomVariables(t *testing.T) {
	file := `custom:
  - {name: all_vars, action: drop, expr: 'sensor_id == "press01" && measurement == "temperature" && unit == "C" && value == 87.3 && plant == "p" && line == "l1" && device == "press01" && mqtt_topic == "plant/l1/press01/temperature" && payload_size == 90 && ingest_ts - ts == duration("5s") && ts.getFullYear() == 2026 && extra.firmware == "1.2" && extra.calibrated'}
  - {name: no_extra_key, action: warn, expr: 'extra.missing == 1.0'}
  - {name: string_ext, action: drop, expr: 'sensor_id.upperAscii().startsWith("PRESS")'}
`
	s, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	in := input(good())
	in.PayloadSize = 90
	in.Reading.Extra = []byte(`{"firmware":"1.2","calibrated":true}`)
	e := s.NewEvaluator()
	if v := e.Validate(in); v.Action != "" {
		t.Fatalf("Validate = %+v, want kept", v)
	}
	e.Flush()
	for _, st := range s.Snapshot() {
		want := [2]int64{1, 0}
		switch st.Name {
		case "no_extra_key":
			want = [2]int64{0, 1}
		case RulePayloadSize:
			want = [2]int64{0, 0} // checked by CheckSize, not called here
		}
		if got := [2]int64{st.Passed, st.Failed}; got != want {
			t.Errorf("rule %s: passed, failed = %v, want %v", st.Name, got, want)
		}
	}
}

func TestSetSafeForConcurrentUse(t *testing.T) {
	s, err := Load(defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			e := s.NewEvaluator()
			for range 1000 {
				e.CheckSize(100, false, "")
				e.Validate(input(good()))
			}
			e.Flush()
		})
	}
	wg.Wait()
	for _, st := range s.Snapshot() {
		if st.Passed != 4000 || st.Failed != 0 {
			t.Errorf("rule %s: %d passed, %d failed, want 4000 and 0", st.Name, st.Passed, st.Failed)
		}
	}
}

// TestReusedStringMemory checks that a string whose bytes are overwritten
// between readings (a pooled buffer) is seen with its new contents.
func TestReusedStringMemory(t *testing.T) {
	s, err := Parse([]byte("custom:\n  - {name: a1_only, action: drop, expr: 'sensor_id == \"a1\"'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := s.NewEvaluator()
	buf := []byte("a1")
	in := input(good())
	in.Reading.SensorID = unsafe.String(&buf[0], len(buf))
	in.Topic.Device = in.Reading.SensorID
	if v := e.Validate(in); v.Action != "" {
		t.Fatalf("sensor a1: %+v, want kept", v)
	}
	copy(buf, "b2")
	if v := e.Validate(in); v.Rule != "a1_only" {
		t.Fatalf("sensor b2 in the same memory: %+v, want dropped by a1_only", v)
	}
}
