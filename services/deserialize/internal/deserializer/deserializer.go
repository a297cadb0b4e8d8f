// Package deserializer is deserialize's hop on the pipeline module: the
// rows of raw versions become bronze readings or dead letters, and a batch
// commits to both tables (dead letters, then bronze), each commit carrying
// the last raw version derived as its txn (app id
// deserialize/raw.plant_sensor_readings).
//
// Derivation is deterministic (package derive): the same raw version and
// rules give the same rows, so after a crash between the two tables'
// commits the lagging table gets exactly the rows it misses (see
// pipeline/tablesink.Multi). A rules reload takes effect between batches;
// the generation and digest of the rules a batch was derived with are in
// both commits' commitInfo.
package deserializer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/pipeline"
	"github.com/plantlake/plantlake/pipeline/tablesink"

	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/derive"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// AppID is the txn app id under which bronze and dead letters store the
// last raw version derived from source.
func AppID(source string) string { return "deserialize/" + source }

// Targets in commit order: dead letters first, then bronze (DESIGN.md
// section 4), so that a reading is never in bronze before the dead letters
// of its batch are stored.
const (
	DeadLetters = iota
	Readings
	numTargets
)

// Tables are the two target tables, in commit order.
var Tables = [numTargets]tablesink.Table{
	DeadLetters: {
		Name:             bronze.DeadLettersTable,
		SchemaJSON:       bronze.SchemaString(bronze.DeadLettersSchema),
		PartitionColumns: []string{bronze.DeadLettersPartitionColumn},
		Description:      "Every raw reading that did not parse or broke a rule, with the reason and its bytes as they came (plantlake deserialize).",
		Files:            datafile.Options{Compression: datafile.Snappy, PlainColumns: bronze.DeadLettersPlainColumns},
	},
	Readings: {
		Name:             bronze.ReadingsTable,
		SchemaJSON:       bronze.SchemaString(bronze.ReadingsSchema),
		PartitionColumns: []string{bronze.ReadingsPartitionColumn},
		Description:      "Every raw reading that parsed and passed its rules, typed, with its lineage (plantlake deserialize).",
		Files:            datafile.Options{Compression: datafile.Snappy, PlainColumns: bronze.ReadingsPlainColumns},
	},
}

// Totals counts what the hop derived since start, for status and metrics.
// A batch that is dropped and derived again counts again.
type Totals struct {
	Valid, DeadLettered int64
}

// Rows is the batch: raw record batches go in, bronze and dead-letter
// files come out. Its methods but Reload, Rules and Totals run on the
// runner's goroutine.
type Rows struct {
	deriver     *derive.Deriver
	pending     atomic.Pointer[rules.Set]
	current     atomic.Pointer[rules.Set]
	readings    *bronze.ReadingBuilder
	deadLetters *bronze.DeadLetterBuilder

	raw derive.Raw
	out derive.Output
	// link records a sampled row for tracing (the runner's Host.Link; nil
	// until the source starts).
	link   func(trace.Link)
	rows   int
	bytes  int
	newest int64 // bridge_ts of the newest row, Unix microseconds

	valid, deadLettered atomic.Int64

	// retired holds the final counts of rule sets replaced by reloads, so
	// that per-rule counts stay cumulative across reloads.
	retiredMu sync.Mutex
	retired   map[string]rules.RuleStats
}

// New returns an empty batch deriving with set and topic pattern.
func New(pattern *parse.TopicPattern, set *rules.Set) *Rows {
	r := &Rows{
		retired:     map[string]rules.RuleStats{},
		deriver:     derive.New(pattern, set),
		readings:    bronze.NewReadingBuilder(nil),
		deadLetters: bronze.NewDeadLetterBuilder(nil),
	}
	r.current.Store(set)
	return r
}

// Reload makes set the rules of the next batch. Any goroutine may call it.
func (r *Rows) Reload(set *rules.Set) { r.pending.Store(set) }

// Rules returns the rules in force (the last batch's, or a reload's once
// the batch it waits for has closed).
func (r *Rows) Rules() *rules.Set { return r.current.Load() }

// Totals returns the rows derived since start.
func (r *Rows) Totals() Totals {
	return Totals{Valid: r.valid.Load(), DeadLettered: r.deadLettered.Load()}
}

// SetLink makes Append hand every sampled raw row (one with a traceparent
// header) to link; it implements tablesource.Traced.
func (r *Rows) SetLink(link func(trace.Link)) { r.link = link }

// traced hands the row just derived to r.link if the bridge sampled it.
func (r *Rows) traced(version int64, outcome derive.Outcome) {
	for _, h := range r.raw.Headers {
		if h.Key != derive.HeaderTraceparent {
			continue
		}
		table := Tables[Readings].Name
		if outcome == derive.ToDeadLetters {
			table = Tables[DeadLetters].Name
		}
		if l, ok := pipeline.LinkFromTraceparent(string(h.Value),
			attribute.Int64("plantlake.source.version", version),
			attribute.String("messaging.destination.name", r.raw.KafkaTopic),
			attribute.Int("messaging.destination.partition.id", int(r.raw.KafkaPartition)),
			attribute.Int64("messaging.kafka.offset", r.raw.KafkaOffset),
			attribute.String("plantlake.row.table", table)); ok {
			r.link(l)
		}
		return
	}
}

