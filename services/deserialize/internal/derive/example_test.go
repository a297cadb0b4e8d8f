package derive_test

import (
	"fmt"

	"github.com/plantlake/plantlake/services/deserialize/internal/bronze"
	"github.com/plantlake/plantlake/services/deserialize/internal/derive"
	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// How the packages fit together for one batch of raw rows: derive each row
// with the batch's rule set, append it to the bronze or the dead-letter
// builder, then flush both (one record batch per partition date, to be
// written with delta/datafile) and publish the rule counts.
func Example() {
	set, err := rules.Load("../../rules.default.yaml") // rules.Default() without a file
	if err != nil {
		fmt.Println(err)
		return
	}
	pattern, err := parse.NewTopicPattern(parse.DefaultTopicPattern, "hamburg")
	if err != nil {
		fmt.Println(err)
		return
	}
	d := derive.New(pattern, set)
	readings, deadLetters := bronze.NewReadingBuilder(nil), bronze.NewDeadLetterBuilder(nil)

	ingest := int64(1625000100_000000)
	rows := []derive.Raw{
		{KafkaTopic: "plant_sensor_readings_raw", KafkaOffset: 1, IngestTS: ingest, KafkaKey: []byte("plant/l1/press01/temperature"),
			RawPayload: []byte(`{"sensor_id":"press01","measurement":"temperature","value":87.3,"unit":"C","ts":1625000000.5}`)},
		{KafkaTopic: "plant_sensor_readings_raw", KafkaOffset: 2, IngestTS: ingest, KafkaKey: []byte("plant/l1/press01/temperature"),
			RawPayload: []byte(`{"sensor_id":"press01","measurement":"temperature","value":"NaN","unit":"C","ts":1625000001}`)},
	}
	var out derive.Output
	for i := range rows {
		outcome, err := d.Derive(&rows[i], 7, &out)
		if err != nil { // a fail rule: halt, with err naming the rule and the row
			fmt.Println(err)
			return
		}
		switch outcome {
		case derive.ToBronze:
			readings.Append(&out.Reading)
		case derive.ToDeadLetters:
			dl := &out.DeadLetter
			fmt.Printf("dead letter: %s (%s): %s\n", dl.ErrorCode, dl.Stage, dl.ErrorDetail)
			deadLetters.Append(dl)
		}
	}
	for _, b := range readings.Flush() {
		fmt.Printf("bronze batch %s: %d rows\n", b.Date.Format("2006-01-02"), b.Record.NumRows())
		b.Record.Release()
	}
	for _, b := range deadLetters.Flush() {
		fmt.Printf("dead-letter batch %s: %d rows\n", b.Date.Format("2006-01-02"), b.Record.NumRows())
		b.Record.Release()
	}
	d.Flush()
	for _, st := range set.Snapshot()[:3] {
		fmt.Printf("rule %s: %d passed, %d failed\n", st.Name, st.Passed, st.Failed)
	}
	// Output:
	// dead letter: parse.wrong_type (parse): field value must be a number, got string "NaN"
	// bronze batch 2021-06-29: 1 rows
	// dead-letter batch 2021-06-29: 1 rows
	// rule payload_size: 2 passed, 0 failed
	// rule json_parses: 1 passed, 0 failed
	// rule required_fields: 1 passed, 1 failed
}
