package grpcserver_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/servicekit/grpcserver"
	"github.com/plantlake/plantlake/servicekit/grpcserver/tlstest"
	"github.com/plantlake/plantlake/servicekit/identity"
)

// catalogStub registers CatalogService without implementing it: its
// methods have no scopes in the tests, so they need admin.
type catalogStub struct {
	catalogv1.UnimplementedCatalogServiceServer
}

func withCatalogStub(s *grpcserver.Server) { catalogv1.RegisterCatalogServiceServer(s, catalogStub{}) }

const identitiesJSON = `{"identities": [
  {"name": "reader", "tokens": ["read-tok"], "scopes": ["read"]},
  {"name": "operator", "tokens": ["op-tok"], "certificate_names": ["ops.plant.example"], "scopes": ["read", "operate"]},
  {"name": "root", "tokens": ["root-tok"], "scopes": ["admin"]}
]}`

func writeIdentities(t *testing.T, content string) *identity.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identities.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := identity.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// calls are the methods the scope tests call; each returns the call's error.
var calls = map[string]func(context.Context, *grpc.ClientConn) error{
	"GetStatus": func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pipelinev1.NewPipelineServiceClient(c).GetStatus(ctx, &pipelinev1.GetStatusRequest{})
		return err
	},
	"Resume": func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pipelinev1.NewPipelineServiceClient(c).Resume(ctx, &pipelinev1.ResumeRequest{})
		return err
	},
	"TriggerCommit": func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := pipelinev1.NewPipelineServiceClient(c).TriggerCommit(ctx, &pipelinev1.TriggerCommitRequest{})
		return err
	},
	"ListTables": func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := catalogv1.NewCatalogServiceClient(c).ListTables(ctx, &catalogv1.ListTablesRequest{})
		return err
	},
	"Health": func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	},
}

func call(t *testing.T, conn *grpc.ClientConn, name string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return calls[name](ctx, conn)
}

func TestScopes(t *testing.T) {
	f := startWith(t, grpcserver.Options{Identities: writeIdentities(t, identitiesJSON)}, withCatalogStub)
	f.srv.SetServing(true)
	tests := []struct {
		token, call string
		want        codes.Code
	}{
		{"", "GetStatus", codes.Unauthenticated},
		{"guess", "GetStatus", codes.Unauthenticated},
		{"", "Health", codes.OK},
		{"read-tok", "GetStatus", codes.OK},
		{"read-tok", "Resume", codes.PermissionDenied},
		{"read-tok", "TriggerCommit", codes.PermissionDenied},
		{"op-tok", "Resume", codes.FailedPrecondition}, // the handler's own answer: the call got through
		{"op-tok", "TriggerCommit", codes.DeadlineExceeded},
		{"op-tok", "ListTables", codes.PermissionDenied}, // a method without a scope needs admin
		{"root-tok", "ListTables", codes.Unimplemented},
		{"root-tok", "Resume", codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.token+"/"+tt.call, func(t *testing.T) {
			err := call(t, dial(t, f.addr, tt.token), tt.call)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
		})
	}
	for _, want := range []string{
		`level=WARN msg="grpc call" method=/plantlake.pipeline.v1.PipelineService/Resume code=PermissionDenied`,
		`identity=reader err="identity \"reader\" lacks the operate scope that /plantlake.pipeline.v1.PipelineService/Resume needs"`,
		`err="identity \"operator\" lacks the admin scope that /plantlake.catalog.v1.CatalogService/ListTables needs"`,
		`level=WARN msg="grpc call" method=/plantlake.pipeline.v1.PipelineService/GetStatus code=Unauthenticated`,
	} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, f.logs.String())
		}
	}
}

func TestRequireScopes(t *testing.T) {
	f := startWith(t, grpcserver.Options{Identities: writeIdentities(t, identitiesJSON)}, withCatalogStub)
	f.srv.RequireScopes(map[string]identity.Scope{"/plantlake.catalog.v1.CatalogService/": identity.Read})
	f.srv.SetServing(true)
	if err := call(t, dial(t, f.addr, "read-tok"), "ListTables"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListTables by a reader after RequireScopes = %v, want it to reach the handler (Unimplemented)", err)
	}
}

