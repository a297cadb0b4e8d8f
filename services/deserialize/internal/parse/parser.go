package parse

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The required fields, in the order a missing one is reported.
const (
	fieldSensorID = 1 << iota
	fieldMeasurement
	fieldValue
	fieldUnit
	fieldTS
	allFields = fieldSensorID | fieldMeasurement | fieldValue | fieldUnit | fieldTS
)

var fieldNames = [...]string{"sensor_id", "measurement", "value", "unit", "ts"}

// internSlots is the size of a Parser's string cache: sensor ids,
// measurements and units repeat, so after warm-up a reading's strings cost
// no allocation.
const internSlots = 4096

// Parser parses payloads. It keeps scratch memory and the strings it has seen
// between calls, so one Parser should be reused for many payloads; it is not
// safe for concurrent use.
type Parser struct {
	data []byte
	pos  int

	intern *[internSlots]string
	// scratch holds a string's unescaped bytes.
	scratch []byte
	// extra is the Extra object being built.
	extra []byte
	// unknown holds the unescaped unknown keys seen in the current payload,
	// end offsets in unknownEnds, for the duplicate check.
	unknown     []byte
	unknownEnds []int

	// pending is the first error found that does not stop the scan: the
	// payload must still be valid JSON for it to be reported.
	pending *Error
}

// NewParser returns a Parser.
func NewParser() *Parser {
	return &Parser{intern: new([internSlots]string)}
}

// errSyntax is returned by the scanning functions for a syntax error; the
// Parser's Error describes it.
var errSyntax = errors.New("syntax error")

// Parse parses payload into r. On failure it returns an Error and r holds
// what was parsed so far. r.Extra aliases the Parser's memory until the next
// call.
func (p *Parser) Parse(payload []byte, r *Reading) *Error {
	*r = Reading{}
	if len(payload) == 0 {
		return &Error{Code: CodeEmpty, Detail: "the payload is empty"}
	}
	if !utf8.Valid(payload) {
		return &Error{Code: CodeInvalidUTF8, Detail: fmt.Sprintf("the payload is not valid UTF-8 (first bad byte at offset %d)", firstInvalidUTF8(payload))}
	}
	p.data, p.pos, p.pending = payload, 0, nil
	p.extra = p.extra[:0]
	p.unknown, p.unknownEnds = p.unknown[:0], p.unknownEnds[:0]
	defer func() { p.data = nil }()

	p.skipSpace()
	if p.pos == len(p.data) {
		return &Error{Code: CodeInvalidJSON, Detail: "the payload holds only white space"}
	}
	if p.data[p.pos] != '{' {
		if json.Valid(payload) {
			return &Error{Code: CodeNotObject, Detail: "the payload is JSON but not an object"}
		}
		return p.syntaxError("expected an object")
	}
	if err := p.object(r); err != nil {
		return err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return p.syntaxError("data after the object")
	}
	if p.pending != nil {
		return p.pending
	}
	if len(p.extra) > 0 {
		p.extra = append(p.extra, '}')
		r.Extra = p.extra
	}
	return nil
}

// object parses the payload's top-level object into r.
func (p *Parser) object(r *Reading) *Error {
	p.pos++ // '{'
	seen := 0
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return p.missing(seen)
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return p.syntaxError("expected a key")
		}
		keyStart := p.pos
		key, err := p.str()
		if err != nil {
			return p.syntaxError("in a key: " + err.Error())
		}
		rawKey := p.data[keyStart:p.pos]
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.syntaxError("expected ':' after a key")
		}
		p.pos++
		p.skipSpace()

		field := 0
		switch string(key) {
		case "sensor_id":
			field = fieldSensorID
		case "measurement":
			field = fieldMeasurement
		case "value":
			field = fieldValue
		case "unit":
			field = fieldUnit
		case "ts":
			field = fieldTS
		}
		if field != 0 {
			if seen&field != 0 {
				p.fail(CodeDuplicateKey, fieldName(field), fmt.Sprintf("field %s appears twice", fieldName(field)))
			}
			seen |= field
			if err := p.known(field, r); err != nil {
				return err
			}
		} else {
			if err := p.unknownField(key, rawKey); err != nil {
				return err
			}
		}

		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.syntaxError("unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return p.missing(seen)
		default:
			return p.syntaxError("expected ',' or '}' after a value")
		}
	}
}

// missing records a missing-field error if seen lacks a required field.
func (p *Parser) missing(seen int) *Error {
	if seen == allFields {
		return nil
	}
	var names []string
	for i, name := range fieldNames {
		if seen&(1<<i) == 0 {
			names = append(names, name)
		}
	}
	detail := "field " + names[0] + " is missing"
	if len(names) > 1 {
		detail = fmt.Sprintf("fields %v are missing", names)
	}
	p.fail(CodeMissingField, names[0], detail)
	return nil
}

