package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Kind says what a published message is expected to become downstream.
type Kind string

// The kinds of message, as written in the ledger's "kind" field.
const (
	// KindReading is a good reading: one gold row.
	KindReading Kind = "reading"
	// KindLate is a good reading whose ts is hours or days old but inside
	// the default 7-day window: one gold row.
	KindLate Kind = "late"
	// KindDuplicate is an earlier reading or late reading published again,
	// byte for byte: it adds no gold row.
	KindDuplicate Kind = "duplicate"
	// KindTooLate is a reading older than the 7-day window: a dead letter
	// with error_code ts_window.
	KindTooLate Kind = "too_late"
	// KindBroken is a broken payload: a dead letter.
	KindBroken Kind = "broken"
)

// Gold reports whether a message of this kind becomes a new gold row.
func (k Kind) Gold() bool { return k == KindReading || k == KindLate }

// DeadLetter reports whether a message of this kind becomes a dead letter.
func (k Kind) DeadLetter() bool { return k == KindTooLate || k == KindBroken }

// Message is one planned publication.
type Message struct {
	// Seq numbers messages from 0 in the order they are planned.
	Seq int64
	// Kind is what the message becomes downstream.
	Kind Kind
	// Topic is the MQTT topic; Payload the bytes published.
	Topic   string
	Payload []byte
	// Due is when the message is to be published, relative to the start.
	Due time.Duration
	// SensorID, Measurement, TSMicros and Value are the expected gold key
	// and value (readings, late and duplicate ones; for too-late readings
	// the key that would have been).
	SensorID    string
	Measurement string
	TSMicros    int64
	Value       float64
	Unit        string
	// Line and Device are the topic's levels.
	Line, Device string
	// DuplicateOf is the Seq of the message a duplicate repeats.
	DuplicateOf int64
	// Broken names the way a broken payload is broken (see BrokenKinds).
	Broken string
	// ErrorCode is the deserialize error_code a dead letter is expected to get.
	ErrorCode string
}

// Shares are the fractions of messages of each special kind; the rest are
// good readings. Each is in [0, 1] and their sum at most 1.
type Shares struct {
	Duplicate float64
	Late      float64
	TooLate   float64
	Broken    float64
}

// PlanConfig sets up a Planner.
type PlanConfig struct {
	// Seed makes the plan reproducible: the same seed, start and settings
	// give the same messages, byte for byte.
	Seed uint64
	// Start is the wall-clock time of message 0; ts values follow from it.
	Start time.Time
	// Rate is readings per second: message i is due at Start + i/Rate.
	Rate float64
	// Lines and DevicesPerLine shape the plant; Measurements are what each
	// device reports.
	Lines          int
	DevicesPerLine int
	Measurements   []string
	// TopicPrefix is the topic's first level (default "plant").
	TopicPrefix string
	// Shares of duplicates, late, too-late and broken messages.
	Shares Shares
	// ClockSkew bounds each device's clock offset (uniform in ±ClockSkew).
	ClockSkew time.Duration
	// ClockDriftPPM bounds each device's clock drift, in parts per million.
	ClockDriftPPM float64
}

// Validate checks the configuration.
func (c *PlanConfig) Validate() error {
	switch {
	case c.Rate <= 0:
		return fmt.Errorf("rate must be positive, got %v", c.Rate)
	case c.Lines < 1:
		return fmt.Errorf("lines must be at least 1, got %d", c.Lines)
	case c.DevicesPerLine < 1:
		return fmt.Errorf("devices per line must be at least 1, got %d", c.DevicesPerLine)
	case len(c.Measurements) == 0:
		return fmt.Errorf("no measurements")
	case c.ClockSkew < 0 || c.ClockSkew > 30*time.Minute:
		return fmt.Errorf("clock skew must be within 0..30m (deserialize refuses ts more than 1h ahead), got %v", c.ClockSkew)
	case c.ClockDriftPPM < 0 || c.ClockDriftPPM > 1000:
		return fmt.Errorf("clock drift must be within 0..1000 ppm, got %v", c.ClockDriftPPM)
	}
	for name, s := range map[string]float64{"duplicate": c.Shares.Duplicate, "late": c.Shares.Late, "too-late": c.Shares.TooLate, "broken": c.Shares.Broken} {
		if s < 0 || s > 1 {
			return fmt.Errorf("%s share must be within 0..1, got %v", name, s)
		}
	}
	if sum := c.Shares.Duplicate + c.Shares.Late + c.Shares.TooLate + c.Shares.Broken; sum > 1 {
		return fmt.Errorf("the shares add up to %v, more than 1", sum)
	}
	for _, m := range c.Measurements {
		if _, ok := Models[m]; !ok {
			return fmt.Errorf("unknown measurement %q", m)
		}
	}
	return nil
}

