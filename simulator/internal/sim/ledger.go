package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Entry is one line of the ledger: a message the simulator published (or
// tried to). The ledger is JSON lines; see simulator/README.md.
type Entry struct {
	// Seq is the message's number in the plan.
	Seq int64 `json:"seq"`
	// Kind is reading, late, duplicate, too_late or broken.
	Kind Kind `json:"kind"`
	// Topic is the MQTT topic; Payload the bytes published (base64 in JSON).
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	// SensorID, Measurement, TSMicros and Value: the gold key and value for
	// reading, late and duplicate entries (absent for the others).
	SensorID    string   `json:"sensor_id,omitempty"`
	Measurement string   `json:"measurement,omitempty"`
	TSMicros    *int64   `json:"ts_us,omitempty"`
	Value       *float64 `json:"value,omitempty"`
	Unit        string   `json:"unit,omitempty"`
	// DuplicateOf is the seq of the entry a duplicate repeats.
	DuplicateOf *int64 `json:"duplicate_of,omitempty"`
	// Broken names the way a broken payload is broken.
	Broken string `json:"broken,omitempty"`
	// ErrorCode is the dead letter's expected error_code (too_late, broken).
	ErrorCode string `json:"error_code,omitempty"`
	// PublishedAt is when the first publish attempt was made.
	PublishedAt time.Time `json:"published_at"`
	// Acked says the broker acknowledged the message (QoS 1 and 2; always
	// true at QoS 0 once written to the connection). false: the run ended
	// first, and the message may or may not have arrived.
	Acked bool `json:"acked"`
	// Attempts is how many times it was published (more than 1 after a
	// broker outage: each attempt may have arrived).
	Attempts int `json:"attempts"`
}

// NewEntry describes m for the ledger.
func NewEntry(m *Message) Entry {
	e := Entry{Seq: m.Seq, Kind: m.Kind, Topic: m.Topic, Payload: m.Payload,
		Broken: m.Broken, ErrorCode: m.ErrorCode}
	if m.Kind.Gold() || m.Kind == KindDuplicate {
		ts, v := m.TSMicros, m.Value
		e.SensorID, e.Measurement, e.TSMicros, e.Value, e.Unit = m.SensorID, m.Measurement, &ts, &v, m.Unit
	}
	if m.Kind == KindDuplicate {
		d := m.DuplicateOf
		e.DuplicateOf = &d
	}
	return e
}

// LedgerWriter writes entries as JSON lines; it is safe for concurrent use.
type LedgerWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error
}

// NewLedgerWriter writes to w.
func NewLedgerWriter(w io.Writer) *LedgerWriter {
	return &LedgerWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

// Write appends one entry; the first error sticks and is returned by Flush.
func (l *LedgerWriter) Write(e Entry) {
	b, err := json.Marshal(e)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if err != nil {
		l.err = fmt.Errorf("ledger: encode seq %d: %w", e.Seq, err)
		return
	}
	b = append(b, '\n')
	if _, err := l.w.Write(b); err != nil {
		l.err = fmt.Errorf("ledger: write: %w", err)
	}
}

// Flush writes what is buffered and returns the first error.
func (l *LedgerWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("ledger: flush: %w", err)
	}
	return nil
}

// ReadLedger reads every entry of a ledger.
func ReadLedger(r io.Reader) ([]Entry, error) {
	dec := json.NewDecoder(r)
	var out []Entry
	for {
		var e Entry
		err := dec.Decode(&e)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("ledger: entry %d: %w", len(out)+1, err)
		}
		out = append(out, e)
	}
}
