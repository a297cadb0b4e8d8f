package storeuri

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/s3store"
)

// TestOpenDispatches checks that each scheme opens its store (no server
// is contacted by Open).
func TestOpenDispatches(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", "plant")
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")
	t.Setenv("AWS_REGION", "us-east-1")
	dir := t.TempDir()
	ctx := context.Background()
	cases := []struct {
		uri  string
		kind string
	}{
		{dir, "local"},
		{"file://" + dir + "/wh", "local"},
		{"s3://lake/wh", "s3"},
		{"s3a://lake/wh", "s3"},
		{"abfss://lake@plant.dfs.core.windows.net/wh", "azure"},
		{"az://lake/wh", "azure"},
	}
	for _, c := range cases {
		st, err := Open(ctx, c.uri)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.uri, err)
		}
		kind := ""
		switch st.(type) {
		case *storage.Local:
			kind = "local"
		case *s3store.Store:
			kind = "s3"
		case *azstore.Store:
			kind = "azure"
		}
		if kind != c.kind {
			t.Errorf("Open(%q) = %T, want the %s store", c.uri, st, c.kind)
		}
	}
	if l, err := Open(ctx, "file://"+dir+"/wh"); err != nil || l.(*storage.Local).Root() != filepath.Join(dir, "wh") {
		t.Errorf("file:// root = %v, %v", l, err)
	}
	for _, bad := range []string{"", "gs://b/x", "file://remote/x", "hdfs://nn/x"} {
		if _, err := Open(ctx, bad); err == nil {
			t.Errorf("Open(%q) accepted", bad)
		}
	}
}

func TestJoin(t *testing.T) {
	cases := []struct{ uri, rel, want string }{
		{"/srv/wh", "raw/readings", "file:///srv/wh/raw/readings"},
		{"file:///srv/wh/", "raw/readings", "file:///srv/wh/raw/readings"},
		{"s3://lake/wh?endpoint=http://127.0.0.1:9000", "raw/readings", "s3://lake/wh/raw/readings"},
		{"s3://lake", "raw/readings", "s3://lake/raw/readings"},
		{"abfss://lake@plant.dfs.core.windows.net/wh", "raw/readings", "abfss://lake@plant.dfs.core.windows.net/wh/raw/readings"},
	}
	for _, c := range cases {
		if got, err := Join(c.uri, c.rel); err != nil || got != c.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q", c.uri, c.rel, got, err, c.want)
		}
	}
}
