// Package rules decides what happens to each sensor reading: named rules,
// each with an action as in Databricks expectations — warn (keep the
// reading, count the violation), drop (dead-letter it, the rule's name as
// error_code) or fail (halt the pipeline) — or off.
//
// The built-in rules check the payload (payload_size, json_parses,
// required_fields, value_finite: the parse stage) and the parsed reading
// (ts_window, unit_allowed, topic_matches: the validate stage). Custom rules
// are CEL expressions over the parsed reading, compiled and type-checked when
// the rules are loaded, so that a bad rule is refused with its name before it
// can touch a reading.
//
// A Set is immutable (but for its counters) and safe for concurrent use: a
// reload builds a new Set and the caller swaps it in between batches. Each
// goroutine checks readings through its own Evaluator.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
)

// Action is what a rule does with a reading that breaks it.
type Action string

// The actions.
const (
	// Off turns a rule off.
	Off Action = "off"
	// Warn keeps the reading and counts the violation.
	Warn Action = "warn"
	// Drop sends the reading to the dead-letter table.
	Drop Action = "drop"
	// Fail halts the pipeline on the reading.
	Fail Action = "fail"
)

// The built-in rules' names.
const (
	RulePayloadSize    = "payload_size"
	RuleJSONParses     = "json_parses"
	RuleRequiredFields = "required_fields"
	RuleValueFinite    = "value_finite"
	RuleTSWindow       = "ts_window"
	RuleUnitAllowed    = "unit_allowed"
	RuleTopicMatches   = "topic_matches"
)

// builtinNames in evaluation order; their index is their slot in a Set.
var builtinNames = [...]string{
	RulePayloadSize, RuleJSONParses, RuleRequiredFields, RuleValueFinite,
	RuleTSWindow, RuleUnitAllowed, RuleTopicMatches,
}

const (
	slotPayloadSize = iota
	slotJSONParses
	slotRequiredFields
	slotValueFinite
	slotTSWindow
	slotUnitAllowed
	slotTopicMatches
	numBuiltins
)

func isBuiltin(name string) bool {
	for _, n := range builtinNames {
		if n == name {
			return true
		}
	}
	return false
}

// Stages, as written to the dead-letter table's stage column.
const (
	StageParse    = "parse"
	StageValidate = "validate"
)

// CodeOversized is the error code of a payload the bridge cut to the Kafka
// size limit (it carries the oversized_bytes header): never the sensor's
// bytes, so it is dead-lettered whatever payload_size's action.
const CodeOversized = "parse.oversized"

// ErrInvalidRules is wrapped by every error about a rules file that cannot
// be loaded: bad syntax, an unknown key, a bad action, a custom rule that
// does not compile or is not boolean.
var ErrInvalidRules = errors.New("invalid rules")

// FailError is the error a fail rule raises: it halts the pipeline. It names
// the rule and describes the row.
type FailError struct {
	Rule   string
	Code   string
	Detail string
	// Row identifies the reading (set by the caller that knows it, e.g. its
	// Kafka coordinates and raw version).
	Row string
}

// Error implements error.
func (e *FailError) Error() string {
	return fmt.Sprintf("rule %s (action fail) failed on %s: %s", e.Rule, e.Row, e.Detail)
}

// Set is a loaded, compiled rule set. It is immutable but for its counters,
// and safe for concurrent use.
type Set struct {
	generation uint64
	digest     string
	cfg        *Config

	actions [numBuiltins]Action
	// units holds the allowed units per measurement.
	units       map[string]map[string]bool
	denyUnknown bool
	maxBytes    int
	maxAge      int64 // microseconds
	maxFuture   int64
	custom      []*customRule

	// counts has a passed and a failed counter per rule: built-ins first,
	// then the custom rules in file order.
	counts []ruleCounts
}

type ruleCounts struct {
	passed, failed atomic.Int64
}

