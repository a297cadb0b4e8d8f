package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// The variables a custom rule sees. Their index is their slot in an
// activation's cache.
const (
	varSensorID = iota
	varMeasurement
	varValue
	varUnit
	varTS
	varPlant
	varLine
	varDevice
	varMQTTTopic
	varIngestTS
	varPayloadSize
	varExtra
	numVars
)

// Variables lists the variables of custom rules with their CEL types, for
// documentation and the rules file's comments.
var Variables = []struct{ Name, Type, Meaning string }{
	{"sensor_id", "string", "the payload's sensor_id"},
	{"measurement", "string", "the payload's measurement"},
	{"value", "double", "the payload's value (always finite)"},
	{"unit", "string", "the payload's unit"},
	{"ts", "timestamp", "the payload's ts"},
	{"plant", "string", "the plant, from the topic or the --plant flag"},
	{"line", "string", "the line level of the topic (\"\" if the pattern has none)"},
	{"device", "string", "the device level of the topic (\"\" if the pattern has none)"},
	{"mqtt_topic", "string", "the MQTT topic"},
	{"ingest_ts", "timestamp", "when ingest wrote the raw row (the rules' \"now\")"},
	{"payload_size", "int", "the payload's length in bytes"},
	{"extra", "map(string, dyn)", "the payload's unknown fields (empty map if none)"},
}

func varIndex(name string) int {
	switch name {
	case "sensor_id":
		return varSensorID
	case "measurement":
		return varMeasurement
	case "value":
		return varValue
	case "unit":
		return varUnit
	case "ts":
		return varTS
	case "plant":
		return varPlant
	case "line":
		return varLine
	case "device":
		return varDevice
	case "mqtt_topic":
		return varMQTTTopic
	case "ingest_ts":
		return varIngestTS
	case "payload_size":
		return varPayloadSize
	case "extra":
		return varExtra
	}
	return -1
}

// newEnv returns the CEL environment of custom rules.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("sensor_id", cel.StringType),
		cel.Variable("measurement", cel.StringType),
		cel.Variable("value", cel.DoubleType),
		cel.Variable("unit", cel.StringType),
		cel.Variable("ts", cel.TimestampType),
		cel.Variable("plant", cel.StringType),
		cel.Variable("line", cel.StringType),
		cel.Variable("device", cel.StringType),
		cel.Variable("mqtt_topic", cel.StringType),
		cel.Variable("ingest_ts", cel.TimestampType),
		cel.Variable("payload_size", cel.IntType),
		cel.Variable("extra", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
}

// customRule is a compiled custom rule.
type customRule struct {
	name   string
	action Action
	expr   string
	prg    cel.Program
}

// compileCustom parses, type-checks and plans c's expression, which must be
// boolean.
func compileCustom(env *cel.Env, c Custom) (*customRule, error) {
	ast, iss := env.Compile(c.Expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: custom rule %s: %v", ErrInvalidRules, c.Name, iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%w: custom rule %s: the expression is of type %s, not bool", ErrInvalidRules, c.Name, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%w: custom rule %s: %w", ErrInvalidRules, c.Name, err)
	}
	return &customRule{name: c.Name, action: c.Action, expr: c.Expr, prg: prg}, nil
}

// eval runs the rule; an evaluation error (a missing map key, an overflow)
// counts as a violation.
func (c *customRule) eval(act *activation) (ok bool, detail string) {
	out, _, err := c.prg.Eval(act)
	if err != nil {
		return false, fmt.Sprintf("%s: evaluation error: %v", c.expr, err)
	}
	if b, isBool := out.Value().(bool); isBool && b {
		return true, ""
	}
	return false, fmt.Sprintf("%s is false", c.expr)
}

// activation resolves the variables of one reading for the custom rules. It
// is reused across readings, and converts each variable to a CEL value at
// most once per reading, when a rule first refers to it.
type activation struct {
	in   *Input
	have uint32
	vals [numVars]ref.Val
	// strs keeps the CEL values of strings seen, by the address and length
	// of their bytes: the parser and the deriver reuse the strings of
	// sensor ids, measurements, units and topics, so converting one again
	// costs no allocation. A cached value holds its own copy of the bytes,
	// compared on a hit, so that a string whose memory was reused for other
	// bytes (a pooled buffer) is never mistaken for the one cached.
	strs [256]boxedString
}

type boxedString struct {
	p *byte
	s string
	v ref.Val
}

var emptyString ref.Val = types.String("")

// str returns s as a CEL value.
func (a *activation) str(s string) ref.Val {
	if len(s) == 0 {
		return emptyString
	}
	p := unsafe.StringData(s)
	b := &a.strs[(uintptr(unsafe.Pointer(p))>>3^uintptr(len(s)))%uintptr(len(a.strs))]
	if b.p == p && b.s == s {
		return b.v
	}
	own := strings.Clone(s)
	*b = boxedString{p: p, s: own, v: types.String(own)}
	return b.v
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) reset(in *Input) {
	a.in = in
	a.have = 0
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i := varIndex(name)
	if i < 0 {
		return nil, false
	}
	if a.have&(1<<i) != 0 {
		return a.vals[i], true
	}
	v := a.value(i)
	a.vals[i] = v
	a.have |= 1 << i
	return v, true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) value(i int) ref.Val {
	in, r := a.in, a.in.Reading
	switch i {
	case varSensorID:
		return a.str(r.SensorID)
	case varMeasurement:
		return a.str(r.Measurement)
	case varValue:
		return types.Double(r.Value)
	case varUnit:
		return a.str(r.Unit)
	case varTS:
		return types.Timestamp{Time: time.UnixMicro(r.TS).UTC()}
	case varPlant:
		return a.str(in.Topic.Plant)
	case varLine:
		return a.str(in.Topic.Line)
	case varDevice:
		return a.str(in.Topic.Device)
	case varMQTTTopic:
		return a.str(in.MQTTTopic)
	case varIngestTS:
		return types.Timestamp{Time: time.UnixMicro(in.IngestTS).UTC()}
	case varPayloadSize:
		return types.Int(in.PayloadSize)
	default:
		m := map[string]any{}
		if r.Extra != nil {
			// Extra is a JSON object the parser checked.
			if err := json.Unmarshal(r.Extra, &m); err != nil {
				return types.NewErr("extra: %v", err)
			}
		}
		return types.DefaultTypeAdapter.NativeToValue(m)
	}
}

// formatMicros writes Unix microseconds as RFC 3339 text.
func formatMicros(us int64) string {
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}

// durationMicros writes a length of microseconds as a Go duration, in hours
// when it is too long for time.Duration.
func durationMicros(us int64) string {
	if us > math.MaxInt64/1000 || us < math.MinInt64/1000 {
		return fmt.Sprintf("%dh", us/3_600_000_000)
	}
	return time.Duration(us * 1000).String()
}