// series is one device's measurement.
type series struct {
	line, device, measurement, topic string
	sig                              *signal
	clock                            *deviceClock
	lastTS                           int64 // micros of the last on-time reading (even)
}

// deviceClock is a device's clock: a fixed offset and a drift.
type deviceClock struct {
	offset time.Duration
	ppm    float64
}

func (c *deviceClock) read(elapsed time.Duration) time.Duration {
	return elapsed + c.offset + time.Duration(float64(elapsed)*c.ppm/1e6)
}

// Planner produces the messages of a run, one after the other, from the
// seed alone: it never reads the clock.
type Planner struct {
	cfg     PlanConfig
	r       *rand.Rand
	series  []*series
	next    int64
	startUS int64
	// recent holds recent gold-bound messages, the candidates for duplicates.
	recent []*Message
	// lateUsed holds the gold keys of late readings, so that no two share one.
	lateUsed map[goldKey]struct{}
}

type goldKey struct {
	sensor, measurement string
	ts                  int64
}

const recentSize = 64

// deviceKinds name devices after the machines found on a line.
var deviceKinds = []string{"press", "oven", "pump", "mixer", "robot", "conveyor", "chiller", "compressor"}

// NewPlanner returns a Planner for cfg, which must be valid.
func NewPlanner(cfg PlanConfig) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = "plant"
	}
	p := &Planner{
		cfg:      cfg,
		r:        rand.New(rand.NewPCG(cfg.Seed, 0x706c616e746c616b)),
		startUS:  cfg.Start.UnixMicro(),
		lateUsed: map[goldKey]struct{}{},
	}
	n := 0
	for l := 1; l <= cfg.Lines; l++ {
		line := fmt.Sprintf("line%d", l)
		for d := 0; d < cfg.DevicesPerLine; d++ {
			n++
			// Device names are unique across lines: gold's key has no line.
			device := fmt.Sprintf("%s%02d", deviceKinds[(n-1)%len(deviceKinds)], n)
			clock := &deviceClock{}
			if cfg.ClockSkew > 0 {
				clock.offset = time.Duration((p.r.Float64()*2 - 1) * float64(cfg.ClockSkew))
			}
			clock.ppm = (p.r.Float64()*2 - 1) * cfg.ClockDriftPPM
			for _, m := range cfg.Measurements {
				p.series = append(p.series, &series{
					line: line, device: device, measurement: m,
					topic: cfg.TopicPrefix + "/" + line + "/" + device + "/" + m,
					sig:   newSignal(Models[m], p.r),
					clock: clock,
				})
			}
		}
	}
	return p, nil
}

// Series returns how many device measurements the plant has.
func (p *Planner) Series() int { return len(p.series) }

