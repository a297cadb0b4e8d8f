package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
)

// customRules is a rules file with one custom rule.
func customRules(name, action, expr string) string {
	return fmt.Sprintf("custom:\n  - name: %s\n    action: %s\n    expr: %q\n", name, action, expr)
}

// valueRecords are n valid readings of the given value.
func valueRecords(e *env, n int, value float64) []*record {
	now := time.Now().Unix()
	recs := make([]*record, n)
	for i := range recs {
		recs[i] = newRecord(e.topicRaw, "plant/l1/press01/temperature",
			fmt.Appendf(nil, `{"sensor_id":"press01","measurement":"temperature","value":%g,"unit":"C","ts":%d,"i":%d}`, value, now, i))
	}
	return recs
}

// waitLogLine waits until p's log has a line containing s.
func waitLogLine(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(p.log); err == nil && strings.Contains(string(data), s) {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not log %q\n%s", p.name, s, p.tail(20))
}

// deadCodes returns the error_code of each dead letter by position.
func (e *env) deadCodes() map[pos]string {
	e.t.Helper()
	out := map[pos]string{}
	for _, r := range e.read(deadTable, "kafka_topic", "kafka_partition", "kafka_offset", "error_code") {
		out[posOf(r)] = r["error_code"].(string)
	}
	return out
}

// TestRulesReload: a rules file with a rule that does not compile is
// refused at start (naming the rule) and by ReloadRules (InvalidArgument,
// the rules in force stay); a good file takes effect on SIGHUP with the
// next batch, and the commits record its generation.
func TestRulesReload(t *testing.T) {
	e := newEnv(t)
	rulesFile := filepath.Join(e.dir, "rules.yaml")
	const broken = "value > "
	writeRules(t, rulesFile, customRules("broken_rule", "drop", broken))
	bad := e.deserialize("--rules", rulesFile)
	select {
	case <-bad.done:
		if bad.err == nil || !strings.Contains(bad.tail(5), "broken_rule") {
			t.Fatalf("start with a broken rule: exit %v, log:\n%s", bad.err, bad.tail(5))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("deserialize runs with a rule that does not compile\n%s", bad.tail(10))
	}

	writeRules(t, rulesFile, customRules("value_cap", "drop", "value < 1000.0"))
	first := append(valueRecords(e, 10, 500), valueRecords(e, 2, 2000)...)
	produce(t, first)
	e.ingest()
	e.waitRaw(len(first), time.Minute)
	d := e.deserialize("--rules", rulesFile)
	api := e.pipeline(d)
	e.waitDerived(d, time.Minute)
	gen := status(t, api).GetDeserialize().GetRulesGeneration()

	// A broken file over gRPC: refused with the rule's name, nothing changes.
	writeRules(t, rulesFile, customRules("broken_rule", "drop", broken))
	_, err := api.ReloadRules(context.Background(), &pipelinev1.ReloadRulesRequest{})
	if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "broken_rule") {
		t.Fatalf("ReloadRules with a broken rule: %v, want InvalidArgument naming broken_rule", err)
	}
	if got := status(t, api).GetDeserialize().GetRulesGeneration(); got != gen {
		t.Fatalf("rules generation %d after a refused reload, was %d", got, gen)
	}

	// A good change on SIGHUP applies to the next batch.
	writeRules(t, rulesFile, customRules("value_cap", "drop", "value < 100.0"))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogLine(t, d, "rules reloaded")
	second := valueRecords(e, 5, 500)
	produce(t, second)
	e.waitRaw(len(first)+len(second), time.Minute)
	rawVersion := e.waitDerived(d, time.Minute)
	ds := status(t, api).GetDeserialize()
	if ds.GetRulesGeneration() <= gen {
		t.Errorf("rules generation %d after SIGHUP, was %d", ds.GetRulesGeneration(), gen)
	}
	codes := e.deadCodes()
	for i, r := range append(append([]*record{}, first...), second...) {
		code, dead := codes[pos{r.topic, r.partition, r.offset}]
		wantDead := i >= 10 // the two 2000s, then the 500s under the new cap
		if dead != wantDead || dead && code != "value_cap" {
			t.Errorf("record %d: dead letter %v (%q), want %v", i, dead, code, wantDead)
		}
	}
	e.checkExactlyOnce(positions(append(first, second...)), rawVersion)
	// Both tables' last commits name the new rules' generation.
	for _, table := range []string{deadTable, bronzeTable} {
		h, err := e.client.History(context.Background(), &catalogv1.HistoryRequest{Table: table, Limit: 10})
		if err != nil {
			t.Fatalf("History %s: %v", table, err)
		}
		found := false
		for _, entry := range h.GetEntries() {
			if g, ok := entry.GetOperationParameters()["rulesGeneration"]; ok {
				if g != strconv.FormatInt(ds.GetRulesGeneration(), 10) {
					t.Errorf("%s v%d: rulesGeneration %s, want %d", table, entry.GetVersion(), g, ds.GetRulesGeneration())
				}
				found = true
				break // newest first
			}
		}
		if !found {
			t.Errorf("%s: no commit names rulesGeneration: %v", table, h.GetEntries())
		}
	}
}

// TestFailRuleHalts: a fail rule halts deserialize (FAILED, the rule and
// the row in last_error) while it keeps serving status; after the rules
// file is fixed, ReloadRules and Resume continue, nothing lost or doubled.
func TestFailRuleHalts(t *testing.T) {
	e := newEnv(t)
	rulesFile := filepath.Join(e.dir, "rules.yaml")
	writeRules(t, rulesFile, customRules("no_hot_press", "fail", "value < 1000.0"))
	recs := append(append(generated(e, 0, 40), valueRecords(e, 1, 5000)...), generated(e, 40, 40)...)
	produce(t, recs)
	e.ingest()
	e.waitRaw(len(recs), time.Minute)
	d := e.deserialize("--rules", rulesFile)
	api := e.pipeline(d)
	deadline := time.Now().Add(time.Minute)
	var st *pipelinev1.Status
	for {
		st = status(t, api)
		if st.GetState() == pipelinev1.State_STATE_FAILED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not FAILED within a minute: %v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	hot := recs[40]
	if le := st.GetLastError(); !strings.Contains(le, "no_hot_press") || !strings.Contains(le, fmt.Sprintf("%s[%d]@%d", hot.topic, hot.partition, hot.offset)) {
		t.Errorf("last_error %q does not name the rule and the row %s[%d]@%d", le, hot.topic, hot.partition, hot.offset)
	}
	time.Sleep(time.Second)
	if st := status(t, api); st.GetState() != pipelinev1.State_STATE_FAILED || d.exited() {
		t.Fatalf("after a second: state %v, exited %v", st.GetState(), d.exited())
	}

	writeRules(t, rulesFile, customRules("no_hot_press", "drop", "value < 1000.0"))
	if _, err := api.ReloadRules(context.Background(), &pipelinev1.ReloadRulesRequest{}); err != nil {
		t.Fatalf("ReloadRules: %v", err)
	}
	if _, err := api.Resume(context.Background(), &pipelinev1.ResumeRequest{}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rawVersion := e.waitDerived(d, time.Minute)
	valid, dead := e.checkExactlyOnce(positions(recs), rawVersion)
	if code := e.deadCodes()[pos{hot.topic, hot.partition, hot.offset}]; code != "no_hot_press" {
		t.Errorf("the hot reading's dead letter has code %q", code)
	}
	if st := status(t, api); st.GetState() != pipelinev1.State_STATE_RUNNING {
		t.Errorf("state %v after Resume (%s)", st.GetState(), st.GetLastError())
	}
	t.Logf("after Resume: %d bronze rows, %d dead letters", valid, dead)
}