// blank reports whether s is empty or only white space.
func blank(s string) bool {
	return strings.TrimSpace(s) == ""
}

func fieldName(field int) string {
	for i, name := range fieldNames {
		if field == 1<<i {
			return name
		}
	}
	return ""
}

// known parses the value of a required field.
func (p *Parser) known(field int, r *Reading) *Error {
	start := p.pos
	if p.pos >= len(p.data) {
		return p.syntaxError("expected a value")
	}
	c := p.data[p.pos]
	switch field {
	case fieldSensorID, fieldMeasurement, fieldUnit:
		if c != '"' {
			break
		}
		s, err := p.str()
		if err != nil {
			return p.syntaxError("in field " + fieldName(field) + ": " + err.Error())
		}
		v := p.internString(s)
		switch field {
		case fieldSensorID:
			r.SensorID = v
		case fieldMeasurement:
			r.Measurement = v
		default:
			r.Unit = v
			return nil
		}
		if blank(v) {
			p.fail(CodeEmptyField, fieldName(field), fmt.Sprintf("field %s is empty (%q)", fieldName(field), v))
		}
		return nil
	case fieldValue, fieldTS:
		if c != '-' && (c < '0' || c > '9') {
			break
		}
		num, err := p.number()
		if err != nil {
			return p.syntaxError("in field " + fieldName(field) + ": " + err.Error())
		}
		if field == fieldValue {
			f, err := strconv.ParseFloat(string(num), 64)
			if err != nil || math.IsInf(f, 0) {
				p.fail(CodeValueNotFinite, "value", fmt.Sprintf("field value %s does not fit a finite double", snippet(num)))
				return nil
			}
			r.Value = f
			return nil
		}
		ts, ok := epochMicros(num)
		if !ok {
			p.fail(CodeTSOutOfRange, "ts", fmt.Sprintf("field ts %s is not between the years 0001 and 9999", snippet(num)))
			return nil
		}
		r.TS = ts
		return nil
	}
	// The wrong type: scan the value for syntax, then report it.
	kind, err := p.skipValue(1)
	if err != nil {
		return err
	}
	want := "a string"
	if field == fieldValue || field == fieldTS {
		want = "a number"
	}
	p.fail(CodeWrongType, fieldName(field), fmt.Sprintf("field %s must be %s, got %s %s", fieldName(field), want, kind, snippet(p.data[start:p.pos])))
	return nil
}

// unknownField keeps an unknown field's key and compacted value in extra,
// and records a duplicate.
func (p *Parser) unknownField(key, rawKey []byte) *Error {
	start := 0
	for _, end := range p.unknownEnds {
		if string(p.unknown[start:end]) == string(key) {
			p.fail(CodeDuplicateKey, string(key), fmt.Sprintf("field %s appears twice", rawKey))
			break
		}
		start = end
	}
	p.unknown = append(p.unknown, key...)
	p.unknownEnds = append(p.unknownEnds, len(p.unknown))

	valueStart := p.pos
	if _, err := p.skipValue(1); err != nil {
		return err
	}
	if len(p.extra) == 0 {
		p.extra = append(p.extra, '{')
	} else {
		p.extra = append(p.extra, ',')
	}
	p.extra = append(p.extra, rawKey...)
	p.extra = append(p.extra, ':')
	p.extra = appendCompact(p.extra, p.data[valueStart:p.pos])
	return nil
}

// fail records the first error that does not stop the scan.
func (p *Parser) fail(code, field, detail string) {
	if p.pending == nil {
		p.pending = &Error{Code: code, Field: field, Detail: detail}
	}
}

// syntaxError is a CodeInvalidJSON error at the current position.
func (p *Parser) syntaxError(what string) *Error {
	return &Error{Code: CodeInvalidJSON, Detail: fmt.Sprintf("invalid JSON at offset %d: %s", p.pos, what)}
}

func (p *Parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// str scans the string at pos (its opening quote) and returns its unescaped
// bytes: a slice of the payload when it has no escapes, else of scratch.
func (p *Parser) str() ([]byte, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			s := p.data[start:p.pos]
			p.pos++
			return s, nil
		case c == '\\':
			return p.escapedStr(start)
		case c < 0x20:
			return nil, errors.New("control character in a string")
		}
		p.pos++
	}
	return nil, errors.New("unterminated string")
}