// Next plans the next message.
func (p *Planner) Next() *Message {
	seq := p.next
	p.next++
	due := time.Duration(float64(seq) / p.cfg.Rate * float64(time.Second))
	// Devices take turns: series i reports every len(series) messages.
	s := p.series[seq%int64(len(p.series))]
	m := &Message{Seq: seq, Due: due, Topic: s.topic, Line: s.line, Device: s.device,
		SensorID: s.device, Measurement: s.measurement, Unit: Models[s.measurement].Unit, DuplicateOf: -1}

	sh := p.cfg.Shares
	x := p.r.Float64()
	switch {
	case x < sh.Duplicate && len(p.recent) > 0:
		orig := p.recent[p.r.IntN(len(p.recent))]
		dup := *orig
		dup.Seq, dup.Due, dup.Kind, dup.DuplicateOf = seq, due, KindDuplicate, orig.Seq
		return &dup
	case x < sh.Duplicate+sh.Late:
		// Hours to 5 days old: inside the 7-day window with a day to spare
		// for a pipeline that is behind.
		age := time.Hour + time.Duration(p.r.Int64N(int64(5*24*time.Hour-time.Hour)))
		m.Kind = KindLate
		m.TSMicros = p.freeLateKey(s, p.deviceTS(s, due)-age.Microseconds())
		m.Value = s.sig.next(p.r)
		m.Payload = payload(m.SensorID, m.Measurement, m.Value, m.Unit, m.TSMicros)
	case x < sh.Duplicate+sh.Late+sh.TooLate:
		// 8 to 30 days old: outside the window, a dead letter.
		age := 8*24*time.Hour + time.Duration(p.r.Int64N(int64(22*24*time.Hour)))
		m.Kind = KindTooLate
		m.ErrorCode = "ts_window"
		m.TSMicros = p.deviceTS(s, due) - age.Microseconds()
		m.Value = s.sig.next(p.r)
		m.Payload = payload(m.SensorID, m.Measurement, m.Value, m.Unit, m.TSMicros)
	case x < sh.Duplicate+sh.Late+sh.TooLate+sh.Broken:
		m.Kind = KindBroken
		m.TSMicros = p.deviceTS(s, due)
		m.Value = s.sig.next(p.r)
		b := BrokenKinds[p.r.IntN(len(BrokenKinds))]
		m.Broken, m.ErrorCode = b.Name, b.ErrorCode
		m.Topic, m.Payload = b.make(m, p.r)
	default:
		m.Kind = KindReading
		// On-time readings have even microseconds and rise per series, so
		// they never share a key with each other or with a late reading.
		ts := p.deviceTS(s, due) &^ 1
		if ts <= s.lastTS {
			ts = s.lastTS + 2
		}
		m.TSMicros = ts
		s.lastTS = ts
		m.Value = s.sig.next(p.r)
		m.Payload = payload(m.SensorID, m.Measurement, m.Value, m.Unit, m.TSMicros)
	}
	if m.Kind.Gold() {
		if len(p.recent) < recentSize {
			p.recent = append(p.recent, m)
		} else {
			p.recent[seq%recentSize] = m
		}
	}
	return m
}

// deviceTS is what s's device clock reads when message due is published,
// in Unix microseconds; the sub-millisecond part varies as a real clock's does.
func (p *Planner) deviceTS(s *series, due time.Duration) int64 {
	return p.startUS + s.clock.read(due).Microseconds() + p.r.Int64N(1000)
}

// freeLateKey returns the odd microsecond at or after ts that no other late
// reading of the series has (on-time readings have even ones), so that every
// gold-bound reading is one row. Only late readings are remembered.
func (p *Planner) freeLateKey(s *series, ts int64) int64 {
	ts |= 1
	for {
		k := goldKey{s.device, s.measurement, ts}
		if _, taken := p.lateUsed[k]; !taken {
			p.lateUsed[k] = struct{}{}
			return ts
		}
		ts += 2
	}
}

// payload renders a reading as the devices do.
func payload(sensor, measurement string, value float64, unit string, tsMicros int64) []byte {
	var b bytes.Buffer
	b.Grow(112)
	b.WriteString(`{"sensor_id":`)
	b.WriteString(strconv.Quote(sensor))
	b.WriteString(`,"measurement":`)
	b.WriteString(strconv.Quote(measurement))
	b.WriteString(`,"value":`)
	b.WriteString(FormatValue(value))
	b.WriteString(`,"unit":`)
	b.WriteString(strconv.Quote(unit))
	b.WriteString(`,"ts":`)
	b.WriteString(FormatTS(tsMicros))
	b.WriteByte('}')
	return b.Bytes()
}

