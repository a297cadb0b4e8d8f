package devstack_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plantlake/plantlake/devstack"
)

// TestPythonWritesDeltaTable checks that the venv's deltalake and pyarrow are
// the pinned versions and can write a Delta table, the first thing the
// interop tests do.
func TestPythonWritesDeltaTable(t *testing.T) {
	py := devstack.Python(t)
	table := filepath.Join(t.TempDir(), "table")
	script := `
import sys, deltalake, pyarrow as pa
print(deltalake.__version__, pa.__version__)
deltalake.write_deltalake(sys.argv[1], pa.table({"x": [1, 2, 3]}))
print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows)
`
	out, err := exec.Command(py, "-c", script, table).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := devstack.DeltalakeVersion + " " + devstack.PyarrowVersion + "\n3\n"
	if string(out) != want {
		t.Errorf("python printed %q, want %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(table, "_delta_log", "00000000000000000000.json")); err != nil {
		t.Errorf("no first commit: %v", err)
	}
	cache, err := devstack.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(py, cache+string(filepath.Separator)) {
		t.Errorf("python %s is not under the cache %s", py, cache)
	}
}
