package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Model is how one measurement behaves: the unit it is reported in (one the
// deserialize default rules allow for it), the level it wanders around, how
// far it drifts and how much it jitters from one reading to the next.
type Model struct {
	// Unit is the payload's unit.
	Unit string
	// Base is the level a healthy machine settles at.
	Base float64
	// Spread is how far (one standard deviation) devices differ from Base.
	Spread float64
	// Drift is the standard deviation of the slow random walk per reading.
	Drift float64
	// Revert pulls the walk back towards the device's level (0..1 per reading).
	Revert float64
	// Jitter is the standard deviation of the noise on each reading.
	Jitter float64
	// Min and Max clamp the value to what the instrument can report.
	Min, Max float64
	// Decimals is the instrument's resolution.
	Decimals int
}

// Models are the measurements the simulator knows, with units from the
// deserialize default rules (services/deserialize/rules.default.yaml).
var Models = map[string]Model{
	"temperature": {Unit: "C", Base: 72, Spread: 12, Drift: 0.05, Revert: 0.002, Jitter: 0.15, Min: -20, Max: 350, Decimals: 2},
	"pressure":    {Unit: "bar", Base: 6.2, Spread: 0.8, Drift: 0.004, Revert: 0.003, Jitter: 0.02, Min: 0, Max: 40, Decimals: 3},
	"humidity":    {Unit: "%", Base: 45, Spread: 8, Drift: 0.03, Revert: 0.002, Jitter: 0.3, Min: 0, Max: 100, Decimals: 1},
	"vibration":   {Unit: "mm/s", Base: 2.8, Spread: 0.9, Drift: 0.01, Revert: 0.004, Jitter: 0.25, Min: 0, Max: 45, Decimals: 2},
	"current":     {Unit: "A", Base: 16, Spread: 4, Drift: 0.02, Revert: 0.003, Jitter: 0.2, Min: 0, Max: 400, Decimals: 2},
	"voltage":     {Unit: "V", Base: 400, Spread: 3, Drift: 0.05, Revert: 0.01, Jitter: 0.6, Min: 0, Max: 690, Decimals: 1},
	"power":       {Unit: "kW", Base: 11, Spread: 3, Drift: 0.02, Revert: 0.003, Jitter: 0.15, Min: 0, Max: 500, Decimals: 2},
	"flow":        {Unit: "l/min", Base: 120, Spread: 20, Drift: 0.1, Revert: 0.003, Jitter: 1.2, Min: 0, Max: 2000, Decimals: 1},
	"speed":       {Unit: "rpm", Base: 1480, Spread: 30, Drift: 0.5, Revert: 0.01, Jitter: 2, Min: 0, Max: 6000, Decimals: 0},
}

// wrongUnits are units the default rules refuse for a measurement.
var wrongUnits = map[string]string{
	"temperature": "psi", "pressure": "C", "humidity": "bar", "vibration": "A",
	"current": "rpm", "voltage": "l/min", "power": "%", "flow": "kW", "speed": "mm/s",
}

// MeasurementNames lists the known measurements, sorted.
func MeasurementNames() []string {
	names := make([]string, 0, len(Models))
	for n := range Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseMeasurements splits a comma-separated list and checks every name is
// known.
func ParseMeasurements(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, m := range strings.Split(list, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if _, ok := Models[m]; !ok {
			return nil, fmt.Errorf("unknown measurement %q (known: %s)", m, strings.Join(MeasurementNames(), ", "))
		}
		if seen[m] {
			return nil, fmt.Errorf("measurement %q listed twice", m)
		}
		seen[m] = true
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no measurement given")
	}
	return out, nil
}

// signal is the state of one device's measurement: its own level and the
// slow walk around it.
type signal struct {
	model Model
	level float64
	walk  float64
}

func newSignal(m Model, r *rand.Rand) *signal {
	return &signal{model: m, level: m.Base + r.NormFloat64()*m.Spread}
}

// next advances the walk and returns the next reading, rounded to the
// instrument's resolution and clamped to its range.
func (s *signal) next(r *rand.Rand) float64 {
	m := s.model
	s.walk += r.NormFloat64()*m.Drift - s.walk*m.Revert
	v := s.level + s.walk + r.NormFloat64()*m.Jitter
	v = math.Max(m.Min, math.Min(m.Max, v))
	p := math.Pow10(m.Decimals)
	v = math.Round(v*p) / p
	if v == 0 {
		v = 0 // no negative zero in payloads
	}
	return v
}