// FormatValue writes v as the shortest decimal that reads back as v.
func FormatValue(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// FormatTS writes Unix microseconds as epoch seconds with six decimals.
func FormatTS(us int64) string {
	sign := ""
	if us < 0 {
		sign, us = "-", -us
	}
	return fmt.Sprintf("%s%d.%06d", sign, us/1_000_000, us%1_000_000)
}

// Broken is one way of breaking a payload, with the error_code deserialize
// gives it under the default rules.
type Broken struct {
	// Name identifies the kind in the ledger's "broken" field.
	Name string
	// ErrorCode is the deserialize error_code expected.
	ErrorCode string
	make      func(m *Message, r *rand.Rand) (topic string, payload []byte)
}

func good(m *Message) string {
	return string(payload(m.SensorID, m.Measurement, m.Value, m.Unit, m.TSMicros))
}

// BrokenKinds are the broken payloads the simulator publishes. Each breaks
// exactly one thing, so that its error_code is certain.
var BrokenKinds = []Broken{
	{"truncated_json", "parse.invalid_json", func(m *Message, r *rand.Rand) (string, []byte) {
		g := good(m)
		return m.Topic, []byte(g[:10+r.IntN(len(g)-12)])
	}},
	{"trailing_garbage", "parse.invalid_json", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(good(m) + "}")
	}},
	{"empty", "parse.empty", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte{}
	}},
	{"invalid_utf8", "parse.invalid_utf8", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"unit":"`, "\"unit\":\"\xff\xfe", 1))
	}},
	{"not_object", "parse.not_object", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte("[" + good(m) + "]")
	}},
	{"duplicate_key", "parse.duplicate_key", func(m *Message, _ *rand.Rand) (string, []byte) {
		g := good(m)
		return m.Topic, []byte(g[:len(g)-1] + `,"value":` + FormatValue(m.Value) + "}")
	}},
	{"missing_unit", "parse.missing_field", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `,"unit":`+strconv.Quote(m.Unit), "", 1))
	}},
	{"missing_ts", "parse.missing_field", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `,"ts":`+FormatTS(m.TSMicros), "", 1))
	}},
	{"empty_sensor_id", "parse.empty_field", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"sensor_id":`+strconv.Quote(m.SensorID), `"sensor_id":""`, 1))
	}},
	{"value_as_string", "parse.wrong_type", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"value":`+FormatValue(m.Value), `"value":"`+FormatValue(m.Value)+`"`, 1))
	}},
	{"value_nan_string", "parse.wrong_type", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"value":`+FormatValue(m.Value), `"value":"NaN"`, 1))
	}},
	{"value_null", "parse.wrong_type", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"value":`+FormatValue(m.Value), `"value":null`, 1))
	}},
	{"ts_as_string", "parse.wrong_type", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"ts":`+FormatTS(m.TSMicros), `"ts":"`+time.UnixMicro(m.TSMicros).UTC().Format(time.RFC3339Nano)+`"`, 1))
	}},
	{"value_overflow", "parse.value_not_finite", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"value":`+FormatValue(m.Value), `"value":1e400`, 1))
	}},
	{"ts_year_out_of_range", "parse.ts_out_of_range", func(m *Message, _ *rand.Rand) (string, []byte) {
		// Milliseconds sent as seconds, times 1000 again: beyond the year 9999.
		return m.Topic, []byte(strings.Replace(good(m), `"ts":`+FormatTS(m.TSMicros), `"ts":`+strconv.FormatInt(m.TSMicros, 10), 1))
	}},
	{"wrong_unit", "unit_allowed", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic, []byte(strings.Replace(good(m), `"unit":`+strconv.Quote(m.Unit), `"unit":`+strconv.Quote(wrongUnits[m.Measurement]), 1))
	}},
	{"topic_names_other_device", "topic_matches", func(m *Message, _ *rand.Rand) (string, []byte) {
		// The payload says another device than the topic.
		return m.Topic, []byte(strings.Replace(good(m), `"sensor_id":`+strconv.Quote(m.SensorID), `"sensor_id":`+strconv.Quote(m.SensorID+"x"), 1))
	}},
	{"topic_too_short", "topic_matches", func(m *Message, _ *rand.Rand) (string, []byte) {
		return m.Topic[:strings.LastIndexByte(m.Topic, '/')], []byte(good(m))
	}},
	{"oversized", "payload_size", func(m *Message, _ *rand.Rand) (string, []byte) {
		g := good(m)
		return m.Topic, []byte(g[:len(g)-1] + `,"firmware_dump":"` + strings.Repeat("A", 65536) + `"}`)
	}},
}
