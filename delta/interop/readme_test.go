package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/datafile/datafiletest"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/devstack"
)

// readmeRecipe returns the code block that follows `<!-- recipe: name -->` in the repository's
// README, so that the README shows only what this test runs.
func readmeRecipe(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	re := regexp.MustCompile("(?s)<!-- recipe: " + regexp.QuoteMeta(name) + " -->\\s*```[a-z]*\\n(.*?)```")
	m := re.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("README has no recipe %q", name)
	}
	return string(m[1])
}

// TestReadmeDeltaRSRecipe runs the README's delta-rs recipe against a raw-shaped table written by
// this library, and checks what it prints against what was written.
func TestReadmeDeltaRSRecipe(t *testing.T) {
	py := devstack.Python(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.Metadata{Name: "plant_sensor_readings", SchemaString: datafiletest.RawSchemaString, PartitionColumns: datafiletest.RawPartitionColumns}, delta.Protocol{})
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, ctx: ctx, st: st, tbl: tbl, parts: datafiletest.RawPartitionColumns}
	day := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	w.appendRecord(datafiletest.RawBatch(nil, 120, 0, day))
	w.appendRecord(datafiletest.RawBatch(nil, 80, 120, day.Add(24*time.Hour)))

	script := filepath.Join(t.TempDir(), "recipe.py")
	if err := os.WriteFile(script, []byte(readmeRecipe(t, "delta-rs")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), "TABLE="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README recipe failed: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"version 2\n",
		"200 rows\n",
		"rows at version 0: 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("recipe output lacks %q:\n%s", want, got)
		}
	}
	// History lists the newest commit first: version 2, a WRITE.
	if !regexp.MustCompile(`(?m)^` + strconv.Itoa(2) + ` WRITE$`).MatchString(got) {
		t.Errorf("recipe output lacks the history line %q:\n%s", "2 WRITE", got)
	}
}
