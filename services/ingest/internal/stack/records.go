package stack

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// Topics ingest reads by default.
const (
	TopicRaw       = kafkatopic.Raw
	TopicOversized = kafkatopic.Oversized
)

// Pos is a Kafka record's position.
type Pos struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (p Pos) String() string { return fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset) }

// SeqHeader is the header that carries a generated record's sequence number.
const SeqHeader = "seq"

// Topic is the topic generated record seq goes to: every 20th to the
// oversized topic, the others to the raw topic.
func Topic(seq int) string {
	if seq%20 == 7 {
		return TopicOversized
	}
	return TopicRaw
}

// Payload is generated record seq's value: mostly a sensor reading, every
// 97th empty, every 89th bytes that are not UTF-8.
func Payload(seq int) []byte {
	switch {
	case seq%97 == 3:
		return []byte{}
	case seq%89 == 5:
		return []byte{0xff, 0xfe, byte(seq), 0x00, 0xc3, 0x28, byte(seq >> 8)}
	}
	return fmt.Appendf(nil, `{"sensor_id":"press%02d","measurement":"temperature","value":%d.%d,"unit":"C","ts":%d}`,
		seq%50, 20+seq%70, seq%10, 1_700_000_000+seq/100)
}

// Key is generated record seq's key, its MQTT topic.
func Key(seq int) []byte {
	return fmt.Appendf(nil, "plant/line%d/press%02d/temperature", seq%3, seq%50)
}

// Headers are generated record seq's headers, shaped like the bridge's.
func Headers(seq int, bridgeMillis int64) []kafka.Header {
	h := []kafka.Header{
		{Key: "mqtt_topic", Value: Key(seq)},
		{Key: "mqtt_qos", Value: []byte("1")},
		{Key: "mqtt_retain", Value: []byte("false")},
		{Key: "mqtt_dup", Value: []byte("false")},
		{Key: "bridge_ts_ms", Value: strconv.AppendInt(nil, bridgeMillis, 10)},
		{Key: SeqHeader, Value: strconv.AppendInt(nil, int64(seq), 10)},
	}
	if seq%1000 == 11 {
		h = append(h, kafka.Header{Key: "traceparent", Value: fmt.Appendf(nil, "00-%032x-%016x-01", seq+1, seq+1)})
	}
	return h
}

// Shape is what a generated record looks like besides its key.
type Shape int

// The record shapes the producer generates.
const (
	// BridgeShaped records carry the bridge's six headers and a ~110-byte
	// JSON reading (Payload).
	BridgeShaped Shape = iota
	// Headerless records carry the same key and JSON reading but no
	// headers, as a producer other than the bridge sends them.
	Headerless
	// Large records carry no headers and a LargePayload value.
	Large
)

// String names the shape as the benchmark's --shape flag does.
func (s Shape) String() string {
	switch s {
	case BridgeShaped:
		return "bridge"
	case Headerless:
		return "headerless"
	case Large:
		return "large"
	}
	return "shape(" + strconv.Itoa(int(s)) + ")"
}

// ParseShape reads a shape's name.
func ParseShape(name string) (Shape, error) {
	for _, s := range []Shape{BridgeShaped, Headerless, Large} {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown record shape %q (bridge, headerless, large)", name)
}

// LargePayloadBytes is the size of a Large record's value.
const LargePayloadBytes = 64 << 10

// LargePayload is Large record seq's value: LargePayloadBytes of JSON
// (a reading with a long sample array) that compress about as well as
// real sensor data does.
func LargePayload(seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, LargePayloadBytes), `{"sensor_id":"vib%02d","seq":%d,"samples":[`, seq%50, seq)
	x := uint32(seq)*2654435761 + 1
	for len(b) < LargePayloadBytes-16 {
		x = x*1664525 + 1013904223
		b = strconv.AppendInt(b, int64(x>>20), 10)
		b = append(b, ',')
	}
	b = append(b, "0]}"...)
	for len(b) < LargePayloadBytes {
		b = append(b, ' ')
	}
	return b
}

// Producer produces generated records and remembers where each landed.
type Producer struct {
	p *kafka.Producer
	// Shape is the shape of the records produced (BridgeShaped unless set).
	Shape Shape
	// Positions maps each acknowledged record's position to its sequence number.
	Positions map[Pos]int
}

// NewProducer returns an idempotent producer to brokers (so that every
// record is stored exactly once in Kafka, at a known position).
func NewProducer(brokers string) (*Producer, error) {
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":      brokers,
		"enable.idempotence":     true,
		"linger.ms":              5,
		"batch.size":             1 << 20,
		"message.max.bytes":      1 << 20,
		"go.logs.channel.enable": false,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{p: p, Positions: map[Pos]int{}}, nil
}

