package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a rules file: the settings of the built-in rules and the custom
// rules. YAML or JSON (a JSON document is YAML); unknown keys are errors, so
// that a misspelt setting is refused rather than ignored.
type Config struct {
	Builtin Builtins `yaml:"builtin" json:"builtin"`
	Custom  []Custom `yaml:"custom" json:"custom"`
}

// Builtins configures the built-in rules; a rule left out keeps its default.
type Builtins struct {
	PayloadSize    *PayloadSize `yaml:"payload_size" json:"payload_size"`
	JSONParses     *Simple      `yaml:"json_parses" json:"json_parses"`
	RequiredFields *Simple      `yaml:"required_fields" json:"required_fields"`
	ValueFinite    *Simple      `yaml:"value_finite" json:"value_finite"`
	TSWindow       *TSWindow    `yaml:"ts_window" json:"ts_window"`
	UnitAllowed    *UnitAllowed `yaml:"unit_allowed" json:"unit_allowed"`
	TopicMatches   *Simple      `yaml:"topic_matches" json:"topic_matches"`
}

// Simple is a built-in rule with no setting but its action.
type Simple struct {
	Action Action `yaml:"action" json:"action"`
}

// PayloadSize configures payload_size.
type PayloadSize struct {
	Action   Action `yaml:"action" json:"action"`
	MaxBytes int    `yaml:"max_bytes" json:"max_bytes"`
}

// TSWindow configures ts_window: a reading's ts must lie within
// [ingest_ts - MaxAge, ingest_ts + MaxFuture]. A bound left out keeps its
// default (0 is a bound: max_future: 0s admits nothing ahead of ingest_ts).
type TSWindow struct {
	Action    Action    `yaml:"action" json:"action"`
	MaxAge    *Duration `yaml:"max_age" json:"max_age"`
	MaxFuture *Duration `yaml:"max_future" json:"max_future"`
}

// UnitAllowed configures unit_allowed: the units each measurement may have,
// and whether a measurement not in the table passes (allow) or not (deny).
type UnitAllowed struct {
	Action             Action              `yaml:"action" json:"action"`
	UnknownMeasurement string              `yaml:"unknown_measurement" json:"unknown_measurement"`
	Units              map[string][]string `yaml:"units" json:"units"`
}

// Custom is a rule given as a CEL expression over the parsed reading that is
// true for a good reading.
type Custom struct {
	Name        string `yaml:"name" json:"name"`
	Action      Action `yaml:"action" json:"action"`
	Expr        string `yaml:"expr" json:"expr"`
	Description string `yaml:"description" json:"description"`
}

// Duration is a time.Duration written as Go duration text ("168h", "90m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration must be text such as \"168h\": %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %s is negative", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// DefaultUnits is the default unit table of unit_allowed.
func DefaultUnits() map[string][]string {
	return map[string][]string{
		"temperature": {"C", "F", "K"},
		"pressure":    {"bar", "mbar", "kPa", "Pa", "psi"},
		"humidity":    {"%", "%RH"},
		"vibration":   {"mm/s", "g"},
		"flow":        {"l/min", "m3/h"},
		"current":     {"A", "mA"},
		"voltage":     {"V", "mV"},
		"power":       {"W", "kW"},
		"speed":       {"rpm"},
	}
}

// Defaults of the built-in rules.
const (
	DefaultMaxBytes  = 64 << 10
	DefaultMaxAge    = 7 * 24 * time.Hour
	DefaultMaxFuture = time.Hour
)

// DefaultConfig returns the built-in rules with their defaults and no custom
// rules: what the service applies without a rules file.
func DefaultConfig() *Config {
	return &Config{Builtin: Builtins{
		PayloadSize:    &PayloadSize{Action: Drop, MaxBytes: DefaultMaxBytes},
		JSONParses:     &Simple{Action: Drop},
		RequiredFields: &Simple{Action: Drop},
		ValueFinite:    &Simple{Action: Drop},
		TSWindow:       &TSWindow{Action: Drop, MaxAge: durationOf(DefaultMaxAge), MaxFuture: durationOf(DefaultMaxFuture)},
		UnitAllowed:    &UnitAllowed{Action: Drop, UnknownMeasurement: "allow", Units: DefaultUnits()},
		TopicMatches:   &Simple{Action: Drop},
	}}
}

