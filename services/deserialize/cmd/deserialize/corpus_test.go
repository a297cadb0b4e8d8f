package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// expect is what one corpus record must become: a bronze row (code "")
// or a dead letter with code and stage.
type expect struct {
	name string
	rec  *record
	code string // dead letters: error_code
	// bronze rows: the typed fields
	stage                     string
	sensor, meas, unit, line  string
	device, extra             string
	value                     float64
	tsMicros                  int64
	wantExtra, wantLineDevice bool
}

// corpus returns the records of the corpus and what each must become.
func corpus(e *env) []*expect {
	now := time.Now().Unix()
	payload := func(sensor, meas string, value any, unit string, ts any) []byte {
		return fmt.Appendf(nil, `{"sensor_id":%q,"measurement":%q,"value":%v,"unit":%q,"ts":%v}`, sensor, meas, value, unit, ts)
	}
	good := func(name, topic string, p []byte, sensor, line string, value float64, ts int64) *expect {
		return &expect{name: name, rec: newRecord(e.topicRaw, topic, p), sensor: sensor, meas: "temperature", unit: "C",
			line: line, device: sensor, value: value, tsMicros: ts, wantLineDevice: true}
	}
	bad := func(name, topic string, p []byte, code, stage string, h ...kafka.Header) *expect {
		return &expect{name: name, rec: newRecord(e.topicRaw, topic, p, h...), code: code, stage: stage}
	}
	const topic = "plant/l1/press01/temperature"
	valid := payload("press01", "temperature", 87.3, "C", now)
	oversized := bad("truncated oversized", topic,
		[]byte(`{"sensor_id":"press01","measurement":"temperature","value":1.5,"unit":"C","ts":`+fmt.Sprint(now)+`,"blob":"`+strings.Repeat("x", 3000)),
		"parse.oversized", "parse", kafka.Header{Key: "oversized_bytes", Value: []byte("2000000")})
	oversized.rec.topic = e.topicBig
	withExtra := good("extra field kept", topic,
		fmt.Appendf(nil, `{"sensor_id":"press01","measurement":"temperature","value":21,"unit":"C","ts":%d,"firmware":"1.2"}`, now),
		"press01", "l1", 21, now*1e6)
	withExtra.extra, withExtra.wantExtra = `{"firmware":"1.2"}`, true
	return []*expect{
		good("valid", topic, valid, "press01", "l1", 87.3, now*1e6),
		good("QoS 1 duplicate", topic, valid, "press01", "l1", 87.3, now*1e6),
		good("fractional ts", "plant/l2/press02/temperature", payload("press02", "temperature", -12.5, "C", fmt.Sprintf("%d.123456", now)),
			"press02", "l2", -12.5, now*1e6+123456),
		good("unicode topic and id", "plant/línea-1/präss_03/temperature", payload("präss_03", "temperature", 55, "C", now),
			"präss_03", "línea-1", 55, now*1e6),
		good("warn rule keeps", topic, payload("press01", "temperature", 500.5, "C", now), "press01", "l1", 500.5, now*1e6),
		withExtra,
		bad("bad JSON", topic, []byte(`{"sensor_id":"press01","measurement":`), "parse.invalid_json", "parse"),
		bad("trailing data", topic, append(append([]byte{}, valid...), []byte(" x")...), "parse.invalid_json", "parse"),
		bad("not an object", topic, []byte(`[1,2,3]`), "parse.not_object", "parse"),
		bad("duplicate key", topic, fmt.Appendf(nil, `{"sensor_id":"press01","sensor_id":"press01","measurement":"temperature","value":1,"unit":"C","ts":%d}`, now),
			"parse.duplicate_key", "parse"),
		bad("missing unit", topic, fmt.Appendf(nil, `{"sensor_id":"press01","measurement":"temperature","value":1,"ts":%d}`, now),
			"parse.missing_field", "parse"),
		bad("empty sensor_id, empty device level", "plant/l1//temperature", payload("", "temperature", 1, "C", now), "parse.empty_field", "parse"),
		bad("value a string", topic, payload("press01", "temperature", `"87.3"`, "C", now), "parse.wrong_type", "parse"),
		bad("value NaN string", topic, payload("press01", "temperature", `"NaN"`, "C", now), "parse.wrong_type", "parse"),
		bad("value Infinity string", topic, payload("press01", "temperature", `"Infinity"`, "C", now), "parse.wrong_type", "parse"),
		bad("value null", topic, payload("press01", "temperature", "null", "C", now), "parse.wrong_type", "parse"),
		bad("ts a string", topic, payload("press01", "temperature", 1, "C", `"yesterday"`), "parse.wrong_type", "parse"),
		bad("value 1e400", topic, payload("press01", "temperature", "1e400", "C", now), "parse.value_not_finite", "parse"),
		bad("empty payload", topic, []byte{}, "parse.empty", "parse"),
		bad("invalid UTF-8", topic, []byte{'{', '"', 0xff, 0xfe, '"', ':', '1', '}'}, "parse.invalid_utf8", "parse"),
		oversized,
		bad("ts 30 days old", topic, payload("press01", "temperature", 20, "C", now-30*86400), "ts_window", "validate"),
		bad("ts 2 hours ahead", topic, payload("press01", "temperature", 20, "C", now+7200), "ts_window", "validate"),
		bad("unit not allowed", topic, payload("press01", "temperature", 2, "bar", now), "unit_allowed", "validate"),
		bad("topic names another device", "plant/l1/press02/temperature", valid, "topic_matches", "validate"),
		bad("topic names another measurement", "plant/l1/press01/pressure", valid, "topic_matches", "validate"),
		bad("below absolute zero", topic, payload("press01", "temperature", -300, "C", now), "temperature_physical", "validate"),
	}
}