// Close closes the producer.
func (pr *Producer) Close() { pr.p.Close() }

// Produce sends records seq in [from, to), each to its Topic, at most
// perSecond a second (0: as fast as possible), and returns when all are
// acknowledged.
func (pr *Producer) Produce(ctx context.Context, from, to, perSecond int) error {
	return pr.produce(ctx, "", from, to, perSecond)
}

// ProduceTo is Produce with every record sent to topic.
func (pr *Producer) ProduceTo(ctx context.Context, topic string, from, to, perSecond int) error {
	return pr.produce(ctx, topic, from, to, perSecond)
}

func (pr *Producer) produce(ctx context.Context, toTopic string, from, to, perSecond int) error {
	delivery := make(chan kafka.Event, 4096)
	errc := make(chan error, 1)
	go func() {
		var first error
		for range to - from {
			ev := <-delivery
			m, ok := ev.(*kafka.Message)
			if !ok {
				continue
			}
			if m.TopicPartition.Error != nil {
				if first == nil {
					first = m.TopicPartition.Error
				}
				continue
			}
			seq := m.Opaque.(int)
			pr.Positions[Pos{*m.TopicPartition.Topic, m.TopicPartition.Partition, int64(m.TopicPartition.Offset)}] = seq
		}
		errc <- first
	}()
	start := time.Now()
	for seq := from; seq < to; seq++ {
		if perSecond > 0 && (seq-from)%1000 == 0 {
			due := start.Add(time.Duration(float64(seq-from) / float64(perSecond) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		topic := toTopic
		if topic == "" {
			topic = Topic(seq)
		}
		m := &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key:            Key(seq),
			Opaque:         seq,
		}
		switch pr.Shape {
		case BridgeShaped:
			m.Value, m.Headers = Payload(seq), Headers(seq, time.Now().UnixMilli())
		case Headerless:
			m.Value = Payload(seq)
		case Large:
			m.Value = LargePayload(seq)
		}
		for {
			err := pr.p.Produce(m, delivery)
			if err == nil {
				break
			}
			if kerr, ok := err.(kafka.Error); !ok || kerr.Code() != kafka.ErrQueueFull {
				return fmt.Errorf("produce record %d: %w", seq, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Row is what a test checks of one raw table row.
type Row struct {
	Pos     Pos
	Payload []byte // nil: null
	Seq     int    // from the seq header; -1 if absent
	Headers int
	// Canon is every column of the row in one canonical text, for
	// comparisons with other readers (see CanonicalPython).
	Canon string
}

// ReadRaw reads every row of the raw table at location (a file:// URI or a
// folder) with delta/reader, at the latest version.
func ReadRaw(ctx context.Context, location string) ([]Row, int64, error) {
	path := location
	if u, err := url.Parse(location); err == nil && u.Scheme == "file" {
		path = u.Path
	}
	store, err := storage.NewLocal(path)
	if err != nil {
		return nil, 0, err
	}
	snap, err := delta.Open(store).Snapshot(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot of %s: %w", path, err)
	}
	scan, err := reader.New(store, snap, reader.Options{Columns: rawColumns})
	if err != nil {
		return nil, 0, err
	}
	defer scan.Close()
	var rows []Row
	for {
		rec, err := scan.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("scan: %w", err)
		}
		topic := rec.Column(0).(*array.String)
		part := rec.Column(1).(*array.Int32)
		off := rec.Column(2).(*array.Int64)
		payload := rec.Column(3).(*array.Binary)
		headers := rec.Column(4).(*array.List)
		hs := headers.ListValues().(*array.Struct)
		hk := hs.Field(0).(*array.String)
		hv := hs.Field(1).(*array.Binary)
		kts := rec.Column(5).(*array.Timestamp)
		key := rec.Column(6).(*array.String)
		bts := rec.Column(7).(*array.Timestamp)
		its := rec.Column(8).(*array.Timestamp)
		idate := rec.Column(9).(*array.Date32)
		for i := 0; i < int(rec.NumRows()); i++ {
			r := Row{Pos: Pos{topic.Value(i), part.Value(i), off.Value(i)}, Seq: -1}
			if payload.IsValid(i) {
				r.Payload = append([]byte{}, payload.Value(i)...)
			}
			start, end := headers.ValueOffsets(i)
			r.Headers = int(end - start)
			var c canon
			c.add(r.Pos.Topic).add(strconv.Itoa(int(r.Pos.Partition))).add(strconv.FormatInt(r.Pos.Offset, 10))
			c.ts(kts, i)
			if key.IsValid(i) {
				c.add(key.Value(i))
			} else {
				c.null()
			}
			var hb bytes.Buffer
			for j := start; j < end; j++ {
				if j > start {
					hb.WriteByte(',')
				}
				hb.WriteString(hk.Value(int(j)))
				hb.WriteByte('=')
				if hv.IsValid(int(j)) {
					hb.WriteString(hex.EncodeToString(hv.Value(int(j))))
				} else {
					hb.WriteString(nullMark)
				}
			}
			c.add(hb.String())
			c.ts(bts, i)
			if payload.IsValid(i) {
				c.add(hex.EncodeToString(payload.Value(i)))
			} else {
				c.null()
			}
			c.ts(its, i)
			c.add(idate.Value(i).ToTime().Format("2006-01-02"))
			r.Canon = c.String()
			for j := start; j < end; j++ {
				if hk.Value(int(j)) == SeqHeader {
					if n, err := strconv.Atoi(string(hv.Value(int(j)))); err == nil {
						r.Seq = n
					}
				}
			}
			rows = append(rows, r)
		}
		rec.Release()
	}
	return rows, snap.Version(), nil
}

// Check compares the raw table's rows with the records produced: every
// produced record exactly once, nothing else, payload bytes and headers as
// produced. It returns a description of at most a few problems.
func Check(rows []Row, produced map[Pos]int) error {
	var problems []string
	report := func(format string, args ...any) {
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	seen := make(map[Pos]bool, len(rows))
	dups := 0
	for _, r := range rows {
		if seen[r.Pos] {
			dups++
			report("duplicate row %s", r.Pos)
			continue
		}
		seen[r.Pos] = true
		seq, ok := produced[r.Pos]
		if !ok {
			report("row %s was never produced", r.Pos)
			continue
		}
		if r.Seq != seq {
			report("row %s has seq %d, produced %d", r.Pos, r.Seq, seq)
		}
		if want := Payload(seq); !bytes.Equal(r.Payload, want) || r.Payload == nil {
			report("row %s payload %q, produced %q", r.Pos, r.Payload, want)
		}
		if want := len(Headers(seq, 0)); r.Headers != want {
			report("row %s has %d headers, produced %d", r.Pos, r.Headers, want)
		}
	}
	missing := 0
	for p := range produced {
		if !seen[p] {
			missing++
			report("record %s (seq %d) missing", p, produced[p])
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d rows for %d records: %d duplicates, %d missing:\n  %s", len(rows), len(produced), dups, missing,
			joinLines(problems))
	}
	return nil
}

// rawColumns are the raw table's columns in the order ReadRaw and
// CanonicalPython use.
var rawColumns = []string{"kafka_topic", "kafka_partition", "kafka_offset", "raw_payload", "headers",
	"kafka_timestamp", "kafka_key", "bridge_ts", "ingest_ts", "ingest_date"}

const nullMark = "<null>"

// canon builds Row.Canon: the columns in table order, separated by "|",
// timestamps as Unix microseconds, binary as hex.
type canon struct{ b bytes.Buffer }

func (c *canon) add(s string) *canon {
	if c.b.Len() > 0 {
		c.b.WriteByte('|')
	}
	c.b.WriteString(s)
	return c
}

func (c *canon) null() { c.add(nullMark) }

func (c *canon) ts(a *array.Timestamp, i int) {
	if !a.IsValid(i) {
		c.null()
		return
	}
	c.add(strconv.FormatInt(int64(a.Value(i)), 10))
}

func (c *canon) String() string { return c.b.String() }

// CanonicalPython is a Python program that prints Row.Canon for every row
// of the Delta table at argv[1], one per line, read with delta-rs
// (the deltalake package).
const CanonicalPython = `
import sys
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

NULL = "<null>"
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
def micros(col):
    return pc.cast(t.column(col), pa.int64()).to_pylist()
cols = {c: t.column(c).to_pylist() for c in ["kafka_topic", "kafka_partition", "kafka_offset", "kafka_key", "headers", "raw_payload", "ingest_date"]}
kts, bts, its = micros("kafka_timestamp"), micros("bridge_ts"), micros("ingest_ts")
def s(v):
    return NULL if v is None else str(v)
out = sys.stdout
for i in range(t.num_rows):
    hs = ",".join(h["key"] + "=" + (NULL if h["value"] is None else h["value"].hex()) for h in (cols["headers"][i] or []))
    p = cols["raw_payload"][i]
    out.write("|".join([cols["kafka_topic"][i], str(cols["kafka_partition"][i]), str(cols["kafka_offset"][i]), s(kts[i]),
        s(cols["kafka_key"][i]), hs, s(bts[i]), NULL if p is None else p.hex(), s(its[i]), str(cols["ingest_date"][i])]) + "\n")
`

func joinLines(s []string) string {
	var b bytes.Buffer
	for i, l := range s {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(l)
	}
	return b.String()
}
