package azstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/storagetest"
	"github.com/plantlake/plantlake/devstack"
)

// azuriteEnv points ParseURI's environment at Azurite's development
// account.
func azuriteEnv(t *testing.T, server *devstack.ObjectServer) {
	t.Setenv("AZURE_STORAGE_ENDPOINT", server.Endpoint()+"/"+devstack.AzuriteAccount)
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", devstack.AzuriteAccount)
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", devstack.AzuriteKey)
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
}

// TestConformance runs the storage contract's suite on Azurite, through
// abfss:// URIs mapped to the Blob endpoint, with a block threshold low
// enough that the large file is staged in blocks.
func TestConformance(t *testing.T) {
	server := devstack.Azurite(t)
	azuriteEnv(t, server)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Store {
		uri := fmt.Sprintf("abfss://conformance@%s.dfs.core.windows.net/run-%d/warehouse", devstack.AzuriteAccount, n.Add(1))
		cfg, err := azstore.ParseURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		cfg.BlockThreshold = 4 << 20
		st, err := azstore.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateContainer(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}, storagetest.Options{LargeFile: 12 << 20})
}

// TestAzURIs checks that az:// and abfss:// name the same blobs.
func TestAzURIs(t *testing.T) {
	server := devstack.Azurite(t)
	azuriteEnv(t, server)
	ctx := context.Background()
	a, err := azstore.Open("az://same/wh")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateContainer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.PutIfAbsent(ctx, "t/_delta_log/00000000000000000000.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	b, err := azstore.Open("abfss://same@" + devstack.AzuriteAccount + ".dfs.core.windows.net/wh/t")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("{}")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("PutIfAbsent through abfss:// = %v, want ErrExists", err)
	}
}

func TestParseURI(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT_NAME", "envacct")
	t.Setenv("AZURE_STORAGE_ENDPOINT", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT_KEY", "")
	t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
	cases := []struct {
		uri  string
		want azstore.Config
	}{
		{"abfss://lake@plant.dfs.core.windows.net/wh/prod", azstore.Config{Account: "plant", Container: "lake", Prefix: "wh/prod"}},
		{"abfss://lake@plant.blob.core.windows.net", azstore.Config{Account: "plant", Container: "lake"}},
		{"az://lake/wh", azstore.Config{Account: "envacct", Container: "lake", Prefix: "wh"}},
		{"az://lake/wh?endpoint=http://127.0.0.1:10000/devstoreaccount1&account=devstoreaccount1",
			azstore.Config{Account: "devstoreaccount1", Container: "lake", Prefix: "wh", Endpoint: "http://127.0.0.1:10000/devstoreaccount1"}},
	}
	for _, c := range cases {
		got, err := azstore.ParseURI(c.uri)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseURI(%q) = %+v, %v; want %+v", c.uri, got, err, c.want)
		}
	}
	for _, bad := range []string{"abfss://plant.dfs.core.windows.net/x", "az:///x", "wasb://c@a/x", "az://c/x?colour=red"} {
		if _, err := azstore.ParseURI(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
