package deserializer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/plantlake/plantlake/delta/datafile/datafiletest"

	"github.com/plantlake/plantlake/services/deserialize/internal/parse"
	"github.com/plantlake/plantlake/services/deserialize/internal/rules"
)

// TestReloadWhileIdle: rules reloaded while no batch is open apply to the
// next batch (not the one after it), and its commits name their generation.
func TestReloadWhileIdle(t *testing.T) {
	pattern, err := parse.NewTopicPattern(parse.DefaultTopicPattern, "plant")
	if err != nil {
		t.Fatal(err)
	}
	rows := New(pattern, rules.Default())
	batch := func(first int64) map[string]string {
		t.Helper()
		rec := datafiletest.RawBatch(memory.NewGoAllocator(), 20, first, time.Now())
		defer rec.Release()
		if err := rows.Append(context.Background(), 1, rec); err != nil {
			t.Fatal(err)
		}
		out := rows.Flush()
		defer rows.Release(out)
		return out[Readings].Params
	}
	batch(0)
	set, err := rules.Parse([]byte("custom:\n  - name: everything_goes\n    action: warn\n    expr: \"true\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	rows.Reload(set)
	params := batch(100)
	if want := strconv.FormatUint(set.Generation(), 10); params["rulesGeneration"] != want {
		t.Errorf("the batch after the reload was derived with generation %s, want %s", params["rulesGeneration"], want)
	}
	if rows.Rules() != set {
		t.Errorf("rules in force: generation %d, want %d", rows.Rules().Generation(), set.Generation())
	}
}
