package derive

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/derived.golden.json")

// ingestTS is 100 s after the seed's ts.
const ingestTS = 1625000100_000000

const (
	topic = "plant/l1/press01/temperature"
	seed  = `{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000}`
)

type corpusCase struct {
	name    string
	key     []byte
	payload []byte
	headers []Header
	outcome Outcome
	code    string // error_code of a dead letter
	stage   string
}

func payload(s string) []byte { return []byte(s) }

func reading(sensor, measurement, value, unit, ts string) []byte {
	return []byte(`{"sensor_id":"` + sensor + `","measurement":"` + measurement + `","value":` + value + `,"unit":"` + unit + `","ts":` + ts + `}`)
}

// corpus is the readings of TestDerive: valid ones, QoS 1 duplicates and
// broken ones of every kind DESIGN.md section 8 and issue 12 list.
var corpus = []corpusCase{
	{name: "valid", key: []byte(topic), payload: payload(seed), outcome: ToBronze},
	{name: "QoS 1 duplicate", key: []byte(topic), payload: payload(seed), outcome: ToBronze},
	{name: "fractional ts", key: []byte(topic), payload: reading("press01", "temperature", "87.25", "C", "1625000000.123456"), outcome: ToBronze},
	{name: "extra fields", key: []byte(topic), payload: payload(`{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000,"firmware":"1.2", "calibrated" : true}`), outcome: ToBronze},
	{name: "unicode sensor", key: []byte("plant/l2/Présse-😀/humidity"), payload: reading("Présse-😀", "humidity", "45", "%", "1625000000"), outcome: ToBronze},
	{name: "traceparent and bridge headers", key: []byte(topic), payload: payload(seed), outcome: ToBronze,
		headers: []Header{{HeaderMQTTTopic, []byte(topic)}, {HeaderBridgeTS, []byte("1625000099000")}, {HeaderTraceparent, []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}},
	{name: "topic from the header", headers: []Header{{HeaderMQTTTopic, []byte(topic)}}, payload: payload(seed), outcome: ToBronze},
	{name: "warn rule keeps", key: []byte(topic), payload: reading("press01", "temperature", "450", "C", "1625000000"), outcome: ToBronze},

	{name: "empty", key: []byte(topic), payload: []byte{}, outcome: ToDeadLetters, code: parse.CodeEmpty, stage: rules.StageParse},
	{name: "null payload", key: []byte(topic), payload: nil, outcome: ToDeadLetters, code: parse.CodeEmpty, stage: rules.StageParse},
	{name: "bad JSON", key: []byte(topic), payload: payload(`{"sensor_id":"press01",`), outcome: ToDeadLetters, code: parse.CodeInvalidJSON, stage: rules.StageParse},
	{name: "not an object", key: []byte(topic), payload: payload(`[87.3]`), outcome: ToDeadLetters, code: parse.CodeNotObject, stage: rules.StageParse},
	{name: "trailing garbage", key: []byte(topic), payload: payload(seed + "}"), outcome: ToDeadLetters, code: parse.CodeInvalidJSON, stage: rules.StageParse},
	{name: "invalid UTF-8", key: []byte(topic), payload: []byte("{\"sensor_id\":\"press\xc3\x28\"}"), outcome: ToDeadLetters, code: parse.CodeInvalidUTF8, stage: rules.StageParse},
	{name: "duplicate key", key: []byte(topic), payload: payload(`{"sensor_id":"press01","measurement":"temperature","value":87.3,"value":1,"unit":"C","ts":1625000000}`), outcome: ToDeadLetters, code: parse.CodeDuplicateKey, stage: rules.StageParse},
	{name: "missing field", key: []byte(topic), payload: payload(`{"sensor_id":"press01","measurement":"temperature","value":87.3,"ts":1625000000}`), outcome: ToDeadLetters, code: parse.CodeMissingField, stage: rules.StageParse},
	{name: "mistyped value", key: []byte(topic), payload: reading("press01", "temperature", `"87.3"`, "C", "1625000000"), outcome: ToDeadLetters, code: parse.CodeWrongType, stage: rules.StageParse},
	{name: "NaN string", key: []byte(topic), payload: reading("press01", "temperature", `"NaN"`, "C", "1625000000"), outcome: ToDeadLetters, code: parse.CodeWrongType, stage: rules.StageParse},
	{name: "Infinity string", key: []byte(topic), payload: reading("press01", "temperature", `"Infinity"`, "C", "1625000000"), outcome: ToDeadLetters, code: parse.CodeWrongType, stage: rules.StageParse},
	{name: "1e400", key: []byte(topic), payload: reading("press01", "temperature", "1e400", "C", "1625000000"), outcome: ToDeadLetters, code: parse.CodeValueNotFinite, stage: rules.StageParse},
	{name: "ts as text", key: []byte(topic), payload: reading("press01", "temperature", "87.3", "C", `"2021-06-29"`), outcome: ToDeadLetters, code: parse.CodeWrongType, stage: rules.StageParse},
	{name: "too deep", key: []byte(topic), payload: payload(`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), outcome: ToDeadLetters, code: parse.CodeTooDeep, stage: rules.StageParse},
	{name: "truncated oversized", key: []byte(topic), payload: payload(seed[:40]), headers: []Header{{HeaderOversizedBytes, []byte("2097152")}}, outcome: ToDeadLetters, code: rules.CodeOversized, stage: rules.StageParse},
	{name: "too large", key: []byte(topic), payload: payload(`{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000,"pad":"` + strings.Repeat("x", 70000) + `"}`), outcome: ToDeadLetters, code: rules.RulePayloadSize, stage: rules.StageParse},
	{name: "ts 8 days old", key: []byte(topic), payload: reading("press01", "temperature", "87.3", "C", "1624308900"), outcome: ToDeadLetters, code: rules.RuleTSWindow, stage: rules.StageValidate},
	{name: "ts 2 hours ahead", key: []byte(topic), payload: reading("press01", "temperature", "87.3", "C", "1625007300"), outcome: ToDeadLetters, code: rules.RuleTSWindow, stage: rules.StageValidate},
	{name: "unit not allowed", key: []byte(topic), payload: reading("press01", "temperature", "87.3", "bar", "1625000000"), outcome: ToDeadLetters, code: rules.RuleUnitAllowed, stage: rules.StageValidate},
	{name: "topic names another device", key: []byte("plant/l1/press02/temperature"), payload: payload(seed), outcome: ToDeadLetters, code: rules.RuleTopicMatches, stage: rules.StageValidate},
	{name: "topic does not fit", key: []byte("factory/press01"), payload: payload(seed), outcome: ToDeadLetters, code: rules.RuleTopicMatches, stage: rules.StageValidate},
	{name: "no topic", payload: payload(seed), outcome: ToDeadLetters, code: rules.RuleTopicMatches, stage: rules.StageValidate},
	{name: "custom rule", key: []byte(topic), payload: reading("press01", "temperature", "-300", "C", "1625000000"), outcome: ToDeadLetters, code: "temperature_physical", stage: rules.StageValidate},
}

func rawOf(i int, c *corpusCase) *Raw {
	r := &Raw{
		KafkaTopic:     "plant_sensor_readings_raw",
		KafkaPartition: int32(i % 3),
		KafkaOffset:    int64(1000 + i),
		KafkaKey:       c.key,
		Headers:        c.headers,
		RawPayload:     c.payload,
		IngestTS:       ingestTS,
	}
	if c.code == rules.CodeOversized {
		r.KafkaTopic = "plant_sensor_readings_oversized"
	}
	for _, h := range c.headers {
		if h.Key == HeaderBridgeTS {
			r.BridgeTS, r.BridgeTSValid = 1625000099_000000, true
		}
	}
	return r
}

func newDeriver(t testing.TB) *Deriver {
	t.Helper()
	set, err := rules.Load("../../rules.default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pattern, err := parse.NewTopicPattern(parse.DefaultTopicPattern, "hamburg")
	if err != nil {
		t.Fatal(err)
	}
	return New(pattern, set)
}

// goldenRow is an Output written for the golden file.
type goldenRow struct {
	Case       string             `json:"case"`
	Reading    *bronze.Reading    `json:"reading,omitempty"`
	DeadLetter *bronze.DeadLetter `json:"dead_letter,omitempty"`
}

// summary is what TestDerive checks of one derived row besides the golden
// file: where it went, why, and whether its lineage and bytes are kept.
type summary struct {
	Outcome     Outcome
	Code, Stage string
	HasDetail   bool
	// Payload is the dead letter's raw_payload, nil for a bronze row;
	// PayloadNull says it is null.
	Payload     string
	PayloadNull bool
	FailedAt    int64
	Lineage     bronze.Lineage
}

// summarize describes out, the derivation of raw, for comparison, and
// returns its golden row.
func summarize(name string, o Outcome, raw *Raw, out *Output) (summary, goldenRow) {
	s := summary{Outcome: o, PayloadNull: true}
	row := goldenRow{Case: name}
	switch o {
	case ToDeadLetters:
		dl := out.DeadLetter
		dl.RawPayload = bytes.Clone(dl.RawPayload)
		s.Code, s.Stage, s.HasDetail = dl.ErrorCode, dl.Stage, dl.ErrorDetail != ""
		s.Payload, s.PayloadNull, s.FailedAt, s.Lineage = string(dl.RawPayload), dl.RawPayload == nil, dl.FailedAt, dl.Lineage
		row.DeadLetter = &dl
	case ToBronze:
		r := out.Reading
		r.Extra, r.Traceparent = bytes.Clone(r.Extra), bytes.Clone(r.Traceparent)
		s.Lineage = r.Lineage
		row.Reading = &r
	}
	// Only the Kafka coordinates and the raw version are compared here.
	s.Lineage = bronze.Lineage{KafkaTopic: s.Lineage.KafkaTopic, KafkaPartition: s.Lineage.KafkaPartition, KafkaOffset: s.Lineage.KafkaOffset, RawVersion: s.Lineage.RawVersion}
	return s, row
}

// want is the summary corpus case c should give for raw.
func (c *corpusCase) want(raw *Raw) summary {
	dead := c.outcome == ToDeadLetters
	w := summary{
		Outcome: c.outcome, Code: c.code, Stage: c.stage, HasDetail: dead,
		PayloadNull: !dead || c.payload == nil,
		Lineage:     bronze.Lineage{KafkaTopic: raw.KafkaTopic, KafkaPartition: raw.KafkaPartition, KafkaOffset: raw.KafkaOffset, RawVersion: 42},
	}
	if dead {
		w.Payload, w.FailedAt = string(c.payload), ingestTS
	}
	return w
}

func TestDerive(t *testing.T) {
	d := newDeriver(t)
	var golden []goldenRow
	for i := range corpus {
		c := &corpus[i]
		t.Run(c.name, func(t *testing.T) {
			raw := rawOf(i, c)
			var out Output
			o, err := d.Derive(raw, 42, &out)
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			got, row := summarize(c.name, o, raw, &out)
			if want := c.want(raw); got != want {
				t.Errorf("Derive = %+v\nwant       %+v", got, want)
			}
			golden = append(golden, row)
		})
	}
	checkGolden(t, golden)
}

func checkGolden(t *testing.T, rows []goldenRow) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rows); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "derived.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("derived rows differ from %s (run with -update and review the diff):\n%s", path, got)
	}
}

func TestDeriveIsDeterministic(t *testing.T) {
	first, second := newDeriver(t), newDeriver(t)
	for i := range corpus {
		c := &corpus[i]
		var a, b Output
		oa, _ := first.Derive(rawOf(i, c), 7, &a)
		ob, _ := second.Derive(rawOf(i, c), 7, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if oa != ob || !bytes.Equal(ja, jb) {
			t.Errorf("%s: two derivations differ:\n%s\n%s", c.name, ja, jb)
		}
	}
}

func TestFailRuleHalts(t *testing.T) {
	set, err := rules.Parse([]byte("builtin:\n  json_parses: {action: fail}\ncustom:\n  - {name: no_negative, action: fail, expr: 'value >= 0.0'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	pattern, _ := parse.NewTopicPattern(parse.DefaultTopicPattern, "p")
	d := New(pattern, set)
	tests := []struct {
		payload, rule, row string
	}{
		{`{`, rules.RuleJSONParses, `raw version 9, Kafka plant_sensor_readings_raw[0]@1000, MQTT topic "plant/l1/press01/temperature"`},
		{string(reading("press01", "temperature", "-1", "C", "1625000000")), "no_negative", "raw version 9"},
	}
	for _, tt := range tests {
		var out Output
		c := corpusCase{key: []byte(topic), payload: []byte(tt.payload)}
		_, err := d.Derive(rawOf(0, &c), 9, &out)
		var fe *rules.FailError
		if !errors.As(err, &fe) || fe.Rule != tt.rule || !strings.Contains(fe.Row, tt.row) {
			t.Errorf("Derive(%s) = %v, want a FailError of rule %s on %q", tt.payload, err, tt.rule, tt.row)
		}
	}
	d.Flush()
	for _, st := range set.Snapshot() {
		if (st.Name == rules.RuleJSONParses || st.Name == "no_negative") && st.Failed != 1 {
			t.Errorf("rule %s failed %d times, want 1", st.Name, st.Failed)
		}
	}
}

func TestSetRulesBetweenBatches(t *testing.T) {
	d := newDeriver(t)
	c := corpusCase{key: []byte(topic), payload: reading("press01", "temperature", "87.3", "bar", "1625000000")}
	var out Output
	if o, _ := d.Derive(rawOf(0, &c), 1, &out); o != ToDeadLetters {
		t.Fatalf("with the default rules: %v, want a dead letter", o)
	}
	old := d.Rules()
	relaxed, err := rules.Parse([]byte("builtin:\n  unit_allowed: {action: warn}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d.SetRules(relaxed)
	if o, _ := d.Derive(rawOf(0, &c), 1, &out); o != ToBronze {
		t.Fatalf("with unit_allowed warn: %v, want bronze", o)
	}
	d.Flush()
	for _, set := range []*rules.Set{old, relaxed} {
		for _, st := range set.Snapshot() {
			if st.Name == rules.RuleUnitAllowed && st.Failed != 1 {
				t.Errorf("generation %d: unit_allowed failed %d times, want 1", set.Generation(), st.Failed)
			}
		}
	}
}

// FuzzDerive checks that no raw row makes Derive panic, that each goes to
// exactly one table, and that a dead letter keeps the bytes as they came.
func FuzzDerive(f *testing.F) {
	for i := range corpus {
		f.Add(corpus[i].key, corpus[i].payload, false)
	}
	f.Add([]byte(topic), []byte(seed[:30]), true)
	d := newDeriver(f)
	f.Fuzz(func(t *testing.T, key, payload []byte, oversized bool) {
		c := corpusCase{key: key, payload: payload}
		if oversized {
			c.headers = []Header{{HeaderOversizedBytes, []byte("2000000")}}
		}
		var out Output
		o, err := d.Derive(rawOf(0, &c), 1, &out)
		if err != nil {
			t.Fatalf("Derive: %v (the default rules have no fail rule)", err)
		}
		switch o {
		case ToBronze:
			if oversized || key == nil {
				t.Fatalf("Derive(%q, %q, oversized %v) kept the reading", key, payload, oversized)
			}
		case ToDeadLetters:
			if !bytes.Equal(out.DeadLetter.RawPayload, payload) || out.DeadLetter.ErrorCode == "" || out.DeadLetter.ErrorDetail == "" {
				t.Fatalf("dead letter %+v of %q", out.DeadLetter, payload)
			}
		default:
			t.Fatalf("Derive outcome %v", o)
		}
	})
}
