package service

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
)

// TestUnixSocket serves the catalog on --unix-socket beside TCP: a client
// dialing unix:///path as the hops do (grpcclient) creates a table and
// commits through the socket, health answers there, the TCP client sees the
// commit, and a graceful stop removes the socket.
func TestUnixSocket(t *testing.T) {
	wh := t.TempDir()
	sock := filepath.Join(t.TempDir(), "catalog.sock")
	tc := startCatalog(t, wh, "--unix-socket", sock, "--announce=false")
	conn, err := grpcclient.Dial("unix://"+sock, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitServing(t, conn)
	client := catalogv1.NewCatalogServiceClient(conn)
	createTable(t, client, "s.t", nil)
	add := putFile(t, wh, "s.t", "day=2024-01-01/a.parquet", 3)
	resp, err := client.Commit(ctxT(t), &catalogv1.CommitRequest{Table: "s.t", ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{add}})
	if err != nil || resp.GetVersion() != 1 {
		t.Fatalf("Commit over the socket: %v, %v", resp, err)
	}
	snap, err := tc.client.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: "s.t"})
	if err != nil || snap.GetVersion() != 1 || len(snap.GetFiles()) != 1 {
		t.Fatalf("GetSnapshot over TCP after the socket's commit: %v, %v", snap, err)
	}
	tc.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the socket is still there after the catalog stopped: %v", err)
	}
}