// escapedStr continues str from the first backslash, unescaping into scratch.
func (p *Parser) escapedStr(start int) ([]byte, error) {
	buf := append(p.scratch[:0], p.data[start:p.pos]...)
	defer func() { p.scratch = buf[:0] }()
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			return buf, nil
		case c < 0x20:
			return nil, errors.New("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.data) {
			return nil, errors.New("unterminated string")
		}
		e := p.data[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r1, ok := p.hex4()
			if !ok {
				return nil, errors.New(`bad \u escape`)
			}
			if utf16.IsSurrogate(r1) {
				// A pair makes one rune; a lone surrogate becomes U+FFFD,
				// as encoding/json decodes it.
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					r2, ok := p.hex4()
					if !ok {
						return nil, errors.New(`bad \u escape`)
					}
					if dec := utf16.DecodeRune(r1, r2); dec != utf8.RuneError {
						buf = utf8.AppendRune(buf, dec)
						continue
					}
					p.pos = save
				}
				r1 = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r1)
		default:
			return nil, errors.New("bad escape")
		}
	}
	return nil, errors.New("unterminated string")
}

// hex4 reads the four hex digits of a \u escape.
func (p *Parser) hex4() (rune, bool) {
	if p.pos+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.pos += 4
	return r, true
}

// number scans a JSON number at pos and returns its text.
func (p *Parser) number() ([]byte, error) {
	start := p.pos
	d := p.data
	i := p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil, errors.New("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, errors.New("bad number: no digits after '.'")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil, errors.New("bad number: no digits in the exponent")
		}
	}
	p.pos = i
	return d[start:i], nil
}

// skipValue scans any JSON value at pos, nested at depth, and returns its kind.
func (p *Parser) skipValue(depth int) (string, *Error) {
	if p.pos >= len(p.data) {
		return "", p.syntaxError("expected a value")
	}
	switch c := p.data[p.pos]; {
	case c == '"':
		if _, err := p.str(); err != nil {
			return "", p.syntaxError(err.Error())
		}
		return "string", nil
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := p.number(); err != nil {
			return "", p.syntaxError(err.Error())
		}
		return "number", nil
	case c == '{' || c == '[':
		if depth+1 > MaxDepth {
			return "", &Error{Code: CodeTooDeep, Detail: fmt.Sprintf("values nested deeper than %d levels", MaxDepth)}
		}
		if c == '{' {
			return "object", p.skipObject(depth + 1)
		}
		return "array", p.skipArray(depth + 1)
	case c == 't':
		return "boolean", p.literal("true")
	case c == 'f':
		return "boolean", p.literal("false")
	case c == 'n':
		return "null", p.literal("null")
	}
	return "", p.syntaxError("expected a value")
}

func (p *Parser) literal(word string) *Error {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.syntaxError("expected a value")
	}
	p.pos += len(word)
	return nil
}

// skipObject scans a nested object; its duplicate keys are not checked (they
// stay in Extra as they came).
func (p *Parser) skipObject(depth int) *Error {
	p.pos++
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return p.syntaxError("expected a key")
		}
		if _, err := p.str(); err != nil {
			return p.syntaxError("in a key: " + err.Error())
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.syntaxError("expected ':' after a key")
		}
		p.pos++
		p.skipSpace()
		if _, err := p.skipValue(depth); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.syntaxError("unterminated object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError("expected ',' or '}' after a value")
		}
	}
}

func (p *Parser) skipArray(depth int) *Error {
	p.pos++
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return nil
	}
	for {
		p.skipSpace()
		if _, err := p.skipValue(depth); err != nil {
			return err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return p.syntaxError("unterminated array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return nil
		default:
			return p.syntaxError("expected ',' or ']' after a value")
		}
	}
}

// internString returns s as a string, reusing an earlier equal one from a
// direct-mapped cache: sensor ids, measurements and units repeat, and a hit
// costs a hash and a compare instead of an allocation.
func (p *Parser) internString(s []byte) string {
	h := uint32(2166136261)
	for _, c := range s {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &p.intern[h%internSlots]
	if *slot == string(s) {
		return *slot
	}
	v := string(s)
	*slot = v
	return v
}

// appendCompact appends the valid JSON value v without its insignificant
// white space.
func appendCompact(dst, v []byte) []byte {
	inString := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			dst = append(dst, c)
			switch c {
			case '\\':
				i++
				dst = append(dst, v[i])
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
		case '"':
			inString = true
			dst = append(dst, c)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// snippet returns up to 40 bytes of the JSON text b for an error detail, as
// written (a string keeps its quotes), cut at a rune boundary.
func snippet(b []byte) string {
	const limit = 40
	if len(b) > limit {
		n := limit
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		return string(b[:n]) + "..."
	}
	return string(b)
}

// firstInvalidUTF8 is the offset of the first byte of b that is not part of
// a valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
