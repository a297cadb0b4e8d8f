// Package parse turns a sensor payload, the original design's
// {"sensor_id","measurement","value","unit","ts"}, into a typed Reading, and
// an MQTT topic into the plant, line, device and measurement it names.
//
// The payload parser is a hand-written single-pass scanner (see
// docs/decisions.md, "Deserialize", for the measurements that chose it over
// encoding/json, encoding/json/v2, fastjson, goccy/go-json and sonic). It is
// strict where a lenient decoder would hide a broken reading: duplicate keys,
// invalid UTF-8, trailing data and non-finite values are errors, each with a
// stable code. Unknown fields are kept, compacted, in Reading.Extra.
package parse

import "fmt"

// Reading is one parsed sensor payload.
type Reading struct {
	SensorID    string
	Measurement string
	Value       float64
	Unit        string
	// TS is the reading's time in Unix microseconds, exactly as the payload's
	// decimal text gave it (digits past the sixth decimal are cut, towards
	// negative infinity).
	TS int64
	// Extra holds the payload's unknown fields as a compact JSON object, in
	// payload order; nil when there are none. It aliases the Parser's memory
	// until the next Parse.
	Extra []byte
}

// Error codes of payloads that cannot become a Reading. They are stable: they
// are written to the dead-letter table's error_code column.
const (
	// CodeEmpty is an empty payload.
	CodeEmpty = "parse.empty"
	// CodeInvalidUTF8 is a payload that is not valid UTF-8.
	CodeInvalidUTF8 = "parse.invalid_utf8"
	// CodeInvalidJSON is a payload that is not one JSON value (syntax
	// errors, trailing data).
	CodeInvalidJSON = "parse.invalid_json"
	// CodeNotObject is valid JSON that is not an object.
	CodeNotObject = "parse.not_object"
	// CodeDuplicateKey is an object with the same key twice.
	CodeDuplicateKey = "parse.duplicate_key"
	// CodeTooDeep is a value nested deeper than MaxDepth.
	CodeTooDeep = "parse.too_deep"
	// CodeMissingField is a required field that is absent.
	CodeMissingField = "parse.missing_field"
	// CodeEmptyField is a sensor_id or measurement that is an empty string
	// (or only white space): it cannot name a sensor in gold's key.
	CodeEmptyField = "parse.empty_field"
	// CodeWrongType is a required field of the wrong JSON type.
	CodeWrongType = "parse.wrong_type"
	// CodeValueNotFinite is a value that does not fit a finite float64 (1e400).
	CodeValueNotFinite = "parse.value_not_finite"
	// CodeTSOutOfRange is a ts outside the years 0001 to 9999.
	CodeTSOutOfRange = "parse.ts_out_of_range"
)

// MaxDepth is the deepest nesting of arrays and objects accepted, the
// payload's own object included.
const MaxDepth = 32

// Error says why a payload is not a Reading. Code is one of the Code
// constants; Field names the field concerned, if any; Detail says what was
// wrong in words.
type Error struct {
	Code   string
	Field  string
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}
