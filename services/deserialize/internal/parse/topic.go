package parse

import (
	"fmt"
	"strings"
)

// DefaultTopicPattern is the topic layout of DESIGN.md section 1.
const DefaultTopicPattern = "plant/{line}/{device}/{measurement}"

// Topic is what an MQTT topic says about a reading.
type Topic struct {
	Plant       string
	Line        string
	Device      string
	Measurement string
	// Has says which of the four the pattern names; a level the pattern
	// does not name is empty (Plant: the pattern's constant).
	HasLine, HasDevice, HasMeasurement bool
}

// level is one level of a TopicPattern.
type level struct {
	literal string // matched exactly, unless field is set
	field   string // "plant", "line", "device", "measurement", or "+" for any
}

// TopicPattern maps the levels of an MQTT topic to plant, line, device and
// measurement. A pattern is '/'-separated levels, each a literal that must
// match exactly, `+` for any value, or one of {plant}, {line}, {device},
// {measurement}. A topic matches when it has as many levels as the pattern.
// It is immutable and safe for concurrent use.
type TopicPattern struct {
	text   string
	levels []level
	plant  string
	has    map[string]bool
}

// NewTopicPattern compiles pattern. plant is the plant name of every reading
// when the pattern has no {plant} level.
func NewTopicPattern(pattern, plant string) (*TopicPattern, error) {
	if pattern == "" {
		return nil, fmt.Errorf("topic pattern is empty")
	}
	tp := &TopicPattern{text: pattern, plant: plant, has: make(map[string]bool)}
	for _, l := range strings.Split(pattern, "/") {
		switch {
		case l == "+":
			tp.levels = append(tp.levels, level{field: "+"})
		case strings.HasPrefix(l, "{") && strings.HasSuffix(l, "}"):
			name := l[1 : len(l)-1]
			switch name {
			case "plant", "line", "device", "measurement":
			default:
				return nil, fmt.Errorf("topic pattern %q: unknown level {%s} (want {plant}, {line}, {device} or {measurement})", pattern, name)
			}
			if tp.has[name] {
				return nil, fmt.Errorf("topic pattern %q: {%s} appears twice", pattern, name)
			}
			tp.has[name] = true
			tp.levels = append(tp.levels, level{field: name})
		case strings.ContainsAny(l, "{}#"):
			return nil, fmt.Errorf("topic pattern %q: level %q is neither a literal, + nor a {name}", pattern, l)
		default:
			tp.levels = append(tp.levels, level{literal: l})
		}
	}
	return tp, nil
}

// Plant returns the plant name of readings whose topic has no {plant} level.
func (tp *TopicPattern) Plant() string { return tp.plant }

// String returns the pattern's text.
func (tp *TopicPattern) String() string { return tp.text }

// Match maps topic's levels into t. It reports false, leaving t with only
// the constant plant, when topic does not fit the pattern.
func (tp *TopicPattern) Match(topic string, t *Topic) bool {
	*t = Topic{Plant: tp.plant}
	rest := topic
	for i, l := range tp.levels {
		var v string
		if i == len(tp.levels)-1 {
			if strings.IndexByte(rest, '/') >= 0 {
				*t = Topic{Plant: tp.plant}
				return false
			}
			v = rest
		} else {
			j := strings.IndexByte(rest, '/')
			if j < 0 {
				*t = Topic{Plant: tp.plant}
				return false
			}
			v, rest = rest[:j], rest[j+1:]
		}
		switch l.field {
		case "":
			if v != l.literal {
				*t = Topic{Plant: tp.plant}
				return false
			}
		case "plant":
			t.Plant = v
		case "line":
			t.Line, t.HasLine = v, true
		case "device":
			t.Device, t.HasDevice = v, true
		case "measurement":
			t.Measurement, t.HasMeasurement = v, true
		}
	}
	return true
}
