package servicekit_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/servicekit/grpcserver/tlstest"
)

// lockedBuffer is a log sink safe for the kit's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func statusCall(t *testing.T, addr string, opts grpcclient.Options) error {
	t.Helper()
	conn, err := grpcclient.Dial(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = pipelinev1.NewPipelineServiceClient(conn).GetStatus(ctx, &pipelinev1.GetStatusRequest{})
	return err
}

// TestListenAddress: without credentials or TLS the default address (empty
// host) becomes loopback and the start says so; any other address needs
// security or --insecure-listen-any.
func TestListenAddress(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantHost string // "any": the unspecified address (Go reports 0.0.0.0 as [::] on dual-stack hosts)
		wantLog  string
	}{
		{"default host without security", []string{"--grpc-addr", ":0"}, "127.0.0.1", "gRPC listens on loopback only"},
		{"any address, insecure on purpose", []string{"--grpc-addr", "0.0.0.0:0", "--insecure-listen-any"}, "any",
			"--insecure-listen-any: gRPC listens without credentials or TLS"},
		{"default host with a token", []string{"--grpc-addr", ":0", "--auth-token", "t"}, "any", "gRPC callers are checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runKit(t, newStage(0), tt.args)
			host, _, err := net.SplitHostPort(r.grpcAddr)
			if err != nil {
				t.Fatal(err)
			}
			isAny := host == "::" || host == "0.0.0.0"
			if host != tt.wantHost && !(tt.wantHost == "any" && isAny) {
				t.Errorf("listening on %s, want host %s", r.grpcAddr, tt.wantHost)
			}
			if !strings.Contains(r.logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, r.logs.String())
			}
		})
	}
	t.Run("any address without security is refused", func(t *testing.T) {
		shared := config.Shared{}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		shared.Register(fs)
		if err := config.Parse(fs, []string{"--grpc-addr", "0.0.0.0:7999"}); err != nil {
			t.Fatal(err)
		}
		_, err := servicekit.New(context.Background(), servicekit.Options{Name: "x", Config: &shared, LogOutput: io.Discard})
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "--insecure-listen-any") {
			t.Fatalf("New = %v, want ErrInvalid naming --insecure-listen-any", err)
		}
	})
}

// TestIdentitiesReloadOnSIGHUP sends the process a real SIGHUP: the kit
// reloads the identities file, and keeps the old identities when the new
// file is broken.
func TestIdentitiesReloadOnSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identities.json")
	writeFile(t, path, `{"identities":[{"name":"old","tokens":["old-tok"],"scopes":["read"]}]}`)
	r := runKit(t, newStage(0), []string{"--identities", path})
	code := func(token string) codes.Code {
		return status.Code(statusCall(t, r.grpcAddr, grpcclient.Options{AuthToken: token}))
	}
	if got := code("old-tok"); got != codes.OK {
		t.Fatalf("old token before the reload: %v", got)
	}
	hangupUntil := func(done func() bool, what string) {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("after SIGHUP: %s did not happen; log:\n%s", what, r.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	writeFile(t, path, `{"identities":[{"name":"new","tokens":["new-tok"],"scopes":["read"]}]}`)
	hangupUntil(func() bool { return code("new-tok") == codes.OK }, "the new token working")
	if got := code("old-tok"); got != codes.Unauthenticated {
		t.Errorf("old token after the reload: %v, want Unauthenticated", got)
	}
	writeFile(t, path, `{"identities":[{"name":"broken"}]}`)
	hangupUntil(func() bool { return strings.Contains(r.logs.String(), "identities not reloaded") }, "the refusal logged")
	if got := code("new-tok"); got != codes.OK {
		t.Errorf("after a broken file: new token %v, want OK (the previous identities stay)", got)
	}
}

// TestTLSBetweenKits: a service dials another over TLS with its client
// certificate as its identity (kit.Dial with --tls-ca and
// --tls-client-cert), and grpcurl reaches the server with the same files.
func TestTLSBetweenKits(t *testing.T) {
	ca := tlstest.NewCA(t, "plant")
	server, client := ca.Server(t, "svc"), ca.Client(t, "ingest")
	ids := filepath.Join(t.TempDir(), "identities.json")
	writeFile(t, ids, `{"identities":[
		{"name":"ingest","certificate_names":["ingest"],"scopes":["read"]},
		{"name":"ops","tokens":["ops-tok"],"scopes":["read","operate"]}]}`)
	r := runKit(t, newStage(0), []string{"--tls-cert", server.CertFile, "--tls-key", server.KeyFile,
		"--tls-client-ca", ca.CertFile, "--identities", ids, "--grpc-addr", "127.0.0.1:0"})

	shared := config.Shared{GRPCAddr: "127.0.0.1:0"}
	fs := flag.NewFlagSet("caller", flag.ContinueOnError)
	shared.Register(fs, config.Catalog)
	if err := config.Parse(fs, []string{"--tls-ca", ca.CertFile, "--tls-client-cert", client.CertFile, "--tls-client-key", client.KeyFile}); err != nil {
		t.Fatal(err)
	}
	caller, err := servicekit.New(context.Background(), servicekit.Options{Name: "caller", Config: &shared, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := caller.Dial(r.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := pipelinev1.NewPipelineServiceClient(conn).GetStatus(ctx, &pipelinev1.GetStatusRequest{}); err != nil {
		t.Fatalf("GetStatus over mTLS: %v", err)
	}
	if _, err := pipelinev1.NewPipelineServiceClient(conn).Pause(ctx, &pipelinev1.PauseRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Pause by a reader = %v, want PermissionDenied", err)
	}
	if want := `code=PermissionDenied`; !strings.Contains(r.logs.String(), want) || !strings.Contains(r.logs.String(), "identity=ingest") {
		t.Errorf("log lacks the refusal with identity=ingest:\n%s", r.logs.String())
	}

	bin := grpcurlPath(t)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    string
	}{
		{"list needs only the CA", []string{"-cacert", ca.CertFile, "ADDR", "list"}, false, "plantlake.pipeline.v1.PipelineService"},
		{"client certificate", []string{"-cacert", ca.CertFile, "-cert", client.CertFile, "-key", client.KeyFile,
			"ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"}, false, `"state": "STATE_RUNNING"`},
		{"no credentials", []string{"-cacert", ca.CertFile, "ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"}, true, "Code: Unauthenticated"},
		{"token without operate", []string{"-cacert", ca.CertFile, "-cert", client.CertFile, "-key", client.KeyFile,
			"ADDR", "plantlake.pipeline.v1.PipelineService/Pause"}, true, "Code: PermissionDenied"},
		{"token with operate", []string{"-cacert", ca.CertFile, "-H", "authorization: Bearer ops-tok",
			"ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"}, false, `"state": "STATE_RUNNING"`},
		{"plaintext is refused", []string{"-plaintext", "ADDR", "list"}, true, "Failed to"},
		{"untrusted server", []string{"ADDR", "list"}, true, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var args []string
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "ADDR", r.grpcAddr))
			}
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if (err != nil) != tt.wantErr || !strings.Contains(string(out), tt.want) {
				t.Fatalf("grpcurl %v: err = %v (want error: %v), output lacks %q:\n%s", tt.args, err, tt.wantErr, tt.want, out)
			}
		})
	}
}
