package warehouse

import (
	"context"
	"path/filepath"
	"testing"
)

func TestOpenLocalAndTableURI(t *testing.T) {
	dir := t.TempDir()
	n := Name{Schema: "raw", Table: "readings"}
	for _, uri := range []string{dir, "file://" + dir} {
		loc, err := Open(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Dir != dir || loc.TableDir(n) != filepath.Join(dir, "raw", "readings") {
			t.Errorf("Open(%q): Dir %q, TableDir %q", uri, loc.Dir, loc.TableDir(n))
		}
		if got, want := loc.TableURI(n), "file://"+dir+"/raw/readings/"; got != want {
			t.Errorf("Open(%q).TableURI = %q, want %q", uri, got, want)
		}
	}
}

// TestOpenObjectStores checks the object-store forms --warehouse takes;
// opening contacts no server.
func TestOpenObjectStores(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", "plant")
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")
	n := Name{Schema: "raw", Table: "readings"}
	cases := []struct{ uri, table string }{
		{"s3://lake/wh?region=eu-west-1&endpoint=http://127.0.0.1:9000", "s3://lake/wh/raw/readings/"},
		{"abfss://lake@plant.dfs.core.windows.net/wh", "abfss://lake@plant.dfs.core.windows.net/wh/raw/readings/"},
		{"az://lake", "az://lake/raw/readings/"},
	}
	for _, c := range cases {
		loc, err := Open(context.Background(), c.uri)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.uri, err)
		}
		if loc.Dir != "" || loc.TableDir(n) != "" {
			t.Errorf("Open(%q): a local folder %q", c.uri, loc.Dir)
		}
		if got := loc.TableURI(n); got != c.table {
			t.Errorf("Open(%q).TableURI = %q, want %q", c.uri, got, c.table)
		}
	}
	for _, bad := range []string{"gs://lake/wh", "ftp://host/x", "file://otherhost/x", ""} {
		if _, err := Open(context.Background(), bad); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
	}
}

func TestCheckNoSymlinksOnObjectStores(t *testing.T) {
	if fi, err := CheckNoSymlinks("", "day=1/part-0.parquet"); fi != nil || err != nil {
		t.Errorf("CheckNoSymlinks on an object store = %v, %v", fi, err)
	}
}