// generations numbers the Sets made in this process.
var generations atomic.Uint64

// Default returns the Set of the built-in rules with their defaults.
func Default() *Set {
	s, err := compile(DefaultConfig(), nil)
	if err != nil {
		panic(fmt.Sprintf("rules: the default rules do not compile: %v", err))
	}
	return s
}

// Load reads and compiles the rules file at path. A file that cannot be read
// or holds a bad rule returns an error naming the rule; the caller keeps
// using its current Set.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("rules file %s: %w", path, err)
	}
	return s, nil
}

// Parse compiles the contents of a rules file.
func Parse(data []byte) (*Set, error) {
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	return compile(cfg, data)
}

// compile checks cfg and compiles its custom rules into a new Set.
func compile(cfg *Config, source []byte) (*Set, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &cfg.Builtin
	s := &Set{
		cfg:         cfg,
		units:       make(map[string]map[string]bool, len(b.UnitAllowed.Units)),
		denyUnknown: b.UnitAllowed.UnknownMeasurement == "deny",
		maxBytes:    b.PayloadSize.MaxBytes,
		maxAge:      int64(*b.TSWindow.MaxAge) / 1000,
		maxFuture:   int64(*b.TSWindow.MaxFuture) / 1000,
	}
	s.actions = [numBuiltins]Action{
		b.PayloadSize.Action, b.JSONParses.Action, b.RequiredFields.Action, b.ValueFinite.Action,
		b.TSWindow.Action, b.UnitAllowed.Action, b.TopicMatches.Action,
	}
	for m, us := range b.UnitAllowed.Units {
		set := make(map[string]bool, len(us))
		for _, u := range us {
			set[u] = true
		}
		s.units[m] = set
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("rules: CEL environment: %w", err)
	}
	for _, c := range cfg.Custom {
		r, err := compileCustom(env, c)
		if err != nil {
			return nil, err
		}
		s.custom = append(s.custom, r)
	}
	s.counts = make([]ruleCounts, numBuiltins+len(s.custom))
	if source == nil {
		source = []byte("default")
	}
	sum := sha256.Sum256(source)
	s.digest = hex.EncodeToString(sum[:8])
	s.generation = generations.Add(1)
	return s, nil
}

// Generation numbers the Set among those made in this process, from 1; a
// reload makes a larger one. It is recorded in each commit's commitInfo.
func (s *Set) Generation() uint64 { return s.generation }

// Digest is a short hash of the rules file's contents ("default" for
// Default), which, unlike Generation, stays the same across restarts.
func (s *Set) Digest() string { return s.digest }

// Config returns the configuration the Set was compiled from, defaults
// filled in. The caller must not modify it.
func (s *Set) Config() *Config { return s.cfg }

// RuleStats is one rule's counts in a Snapshot.
type RuleStats struct {
	Name   string
	Action Action
	Stage  string
	// Passed counts readings the rule checked and found good; Failed those
	// that broke it (whatever the action). A rule is not checked once an
	// earlier rule dropped or failed the reading.
	Passed int64
	Failed int64
}

// Snapshot returns every rule's counts, built-ins first in evaluation
// order, then the custom rules in file order. Counts include what
// Evaluators have flushed.
func (s *Set) Snapshot() []RuleStats {
	out := make([]RuleStats, 0, len(s.counts))
	for i := range s.counts {
		st := RuleStats{Stage: StageValidate, Passed: s.counts[i].passed.Load(), Failed: s.counts[i].failed.Load()}
		if i < numBuiltins {
			st.Name, st.Action = builtinNames[i], s.actions[i]
			if i <= slotValueFinite {
				st.Stage = StageParse
			}
		} else {
			c := s.custom[i-numBuiltins]
			st.Name, st.Action = c.name, c.action
		}
		out = append(out, st)
	}
	return out
}