// Append derives every row of rec, rows raw version added. A fail rule
// halts the runner (pipeline.ErrHalted) with the rule and the row.
func (r *Rows) Append(_ context.Context, version int64, rec arrow.RecordBatch) error {
	rb, err := derive.NewRawBatch(rec)
	if err != nil {
		return fmt.Errorf("raw version %d: %w", version, err)
	}
	if r.rows == 0 {
		// A reload that came while no batch was open applies to this one.
		r.applyReload()
	}
	for i := range rb.Len() {
		rb.Row(i, &r.raw)
		outcome, err := r.deriver.Derive(&r.raw, version, &r.out)
		if err != nil {
			var fe *rules.FailError
			if errors.As(err, &fe) && fe.Row == "" {
				fe.Row = fmt.Sprintf("raw version %d, %s[%d]@%d", version, r.raw.KafkaTopic, r.raw.KafkaPartition, r.raw.KafkaOffset)
			}
			return fmt.Errorf("%w: %w", pipeline.ErrHalted, err)
		}
		switch outcome {
		case derive.ToBronze:
			r.readings.Append(&r.out.Reading)
		case derive.ToDeadLetters:
			r.deadLetters.Append(&r.out.DeadLetter)
		}
		if r.link != nil {
			r.traced(version, outcome)
		}
		r.rows++
		r.bytes += len(r.raw.RawPayload) + len(r.raw.KafkaKey) + 64
		if r.raw.BridgeTSValid && r.raw.BridgeTS > r.newest {
			r.newest = r.raw.BridgeTS
		}
	}
	return nil
}

// Rows is the number of raw rows derived into the batch.
func (r *Rows) Rows() int { return r.rows }

// Bytes is the raw payload bytes derived into the batch.
func (r *Rows) Bytes() int { return r.bytes }

// Newest is the newest bridge_ts in the batch.
func (r *Rows) Newest() time.Time {
	if r.newest == 0 {
		return time.Time{}
	}
	return time.UnixMicro(r.newest)
}

// Flush returns the dead-letter and bronze files of the batch, in commit
// order, and starts a new batch (with reloaded rules, if any).
func (r *Rows) Flush() []tablesink.Output {
	set := r.deriver.Rules()
	params := map[string]string{
		"rulesGeneration": strconv.FormatUint(set.Generation(), 10),
		"rulesDigest":     set.Digest(),
	}
	out := make([]tablesink.Output, numTargets)
	dl := r.deadLetters.Rows()
	out[DeadLetters] = tablesink.Output{Files: files(r.deadLetters.Flush(), bronze.DeadLettersPartitionColumn), Rows: dl, Params: params}
	ok := r.readings.Rows()
	out[Readings] = tablesink.Output{Files: files(r.readings.Flush(), bronze.ReadingsPartitionColumn), Rows: ok, Params: params}
	r.valid.Add(int64(ok))
	r.deadLettered.Add(int64(dl))
	r.reset()
	return out
}

// Release frees the files once written.
func (r *Rows) Release(out []tablesink.Output) { tablesink.ReleaseOutputs(out) }

// Discard drops the batch.
func (r *Rows) Discard() {
	r.readings.Discard()
	r.deadLetters.Discard()
	r.reset()
}

// reset starts a new batch and applies a pending rules reload: rules
// change between batches only.
func (r *Rows) reset() {
	r.rows, r.bytes, r.newest = 0, 0, 0
	r.deriver.Flush()
	r.applyReload()
}

// applyReload makes a pending rules reload the rules in force; it is called
// between batches only.
func (r *Rows) applyReload() {
	if set := r.pending.Swap(nil); set != nil {
		old := r.deriver.Rules()
		r.deriver.SetRules(set) // publishes the old set's last counts
		r.current.Store(set)
		r.retiredMu.Lock()
		for _, st := range old.Snapshot() {
			acc := r.retired[st.Name]
			acc.Name, acc.Action, acc.Stage = st.Name, st.Action, st.Stage
			acc.Passed += st.Passed
			acc.Failed += st.Failed
			r.retired[st.Name] = acc
		}
		r.retiredMu.Unlock()
	}
}

// RuleTotals returns every rule's pass and fail counts since start, across
// reloads: the rules in force first (with their current action), then
// rules that a reload removed.
func (r *Rows) RuleTotals() []rules.RuleStats {
	cur := r.current.Load().Snapshot()
	r.retiredMu.Lock()
	defer r.retiredMu.Unlock()
	seen := make(map[string]bool, len(cur))
	for i := range cur {
		if old, ok := r.retired[cur[i].Name]; ok {
			cur[i].Passed += old.Passed
			cur[i].Failed += old.Failed
		}
		seen[cur[i].Name] = true
	}
	for name, st := range r.retired {
		if !seen[name] {
			cur = append(cur, st)
		}
	}
	return cur
}

// files makes one data file of each date's batch.
func files(batches []bronze.Batch, partitionColumn string) []tablesink.File {
	out := make([]tablesink.File, len(batches))
	for i, b := range batches {
		out[i] = tablesink.File{
			PartitionValues: map[string]string{partitionColumn: datafile.FormatDatePartition(b.Date)},
			Record:          b.Record,
		}
	}
	return out
}
