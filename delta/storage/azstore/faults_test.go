package azstore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/azstore"
	"github.com/plantlake/plantlake/delta/storage/storagetest"
	"github.com/plantlake/plantlake/devstack"
)

const internalBody = `<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code><Message>Server encountered an internal error.</Message></Error>`

// TestPutIfAbsentFaults puts a fault-injecting proxy between the store and
// Azurite: a 500 before the write is retried; a write that landed but
// whose answer was lost (500) is recognised as ours by its content; another
// writer's blob still makes ErrExists.
func TestPutIfAbsentFaults(t *testing.T) {
	server := devstack.Azurite(t)
	proxy := storagetest.NewFaultProxy(t, server.Endpoint())
	ctx := context.Background()
	st, err := azstore.New(azstore.Config{Account: devstack.AzuriteAccount, AccountKey: devstack.AzuriteKey,
		Container: "faults", Endpoint: proxy.URL + "/" + devstack.AzuriteAccount})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateContainer(ctx); err != nil {
		t.Fatal(err)
	}

	proxy.Next(storagetest.Reject, http.StatusInternalServerError, internalBody)
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("v0")); err != nil {
		t.Fatalf("put after a 500: %v", err)
	}
	if n := proxy.ConditionalPuts(); n != 2 {
		t.Errorf("%d conditional puts, want 2 (the 500 retried once)", n)
	}

	proxy.Next(storagetest.LoseAnswer, http.StatusInternalServerError, internalBody)
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000001.json", []byte("v1")); err != nil {
		t.Fatalf("put whose answer was lost: %v, want success (the blob is ours)", err)
	}

	if err := st.WriteFile(ctx, "_delta_log/00000000000000000002.json", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	proxy.Next(storagetest.LoseAnswer, http.StatusInternalServerError, internalBody)
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000002.json", []byte("ours")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("put over another writer's blob after a lost answer: %v, want ErrExists", err)
	}
}
