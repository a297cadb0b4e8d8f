package storage_test

import (
	"testing"

	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/storagetest"
)

// TestLocalConformance runs the storage contract's conformance suite on
// the local filesystem store, the reference the cloud stores are held to.
func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		l, err := storage.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}, storagetest.Options{})
}