func durationOf(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

// ParseConfig reads a rules file's contents and fills in the defaults of what
// it leaves out.
func ParseConfig(data []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRules, err)
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one document", ErrInvalidRules)
	}
	def := DefaultConfig().Builtin
	b := &cfg.Builtin
	if b.PayloadSize == nil {
		b.PayloadSize = def.PayloadSize
	} else if b.PayloadSize.MaxBytes == 0 {
		b.PayloadSize.MaxBytes = DefaultMaxBytes
	}
	b.JSONParses = cmpOr(b.JSONParses, def.JSONParses)
	b.RequiredFields = cmpOr(b.RequiredFields, def.RequiredFields)
	b.ValueFinite = cmpOr(b.ValueFinite, def.ValueFinite)
	b.TopicMatches = cmpOr(b.TopicMatches, def.TopicMatches)
	if b.TSWindow == nil {
		b.TSWindow = def.TSWindow
	} else {
		b.TSWindow.MaxAge = cmpOr(b.TSWindow.MaxAge, def.TSWindow.MaxAge)
		b.TSWindow.MaxFuture = cmpOr(b.TSWindow.MaxFuture, def.TSWindow.MaxFuture)
	}
	if b.UnitAllowed == nil {
		b.UnitAllowed = def.UnitAllowed
	} else {
		if b.UnitAllowed.UnknownMeasurement == "" {
			b.UnitAllowed.UnknownMeasurement = "allow"
		}
		if b.UnitAllowed.Units == nil {
			b.UnitAllowed.Units = DefaultUnits()
		}
	}
	// An action left out is the default action.
	for _, a := range []struct{ got, def *Action }{
		{&b.PayloadSize.Action, &def.PayloadSize.Action},
		{&b.JSONParses.Action, &def.JSONParses.Action},
		{&b.RequiredFields.Action, &def.RequiredFields.Action},
		{&b.ValueFinite.Action, &def.ValueFinite.Action},
		{&b.TSWindow.Action, &def.TSWindow.Action},
		{&b.UnitAllowed.Action, &def.UnitAllowed.Action},
		{&b.TopicMatches.Action, &def.TopicMatches.Action},
	} {
		if *a.got == "" {
			*a.got = *a.def
		}
	}
	return cfg, nil
}

func cmpOr[T any](v, def *T) *T {
	if v == nil {
		return def
	}
	return v
}

// namePattern is what a custom rule's name may look like: it becomes an
// error_code and a metric label.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// validate checks the actions and settings of the built-in rules and the
// custom rules' names; the expressions are checked when compiled.
func (c *Config) validate() error {
	b := &c.Builtin
	checks := []struct {
		name    string
		action  Action
		allowed []Action
	}{
		{RulePayloadSize, b.PayloadSize.Action, []Action{Off, Warn, Drop, Fail}},
		{RuleJSONParses, b.JSONParses.Action, []Action{Drop, Fail}},
		{RuleRequiredFields, b.RequiredFields.Action, []Action{Drop, Fail}},
		{RuleValueFinite, b.ValueFinite.Action, []Action{Drop, Fail}},
		{RuleTSWindow, b.TSWindow.Action, []Action{Off, Warn, Drop, Fail}},
		{RuleUnitAllowed, b.UnitAllowed.Action, []Action{Off, Warn, Drop, Fail}},
		{RuleTopicMatches, b.TopicMatches.Action, []Action{Off, Warn, Drop, Fail}},
	}
	for _, ch := range checks {
		if !slices.Contains(ch.allowed, ch.action) {
			return fmt.Errorf("%w: rule %s: action %q is not one of %v", ErrInvalidRules, ch.name, ch.action, ch.allowed)
		}
	}
	if b.PayloadSize.MaxBytes < 0 {
		return fmt.Errorf("%w: rule %s: max_bytes %d is negative", ErrInvalidRules, RulePayloadSize, b.PayloadSize.MaxBytes)
	}
	switch b.UnitAllowed.UnknownMeasurement {
	case "allow", "deny":
	default:
		return fmt.Errorf("%w: rule %s: unknown_measurement %q is neither allow nor deny", ErrInvalidRules, RuleUnitAllowed, b.UnitAllowed.UnknownMeasurement)
	}
	for _, m := range slices.Sorted(maps.Keys(b.UnitAllowed.Units)) {
		if len(b.UnitAllowed.Units[m]) == 0 {
			return fmt.Errorf("%w: rule %s: measurement %q has no units", ErrInvalidRules, RuleUnitAllowed, m)
		}
	}
	seen := map[string]bool{}
	for i, r := range c.Custom {
		switch {
		case !namePattern.MatchString(r.Name):
			return fmt.Errorf("%w: custom rule %d: name %q must match %s", ErrInvalidRules, i+1, r.Name, namePattern)
		case isBuiltin(r.Name):
			return fmt.Errorf("%w: custom rule %s: the name is a built-in rule's", ErrInvalidRules, r.Name)
		case seen[r.Name]:
			return fmt.Errorf("%w: custom rule %s: the name appears twice", ErrInvalidRules, r.Name)
		case !slices.Contains([]Action{Off, Warn, Drop, Fail}, r.Action):
			return fmt.Errorf("%w: custom rule %s: action %q is not one of off, warn, drop, fail", ErrInvalidRules, r.Name, r.Action)
		case r.Expr == "":
			return fmt.Errorf("%w: custom rule %s: expr is empty", ErrInvalidRules, r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}
