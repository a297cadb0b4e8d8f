package rawtable

import (
	"testing"

	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
)

// TestDeltaTestsUseThisSchema: the delta library's tests build raw-shaped
// tables from their own copy of the schema (the delta module cannot import
// ingest); the copy must be this one.
func TestDeltaTestsUseThisSchema(t *testing.T) {
	if datafiletest.RawSchemaString != DeltaSchema {
		t.Errorf("delta/datafile/datafiletest.RawSchemaString differs from rawtable.DeltaSchema:\n%s\n%s", datafiletest.RawSchemaString, DeltaSchema)
	}
}