// Verdict is what the rules decided about one reading.
type Verdict struct {
	// Action is "" when the reading is kept (it passed, or broke only warn
	// rules), Drop for a dead letter, Fail to halt.
	Action Action
	// Rule is the name of the rule that dropped or failed the reading.
	Rule string
	// Code is the dead letter's error_code: the rule's name, or for the
	// parse-stage rules the precise parse error (parse.invalid_json, ...).
	Code string
	// Detail says what was wrong, in words.
	Detail string
	// Stage is StageParse or StageValidate.
	Stage string
}

// Input is what the validate-stage rules see of one reading.
type Input struct {
	Reading *parse.Reading
	// Topic is what the MQTT topic says; TopicOK is false when the topic did
	// not fit the pattern.
	Topic   *parse.Topic
	TopicOK bool
	// MQTTTopic is the topic itself, Pattern the topic pattern's text (for
	// error details).
	MQTTTopic string
	Pattern   string
	// IngestTS is raw's ingest_ts in Unix microseconds: the time the ts
	// window is measured from, never the wall clock, so that a re-derivation
	// decides as the first did.
	IngestTS int64
	// PayloadSize is the payload's length in bytes.
	PayloadSize int
}

// Evaluator checks readings against a Set. It counts locally and publishes
// the counts to the Set on Flush; it is not safe for concurrent use.
type Evaluator struct {
	set    *Set
	counts [][2]int64
	act    activation
}

// NewEvaluator returns an Evaluator of s.
func (s *Set) NewEvaluator() *Evaluator {
	return &Evaluator{set: s, counts: make([][2]int64, len(s.counts))}
}

// Set returns the Set e evaluates.
func (e *Evaluator) Set() *Set { return e.set }

// Flush adds the counts since the last Flush to the Set's.
func (e *Evaluator) Flush() {
	for i := range e.counts {
		if c := e.counts[i]; c != [2]int64{} {
			e.set.counts[i].passed.Add(c[0])
			e.set.counts[i].failed.Add(c[1])
			e.counts[i] = [2]int64{}
		}
	}
}

// count records rule slot i's outcome and returns the verdict of a violation
// (the zero Verdict for a pass, or for a violation of a warn rule).
func (e *Evaluator) count(i int, ok bool, action Action, rule, code, detail, stage string) Verdict {
	if ok {
		e.counts[i][0]++
		return Verdict{}
	}
	e.counts[i][1]++
	if action == Warn {
		return Verdict{}
	}
	return Verdict{Action: action, Rule: rule, Code: code, Detail: detail, Stage: stage}
}

// CheckSize applies payload_size to a payload of n bytes; oversized says the
// bridge cut it (the oversized_bytes header, whose value is original).
func (e *Evaluator) CheckSize(n int, oversized bool, original string) Verdict {
	action := e.set.actions[slotPayloadSize]
	if oversized {
		if action != Fail {
			action = Drop
		}
		return e.count(slotPayloadSize, false, action, RulePayloadSize, CodeOversized,
			fmt.Sprintf("the payload of %s bytes was cut to %d bytes by the bridge (oversized_bytes header)", original, n), StageParse)
	}
	if action == Off {
		return Verdict{}
	}
	if n <= e.set.maxBytes {
		return e.count(slotPayloadSize, true, action, "", "", "", "")
	}
	return e.count(slotPayloadSize, false, action, RulePayloadSize, RulePayloadSize,
		fmt.Sprintf("the payload has %d bytes, more than the limit of %d", n, e.set.maxBytes), StageParse)
}

// ParseFailed returns the verdict on a payload the parser refused: the rule
// the parse error belongs to decides between drop and fail.
func (e *Evaluator) ParseFailed(perr *parse.Error) Verdict {
	slot := slotJSONParses
	switch perr.Code {
	case parse.CodeMissingField, parse.CodeEmptyField, parse.CodeWrongType, parse.CodeTSOutOfRange:
		slot = slotRequiredFields
	case parse.CodeValueNotFinite:
		slot = slotValueFinite
	}
	return e.count(slot, false, e.set.actions[slot], builtinNames[slot], perr.Code, perr.Detail, StageParse)
}

