package s3store_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/s3store"
	"github.com/plantlake/plantlake/delta/storage/storagetest"
	"github.com/plantlake/plantlake/devstack"
)

const (
	conflictBody = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource.</Message></Error>`
	internalBody = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`
)

// TestPutIfAbsentFaults puts a fault-injecting proxy between the store and
// moto: a 409 ConditionalRequestConflict is retried; a write that landed
// but whose answer was lost (500) is recognised as ours by its content on
// the retry's 412; another writer's file still makes ErrExists.
func TestPutIfAbsentFaults(t *testing.T) {
	testCredentials(t)
	server := devstack.Moto(t)
	newStore(t, server, "faults", "") // creates the bucket
	proxy := storagetest.NewFaultProxy(t, server.Endpoint())
	ctx := context.Background()
	st, err := s3store.New(ctx, s3store.Config{Bucket: "faults", Endpoint: proxy.URL})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Next(storagetest.Reject, http.StatusConflict, conflictBody)
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000000.json", []byte("v0")); err != nil {
		t.Fatalf("put after a 409: %v", err)
	}
	if n := proxy.ConditionalPuts(); n != 2 {
		t.Errorf("%d conditional puts, want 2 (the 409 retried once)", n)
	}

	proxy.Next(storagetest.LoseAnswer, http.StatusInternalServerError, internalBody)
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000001.json", []byte("v1")); err != nil {
		t.Fatalf("put whose answer was lost: %v, want success (the object is ours)", err)
	}

	proxy.Next(storagetest.LoseAnswer, http.StatusInternalServerError, internalBody)
	if err := st.WriteFile(ctx, "_delta_log/00000000000000000002.json", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutIfAbsent(ctx, "_delta_log/00000000000000000002.json", []byte("ours")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("put over another writer's file after a lost answer: %v, want ErrExists", err)
	}
	b, err := st.ReadFile(ctx, "_delta_log/00000000000000000001.json")
	if err != nil || string(b) != "v1" {
		t.Errorf("version 1 = %q, %v", b, err)
	}
}