// TestTLS serves TLS with client certificates and calls with the kit's
// client as the services would.
func TestTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "plant"), tlstest.NewCA(t, "elsewhere")
	serverPair := ca.Server(t, "catalog")
	serverTLS, err := grpcserver.LoadTLS(grpcserver.TLSFiles{Cert: serverPair.CertFile, Key: serverPair.KeyFile, ClientCA: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	f := startWith(t, grpcserver.Options{Identities: writeIdentities(t, identitiesJSON), TLS: serverTLS})
	f.srv.SetServing(true)

	ops := ca.Client(t, "someone", "ops.plant.example") // mapped by its DNS name
	stranger := ca.Client(t, "stranger")
	forged := other.Client(t, "forged", "ops.plant.example")
	tests := []struct {
		name          string
		caFile        string
		client        *tlstest.Pair
		token, call   string
		plaintext     bool
		want          codes.Code
		wantMsgSubstr string
	}{
		{name: "plaintext client", plaintext: true, token: "read-tok", call: "GetStatus", want: codes.Unavailable},
		{name: "server not trusted", caFile: other.CertFile, token: "read-tok", call: "GetStatus", want: codes.Unavailable},
		{name: "token over TLS", caFile: ca.CertFile, token: "read-tok", call: "GetStatus", want: codes.OK},
		{name: "health needs nothing", caFile: ca.CertFile, call: "Health", want: codes.OK},
		{name: "no credentials", caFile: ca.CertFile, call: "GetStatus", want: codes.Unauthenticated, wantMsgSubstr: "missing credentials"},
		{name: "client certificate is the identity", caFile: ca.CertFile, client: &ops, call: "Resume", want: codes.FailedPrecondition},
		{name: "certificate not in the file", caFile: ca.CertFile, client: &stranger, call: "GetStatus", want: codes.Unauthenticated,
			wantMsgSubstr: `client certificate "stranger" is not in the identities file`},
		// Go's client sends no certificate the server's CAs did not sign.
		{name: "certificate of another CA", caFile: ca.CertFile, client: &forged, call: "GetStatus", want: codes.Unauthenticated,
			wantMsgSubstr: "missing credentials"},
		{name: "token wins over the certificate", caFile: ca.CertFile, client: &ops, token: "read-tok", call: "Resume", want: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := grpcclient.Options{AuthToken: tt.token}
			if !tt.plaintext {
				var certFile, keyFile string
				if tt.client != nil {
					certFile, keyFile = tt.client.CertFile, tt.client.KeyFile
				}
				if opts.TLS, err = grpcclient.LoadTLS(tt.caFile, certFile, keyFile); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := grpcclient.Dial(f.addr, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			err = call(t, conn, tt.call)
			if got := status.Code(err); got != tt.want || !strings.Contains(status.Convert(err).Message(), tt.wantMsgSubstr) {
				t.Fatalf("call = %v, want %v with %q", err, tt.want, tt.wantMsgSubstr)
			}
		})
	}
}

// TestClientCertificateWithoutIdentities: with a client CA and no
// identities file, any certificate the CA signed proves an admin, and a
// caller without one is refused.
func TestClientCertificateWithoutIdentities(t *testing.T) {
	ca := tlstest.NewCA(t, "plant")
	serverPair := ca.Server(t, "svc")
	serverTLS, err := grpcserver.LoadTLS(grpcserver.TLSFiles{Cert: serverPair.CertFile, Key: serverPair.KeyFile, ClientCA: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	f := startWith(t, grpcserver.Options{TLS: serverTLS})
	f.srv.SetServing(true)
	client := ca.Client(t, "ingest-1")
	for _, tt := range []struct {
		name string
		cert *tlstest.Pair
		want codes.Code
	}{{"with a certificate", &client, codes.FailedPrecondition}, {"without", nil, codes.Unauthenticated}} {
		t.Run(tt.name, func(t *testing.T) {
			var certFile, keyFile string
			if tt.cert != nil {
				certFile, keyFile = tt.cert.CertFile, tt.cert.KeyFile
			}
			cfg, err := grpcclient.LoadTLS(ca.CertFile, certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpcclient.Dial(f.addr, grpcclient.Options{TLS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := call(t, conn, "Resume"); status.Code(err) != tt.want {
				t.Fatalf("Resume = %v, want %v", err, tt.want)
			}
		})
	}
	if want := "identity=cert:ingest-1"; !strings.Contains(f.logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, f.logs.String())
	}
}

// TestTLSReload: after Reload, new connections get the new certificate.
func TestTLSReload(t *testing.T) {
	ca := tlstest.NewCA(t, "plant")
	first, second := ca.Server(t, "first"), ca.Server(t, "second")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	install := func(p tlstest.Pair) {
		for src, dst := range map[string]string{p.CertFile: certFile, p.KeyFile: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first)
	serverTLS, err := grpcserver.LoadTLS(grpcserver.TLSFiles{Cert: certFile, Key: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	f := startWith(t, grpcserver.Options{TLS: serverTLS})
	peerName := func() string {
		cfg, err := grpcclient.LoadTLS(ca.CertFile, "", "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: cfg.RootCAs, ServerName: "localhost", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := peerName(); got != "first" {
		t.Fatalf("server certificate %q, want first", got)
	}
	install(second)
	if err := serverTLS.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := peerName(); got != "second" {
		t.Fatalf("after Reload: server certificate %q, want second", got)
	}
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := serverTLS.Reload(); err == nil {
		t.Fatal("Reload of a broken key succeeded")
	}
	if got := peerName(); got != "second" {
		t.Fatalf("after a failed Reload: server certificate %q, want second", got)
	}
}