// Validate applies the validate-stage rules to a parsed reading, in order:
// ts_window, unit_allowed, topic_matches, then the custom rules in file
// order; the first drop or fail decides. It also counts the parse-stage
// rules as passed.
func (e *Evaluator) Validate(in *Input) Verdict {
	s := e.set
	e.counts[slotJSONParses][0]++
	e.counts[slotRequiredFields][0]++
	e.counts[slotValueFinite][0]++
	r := in.Reading

	if a := s.actions[slotTSWindow]; a != Off {
		ok := r.TS >= in.IngestTS-s.maxAge && r.TS <= in.IngestTS+s.maxFuture
		var detail string
		if !ok {
			detail = tsDetail(r.TS, in.IngestTS, s.maxAge, s.maxFuture)
		}
		if v := e.count(slotTSWindow, ok, a, RuleTSWindow, RuleTSWindow, detail, StageValidate); v.Action != "" {
			return v
		}
	}
	if a := s.actions[slotUnitAllowed]; a != Off {
		units, known := s.units[r.Measurement]
		ok := units[r.Unit] || (!known && !s.denyUnknown)
		var detail string
		if !ok {
			if known {
				detail = fmt.Sprintf("unit %q is not allowed for measurement %q", r.Unit, r.Measurement)
			} else {
				detail = fmt.Sprintf("measurement %q is not in the unit table", r.Measurement)
			}
		}
		if v := e.count(slotUnitAllowed, ok, a, RuleUnitAllowed, RuleUnitAllowed, detail, StageValidate); v.Action != "" {
			return v
		}
	}
	if a := s.actions[slotTopicMatches]; a != Off {
		t := in.Topic
		ok := in.TopicOK && (!t.HasDevice || t.Device == r.SensorID) && (!t.HasMeasurement || t.Measurement == r.Measurement)
		var detail string
		switch {
		case !in.TopicOK && in.MQTTTopic == "":
			detail = "the reading has no MQTT topic (a null Kafka key and no mqtt_topic header)"
		case !in.TopicOK:
			detail = fmt.Sprintf("topic %q does not fit the pattern %q", in.MQTTTopic, in.Pattern)
		case !ok && t.HasDevice && t.Device != r.SensorID:
			detail = fmt.Sprintf("topic %q names device %q but sensor_id is %q", in.MQTTTopic, t.Device, r.SensorID)
		case !ok:
			detail = fmt.Sprintf("topic %q names measurement %q but the payload's is %q", in.MQTTTopic, t.Measurement, r.Measurement)
		}
		if v := e.count(slotTopicMatches, ok, a, RuleTopicMatches, RuleTopicMatches, detail, StageValidate); v.Action != "" {
			return v
		}
	}
	if len(s.custom) == 0 {
		return Verdict{}
	}
	e.act.reset(in)
	for i, c := range s.custom {
		if c.action == Off {
			continue
		}
		ok, detail := c.eval(&e.act)
		if v := e.count(numBuiltins+i, ok, c.action, c.name, c.name, detail, StageValidate); v.Action != "" {
			return v
		}
	}
	return Verdict{}
}

// tsDetail describes a ts outside the window.
func tsDetail(ts, ingest, maxAge, maxFuture int64) string {
	if ts < ingest-maxAge {
		return fmt.Sprintf("ts %s is %s before ingest_ts %s (limit %s)",
			formatMicros(ts), durationMicros(ingest-ts), formatMicros(ingest), durationMicros(maxAge))
	}
	return fmt.Sprintf("ts %s is %s after ingest_ts %s (limit %s)",
		formatMicros(ts), durationMicros(ts-ingest), formatMicros(ingest), durationMicros(maxFuture))
}
