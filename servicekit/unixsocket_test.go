package servicekit_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
)

// runOnSocket runs a kit that also serves on the Unix socket at path, or
// returns Run's error when Run ended before listening.
func runOnSocket(t *testing.T, path string) (*running, error) {
	t.Helper()
	return startKit(t, config.Shared{GRPCAddr: "127.0.0.1:0", MetricsAddr: ""}, nil, newStage(0), path)
}

func dialSocket(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcclient.Dial("unix://"+path, grpcclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func checkServing(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health over the socket: %v, %v", resp, err)
	}
}

// TestUnixSocket serves a kit on a Unix socket beside TCP: health, the
// service and reflection (grpcurl -unix) answer on it, the socket is
// 0660, its path is in the serving record, and a graceful stop removes it.
func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "test.sock") // run/ does not exist yet
	r, err := runOnSocket(t, path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != servicekit.UnixSocketMode {
		t.Errorf("socket mode %v, want a socket with %v", fi.Mode(), servicekit.UnixSocketMode)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the socket's folder holds %d entries, want the socket alone", len(entries))
	}
	conn := dialSocket(t, path)
	checkServing(t, conn)
	resp, err := pipelinev1.NewPipelineServiceClient(conn).GetStatus(context.Background(), &pipelinev1.GetStatusRequest{})
	if err != nil || resp.GetStatus().GetService() != "test" {
		t.Fatalf("GetStatus over the socket: %v, %v", resp, err)
	}
	out, err := exec.Command(grpcurlPath(t), "-plaintext", "-unix", path, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "plantlake.pipeline.v1.PipelineService") {
		t.Fatalf("grpcurl -unix list: %v\n%s", err, out)
	}
	if !strings.Contains(r.logs.String(), "unix="+path) {
		t.Errorf("the serving record does not name the socket:\n%s", r.logs.String())
	}

	r.stop()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for the cleanup
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a graceful stop the socket is still there: %v", err)
	}
}

// TestUnixSocketStale replaces the socket of a process that died (nobody
// accepts on it) and refuses a socket that is in use and a file that is not
// a socket.
func TestUnixSocketStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	// A dead process's socket: bound, then closed without removing it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("the stale socket accepts connections")
	}
	if _, err := runOnSocket(t, path); err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	checkServing(t, dialSocket(t, path))

	// The socket is in use now: a second server must not take it over.
	if _, err := runOnSocket(t, path); err == nil || !strings.Contains(err.Error(), "another process listens on it") {
		t.Fatalf("a second server on a socket in use: %v", err)
	}
	checkServing(t, dialSocket(t, path))

	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runOnSocket(t, file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("a regular file as the socket path: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was touched: %q, %v", b, err)
	}

	long := filepath.Join(dir, strings.Repeat("x", 120))
	if _, err := runOnSocket(t, long); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("a path too long for a socket: %v", err)
	}
}