// TestCorpus: every record of a corpus of valid, duplicate and broken
// readings ends in exactly one of bronze and dead letters, row by row as
// expected, read back with delta-rs; the status counts agree (item 6 of
// issue 12's tests: status after a run).
func TestCorpus(t *testing.T) {
	e := newEnv(t)
	cases := corpus(e)
	recs := make([]*record, len(cases))
	for i, c := range cases {
		recs[i] = c.rec
	}
	produce(t, recs)
	e.ingest()
	e.waitRaw(len(recs), 90*time.Second)
	d := e.deserialize("--rules", defaultRules(t))
	api := e.pipeline(d)
	rawVersion := e.waitDerived(d, 90*time.Second)

	byPos := map[pos]*expect{}
	for _, c := range cases {
		byPos[pos{c.rec.topic, c.rec.partition, c.rec.offset}] = c
	}
	seen := map[pos]string{}
	mark := func(p pos, table string) *expect {
		if prev, dup := seen[p]; dup {
			t.Errorf("record %v in %s and in %s", p, prev, table)
		}
		seen[p] = table
		c := byPos[p]
		if c == nil {
			t.Errorf("%s row %v was never produced", table, p)
		}
		return c
	}
	lineage := func(name string, r row, c *expect) {
		if got := r["mqtt_topic"]; got != string(c.rec.key) {
			t.Errorf("%s: mqtt_topic %v, want %q", name, got, c.rec.key)
		}
		if got := num(r, "bridge_ts"); got != c.rec.bridgeMS*1000 {
			t.Errorf("%s: bridge_ts %d, want %d", name, got, c.rec.bridgeMS*1000)
		}
		if v := num(r, "raw_version"); v < 0 || v > rawVersion {
			t.Errorf("%s: raw_version %d not in [0, %d]", name, v, rawVersion)
		}
	}
	bronzeRows := e.read(bronzeTable)
	valid := 0
	for _, r := range bronzeRows {
		c := mark(posOf(r), "bronze")
		if c == nil {
			continue
		}
		if c.code != "" {
			t.Errorf("%s: in bronze, want a dead letter %s", c.name, c.code)
			continue
		}
		valid++
		v, _ := r["value"].(json.Number).Float64()
		want := map[string]any{"sensor_id": c.sensor, "measurement": c.meas, "unit": c.unit, "plant": "plant",
			"line": c.line, "device": c.device, "event_date": time.UnixMicro(c.tsMicros).UTC().Format("2006-01-02")}
		for col, w := range want {
			if r[col] != w {
				t.Errorf("%s: %s = %v, want %v", c.name, col, r[col], w)
			}
		}
		if math.Abs(v-c.value) > 1e-9 {
			t.Errorf("%s: value %v, want %v", c.name, v, c.value)
		}
		if got := num(r, "ts"); got != c.tsMicros {
			t.Errorf("%s: ts %d, want %d", c.name, got, c.tsMicros)
		}
		if c.wantExtra && r["extra"] != c.extra || !c.wantExtra && r["extra"] != nil {
			t.Errorf("%s: extra %v, want %q", c.name, r["extra"], c.extra)
		}
		lineage(c.name, r, c)
	}
	deadRows := e.read(deadTable)
	for _, r := range deadRows {
		c := mark(posOf(r), "dead letters")
		if c == nil {
			continue
		}
		if c.code == "" {
			t.Errorf("%s: dead-lettered (%v: %v), want bronze", c.name, r["error_code"], r["error_detail"])
			continue
		}
		if r["error_code"] != c.code || r["stage"] != c.stage {
			t.Errorf("%s: error_code %v stage %v (%v), want %s %s", c.name, r["error_code"], r["stage"], r["error_detail"], c.code, c.stage)
		}
		if got, want := r["raw_payload"], hex.EncodeToString(c.rec.value); got != want {
			t.Errorf("%s: raw_payload %v, want %s", c.name, got, want)
		}
		if d, _ := r["error_detail"].(string); d == "" {
			t.Errorf("%s: no error_detail", c.name)
		}
		if num(r, "failed_at") <= 0 || r["failed_date"] == nil {
			t.Errorf("%s: failed_at %v failed_date %v", c.name, r["failed_at"], r["failed_date"])
		}
		lineage(c.name, r, c)
	}
	for p, c := range byPos {
		if _, ok := seen[p]; !ok {
			t.Errorf("%s (%v) is in neither table", c.name, p)
		}
	}
	if len(bronzeRows)+len(deadRows) != len(cases) {
		t.Errorf("%d bronze rows + %d dead letters, want %d records", len(bronzeRows), len(deadRows), len(cases))
	}

	// Status: the raw position and the counts of the run.
	st := status(t, api)
	ds := st.GetDeserialize()
	if ds.GetRawVersion() != rawVersion || ds.GetRawLatestVersion() != rawVersion {
		t.Errorf("status raw_version %d latest %d, want %d", ds.GetRawVersion(), ds.GetRawLatestVersion(), rawVersion)
	}
	if ds.GetRowsValid() != int64(valid) || ds.GetRowsDeadLettered() != int64(len(cases)-valid) {
		t.Errorf("status rows_valid %d rows_dead_lettered %d, want %d and %d", ds.GetRowsValid(), ds.GetRowsDeadLettered(), valid, len(cases)-valid)
	}
	if st.GetState() != pipelinev1.State_STATE_RUNNING {
		t.Errorf("state %v (%s)", st.GetState(), st.GetLastError())
	}
	failed := map[string]int64{}
	for _, c := range cases {
		if c.stage == "validate" {
			failed[c.code]++
		}
	}
	failed["value_finite"] = 1
	failed["temperature_range_celsius"] = 1 // the warn case
	counts := map[string]*pipelinev1.RuleCount{}
	for _, r := range ds.GetRules() {
		counts[r.GetName()] = r
	}
	for name, n := range failed {
		if got := counts[name].GetFailed(); got != n {
			t.Errorf("rule %s failed %d times, want %d", name, got, n)
		}
	}
	// Every reading that reached the custom rules passed or failed each.
	if c := counts["temperature_physical"]; c.GetPassed()+c.GetFailed() != int64(valid)+1 {
		t.Errorf("temperature_physical passed %d failed %d, want %d checks", c.GetPassed(), c.GetFailed(), valid+1)
	}
	if ds.GetWarnings() != 1 {
		t.Errorf("warnings %d, want 1", ds.GetWarnings())
	}
	t.Logf("%d records: %d bronze rows, %d dead letters, raw version %d", len(cases), len(bronzeRows), len(deadRows), rawVersion)
}
