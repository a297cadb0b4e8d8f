package reader_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/reader"
	"github.com/plantlake/plantlake/delta/storage"
)

// Write a partitioned table with datafile and read part of it back as JSON rows, as the
// catalog's Scan does.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	st, _ := storage.NewLocal(dir)

	const schema = `{"type":"struct","fields":[` +
		`{"name":"sensor_id","type":"string","nullable":true,"metadata":{}},` +
		`{"name":"value","type":"double","nullable":true,"metadata":{}},` +
		`{"name":"event_date","type":"date","nullable":true,"metadata":{}}]}`
	tbl, err := delta.Create(ctx, st, delta.Metadata{SchemaString: schema, PartitionColumns: []string{"event_date"}}, delta.Protocol{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ds, _ := delta.ParseSchema(schema)
	as, _ := datafile.ArrowSchema(ds)
	b := array.NewRecordBuilder(memory.DefaultAllocator, as)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).AppendValues([]string{"press01", "press02", "press01"}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{87.3, 12.5, 88.1}, nil)
	b.Field(2).(*array.Date32Builder).AppendValues([]arrow.Date32{19849, 19849, 19850}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()

	// One file per partition, one commit for all.
	parts, err := datafile.SplitByPartition(ctx, nil, rec, []string{"event_date"})
	if err != nil {
		fmt.Println(err)
		return
	}
	var actions []delta.Action
	for _, p := range parts {
		add, err := datafile.Write(ctx, st, datafile.Options{PartitionColumns: []string{"event_date"}, PartitionValues: p.Values}, p.Record)
		p.Record.Release()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(add.PartitionValues["event_date"], add.Stats)
		actions = append(actions, delta.Action{Add: &add})
	}
	if _, err := tbl.Commit(ctx, delta.CommitRequest{ReadVersion: 0, Operation: "WRITE", BlindAppend: true, Actions: actions}); err != nil {
		fmt.Println(err)
		return
	}

	snap, _ := tbl.Snapshot(ctx)
	filters, _ := reader.ParseFilters("event_date = '2024-05-06' AND value > 50")
	rows, err := reader.Rows(ctx, st, snap, reader.Options{Filters: filters})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := json.Marshal(rows)
	fmt.Println(string(out))
	// Output:
	// 2024-05-06 {"numRecords":2,"minValues":{"sensor_id":"press01","value":12.5},"maxValues":{"sensor_id":"press02","value":87.3},"nullCount":{"sensor_id":0,"value":0}}
	// 2024-05-07 {"numRecords":1,"minValues":{"sensor_id":"press01","value":88.1},"maxValues":{"sensor_id":"press01","value":88.1},"nullCount":{"sensor_id":0,"value":0}}
	// [{"event_date":"2024-05-06","sensor_id":"press01","value":87.3}]
}
