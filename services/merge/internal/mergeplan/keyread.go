package mergeplan

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/plantlake/plantlake/services/merge/internal/gold"
)

// KeyReader reads the keys of gold rows from record batches without
// copying their strings: a key it returns is valid only while the batch
// is, which is enough to look it up in Data.Index.
type KeyReader struct {
	spec   KeySpec
	ts     *array.Timestamp
	tsMul  int64
	tsDiv  int64
	strs   [4]*array.String // sensor_id, measurement, line, plant; device below
	device *array.String
}

// NewKeyReader returns a reader of spec's keys.
func NewKeyReader(spec KeySpec) *KeyReader { return &KeyReader{spec: spec} }

// Bind points the reader at rec, which must hold the key's columns.
func (kr *KeyReader) Bind(rec arrow.RecordBatch) error {
	col := func(name string) (arrow.Array, error) {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("%w: no column %s", gold.ErrSchema, name)
		}
		return rec.Column(idx[0]), nil
	}
	str := func(name string) (*array.String, error) {
		a, err := col(name)
		if err != nil {
			return nil, err
		}
		s, ok := a.(*array.String)
		if !ok {
			return nil, fmt.Errorf("%w: column %s is %s, want string", gold.ErrSchema, name, a.DataType())
		}
		return s, nil
	}
	*kr = KeyReader{spec: kr.spec}
	a, err := col("ts")
	if err != nil {
		return err
	}
	ts, ok := a.(*array.Timestamp)
	if !ok {
		return fmt.Errorf("%w: column ts is %s, want timestamp", gold.ErrSchema, a.DataType())
	}
	kr.ts, kr.tsMul, kr.tsDiv = ts, 1, 1
	switch ts.DataType().(*arrow.TimestampType).Unit {
	case arrow.Second:
		kr.tsMul = 1e6
	case arrow.Millisecond:
		kr.tsMul = 1e3
	case arrow.Nanosecond:
		kr.tsDiv = 1e3
	}
	for i, c := range []struct {
		name string
		bit  int
	}{{"sensor_id", gold.ColSensorID}, {"measurement", gold.ColMeasurement}, {"line", gold.ColLine}, {"plant", gold.ColPlant}} {
		if kr.spec.Has(c.bit) {
			if kr.strs[i], err = str(c.name); err != nil {
				return err
			}
		}
	}
	if kr.spec.Has(gold.ColDevice) {
		if kr.device, err = str("device"); err != nil {
			return err
		}
	}
	return nil
}

// TS returns row i's ts in microseconds and whether it is not null.
func (kr *KeyReader) TS(i int) (int64, bool) {
	if kr.ts.IsNull(i) {
		return 0, false
	}
	return int64(kr.ts.Value(i)) * kr.tsMul / kr.tsDiv, true
}

// Key returns row i's key.
func (kr *KeyReader) Key(i int) Key {
	var k Key
	if ts, ok := kr.TS(i); ok {
		k.TS = ts
	} else {
		k.Nulls |= 1 << gold.ColTS
	}
	get := func(a *array.String, bit int) string {
		if a.IsNull(i) {
			k.Nulls |= 1 << bit
			return ""
		}
		return a.Value(i)
	}
	if a := kr.strs[0]; a != nil {
		k.SensorID = get(a, gold.ColSensorID)
	}
	if a := kr.strs[1]; a != nil {
		k.Measurement = get(a, gold.ColMeasurement)
	}
	if a := kr.strs[2]; a != nil {
		k.Line = get(a, gold.ColLine)
	}
	if a := kr.strs[3]; a != nil {
		k.Plant = get(a, gold.ColPlant)
	}
	if kr.device != nil {
		k.Device = get(kr.device, gold.ColDevice)
	}
	return k
}

// MayHoldTS reports whether a row of ts may match one of the partition's
// rows: a cheap test before the key is hashed.
func (p *Partition) MayHoldTS(ts int64) bool { return ts >= p.tsMin && ts <= p.tsMax }

// AnyNull reports whether a row of the partition has a null sensor_id or
// ts (then MayHoldTS must not be used to skip null ts rows).
func (p *Partition) AnyNull() bool { return p.anyNull }
