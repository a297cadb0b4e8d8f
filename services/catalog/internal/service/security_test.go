package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// identitiesFile writes an identities file and returns its path.
func identitiesFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identities.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const catalogIdentities = `{"identities": [
  {"name": "root", "tokens": ["root-tok"], "scopes": ["admin"]},
  {"name": "ingest", "tokens": ["ingest-tok"], "scopes": ["read"], "commit": [{"tables": "raw.*", "app_ids": "ingest/*"}]},
  {"name": "reader", "tokens": ["read-tok"], "scopes": ["read"]},
  {"name": "janitor", "tokens": ["maint-tok"], "scopes": ["read", "maintain"]}
]}`

// TestScopes: with --identities every call is checked against the
// caller's scopes, and a commit against its grants' table and app-id
// patterns.
func TestScopes(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--identities", identitiesFile(t, catalogIdentities), "--auth-token", "root-tok")
	createTable(t, tc.client, "raw.scoped", nil)
	createTable(t, tc.client, "bronze.scoped", nil)
	clients := map[string]catalogv1.CatalogServiceClient{}
	for _, tok := range []string{"", "guess", "ingest-tok", "read-tok", "maint-tok"} {
		conn := dial(t, tc.addr, tok)
		t.Cleanup(func() { conn.Close() })
		clients[tok] = catalogv1.NewCatalogServiceClient(conn)
	}
	commitTo := func(table, appID string) func(catalogv1.CatalogServiceClient) error {
		return func(c catalogv1.CatalogServiceClient) error {
			req := &catalogv1.CommitRequest{Table: table, ReadVersion: 0, Operation: "WRITE",
				Adds: []*catalogv1.AddFile{putFile(t, wh, table, "day=2024-01-01/"+strconv.FormatInt(time.Now().UnixNano(), 36)+".parquet", 10)}}
			if appID != "" {
				req.Txns = []*catalogv1.Txn{{AppId: appID, Version: 1}}
				req.ReadAppIds = []string{appID}
			} else {
				req.BlindAppend = true
			}
			_, err := c.Commit(ctxT(t), req)
			return err
		}
	}
	tests := []struct {
		name, token string
		call        func(catalogv1.CatalogServiceClient) error
		want        codes.Code
		wantMsg     string
	}{
		{"no token", "", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.ListTables(ctxT(t), &catalogv1.ListTablesRequest{})
			return err
		}, codes.Unauthenticated, "missing credentials"},
		{"unknown token", "guess", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.ListTables(ctxT(t), &catalogv1.ListTablesRequest{})
			return err
		}, codes.Unauthenticated, "no identity has it"},
		{"reader reads", "read-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: "raw.scoped"})
			return err
		}, codes.OK, ""},
		{"reader may not commit", "read-tok", commitTo("raw.scoped", ""), codes.PermissionDenied, `"reader" lacks the commit scope`},
		{"ingest commits to raw with its app id", "ingest-tok", commitTo("raw.scoped", "ingest/plant_sensor_readings_raw/0"), codes.OK, ""},
		{"ingest may not move another app's position", "ingest-tok", commitTo("raw.scoped", "deserialize/raw"), codes.PermissionDenied,
			`may not write txn app id "deserialize/raw" to table "raw.scoped"`},
		{"ingest may not commit to bronze", "ingest-tok", commitTo("bronze.scoped", ""), codes.PermissionDenied,
			`may not commit to table "bronze.scoped"`},
		{"ingest creates a table it may commit to", "ingest-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.mine", Columns: []*catalogv1.Column{{Name: "x", Type: "long"}}})
			return err
		}, codes.OK, ""},
		{"ingest may not create other tables", "ingest-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "gold.mine", Columns: []*catalogv1.Column{{Name: "x", Type: "long"}}})
			return err
		}, codes.PermissionDenied, `create table "gold.mine" needs admin or a commit grant for it`},
		{"reader may not create tables", "read-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.mine2", Columns: []*catalogv1.Column{{Name: "x", Type: "long"}}})
			return err
		}, codes.PermissionDenied, `"reader" lacks the commit scope`},
		{"ingest may not maintain", "ingest-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.Checkpoint(ctxT(t), &catalogv1.CheckpointRequest{Table: "raw.scoped"})
			return err
		}, codes.PermissionDenied, "lacks the maintain scope"},
		{"janitor maintains", "maint-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := c.Checkpoint(ctxT(t), &catalogv1.CheckpointRequest{Table: "raw.scoped"})
			return err
		}, codes.OK, ""},
		{"janitor may not commit", "maint-tok", commitTo("raw.scoped", ""), codes.PermissionDenied, "lacks the commit scope"},
		{"reader scans", "read-tok", func(c catalogv1.CatalogServiceClient) error {
			_, err := scanAll(c, &catalogv1.ScanRequest{Table: "bronze.scoped"})
			return err
		}, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(clients[tt.token])
			st := status.Convert(err)
			if st.Code() != tt.want {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tt.want)
			}
			if !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("message %q lacks %q", st.Message(), tt.wantMsg)
			}
		})
	}
}

// scanAll reads a whole Scan stream.
func scanAll(c catalogv1.CatalogServiceClient, req *catalogv1.ScanRequest) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := c.Scan(ctx, req)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += len(resp.GetRows())
	}
}

// TestFieldBounds: free-form fields are bounded, and a request over a
// bound is refused with InvalidArgument naming the field.
func TestFieldBounds(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--max-commit-actions", "10")
	const table = "raw.bounds"
	createTable(t, tc.client, table, nil)
	c := tc.client
	file := func(i int) *catalogv1.AddFile {
		return putFile(t, wh, table, fmt.Sprintf("day=2024-01-01/f%d.parquet", i), 10)
	}
	commit := func(mutate func(*catalogv1.CommitRequest)) func() error {
		return func() error {
			req := &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Operation: "WRITE", Adds: []*catalogv1.AddFile{file(0)}}
			mutate(req)
			_, err := c.Commit(ctxT(t), req)
			return err
		}
	}
	big := func(n int) string { return strings.Repeat("x", n) }
	manyEntries := map[string]string{}
	for i := range 300 {
		manyEntries["k"+strconv.Itoa(i)] = "1"
	}
	tests := []struct {
		name      string
		call      func() error
		wantField string
	}{
		{"10 KB operation", commit(func(r *catalogv1.CommitRequest) { r.Operation = big(10_000) }), "operation"},
		{"long operation parameter", commit(func(r *catalogv1.CommitRequest) {
			r.OperationParameters = map[string]string{"mode": "Append", "predicate": big(20_000)}
		}), `operation_parameters["predicate"]`},
		{"long operation parameter key", commit(func(r *catalogv1.CommitRequest) {
			r.OperationParameters = map[string]string{big(300): "x"}
		}), `operation_parameters["` + big(64) + `..."]`},
		{"many operation metrics", commit(func(r *catalogv1.CommitRequest) { r.OperationMetrics = manyEntries }), "operation_metrics"},
		{"huge stats", commit(func(r *catalogv1.CommitRequest) { r.Adds[0].Stats = big(300_000) }), "adds[0].stats"},
		{"long path", commit(func(r *catalogv1.CommitRequest) { r.Adds[0].Path = big(5000) }), "adds[0].path"},
		{"many tags", commit(func(r *catalogv1.CommitRequest) { r.Adds[0].Tags = manyEntries }), "adds[0].tags"},
		{"long app id", commit(func(r *catalogv1.CommitRequest) {
			r.BlindAppend = false
			r.Txns = []*catalogv1.Txn{{AppId: big(2000), Version: 1}}
		}), "txns[0].app_id"},
		{"long metadata property", commit(func(r *catalogv1.CommitRequest) {
			r.Metadata = &catalogv1.Metadata{Configuration: map[string]string{"delta.x": big(20_000)}}
		}), `metadata.configuration["delta.x"]`},
		{"more actions than --max-commit-actions", commit(func(r *catalogv1.CommitRequest) {
			for i := 1; i <= 10; i++ {
				r.Adds = append(r.Adds, file(i))
			}
		}), "adds"},
		{"long description", func() error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.described", Description: big(5000),
				Columns: []*catalogv1.Column{{Name: "x", Type: "long"}}})
			return err
		}, "description"},
		{"long table property", func() error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.props", Properties: map[string]string{"p": big(20_000)},
				Columns: []*catalogv1.Column{{Name: "x", Type: "long"}}})
			return err
		}, `properties["p"]`},
		{"long column name", func() error {
			_, err := c.CreateTable(ctxT(t), &catalogv1.CreateTableRequest{Name: "raw.cols", Columns: []*catalogv1.Column{{Name: big(2000), Type: "long"}}})
			return err
		}, "columns[0].name"},
		{"long filter value", func() error {
			_, err := scanAll(c, &catalogv1.ScanRequest{Table: table, Filters: []*catalogv1.Filter{
				{Column: "day", Op: catalogv1.FilterOp_FILTER_OP_EQ, Value: big(20_000)}}})
			return err
		}, "filters[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(tt.call())
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code = %v (%s), want InvalidArgument", st.Code(), st.Message())
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if len(fields) != 1 || fields[0] != tt.wantField {
				t.Fatalf("field violations %q (%s), want [%q]", fields, st.Message(), tt.wantField)
			}
		})
	}
	// At the bounds, the same commit goes through.
	if err := commit(func(r *catalogv1.CommitRequest) {
		r.Operation = big(128)
		r.OperationParameters = map[string]string{"predicate": big(16 << 10)}
		for i := 1; i < 10; i++ {
			r.Adds = append(r.Adds, file(i))
		}
	})(); err != nil {
		t.Fatalf("commit at the bounds: %v", err)
	}
}

// vmRSS reads a process's resident set (VmRSS) and its peak (VmHWM) in
// bytes from /proc.
func vmRSS(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak
}

// TestHostileCommitMemory sends the catalog binary the commit that took it
// from 100 MB to 1.25 GB RSS (900,000 adds, 114 MB), the largest that fit
// the request bound, one just over --max-commit-actions, and three of the
// largest at once; it checks each is answered early and the RSS is below
// 256 MiB afterwards (the peak is logged; docs/decisions.md has the
// figures).
func TestHostileCommitMemory(t *testing.T) {
	wh := t.TempDir()
	p := startProc(t, wh, "table-commits-hostile", "--auto-maintenance=false")
	const table = "raw.hostile"
	createTable(t, p.client, table, nil)
	pid := p.cmd.Process.Pid
	before, _ := vmRSS(t, pid)
	adds := func(n, statsBytes int) []*catalogv1.AddFile {
		out := make([]*catalogv1.AddFile, n)
		stats := strings.Repeat("s", statsBytes)
		pv := map[string]string{"day": "2024-01-01"}
		for i := range out {
			out[i] = &catalogv1.AddFile{Path: fmt.Sprintf("day=2024-01-01/part-%07d.parquet", i), Size: 1, DataChange: true, PartitionValues: pv, Stats: stats}
		}
		return out
	}
	// The client may send what the server refuses.
	send := grpc.MaxCallSendMsgSize(256 << 20)
	tests := []struct {
		name      string
		req       *catalogv1.CommitRequest
		want      codes.Code
		wantField string
	}{
		{"900,000 adds, 114 MB", &catalogv1.CommitRequest{Table: table, BlindAppend: true, Adds: adds(900_000, 60)}, codes.ResourceExhausted, ""},
		{"the request bound filled with adds", &catalogv1.CommitRequest{Table: table, BlindAppend: true, Adds: adds(230_000, 0)}, codes.InvalidArgument, "adds"},
		{"100,001 adds", &catalogv1.CommitRequest{Table: table, BlindAppend: true, Adds: adds(100_001, 40)}, codes.InvalidArgument, "adds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Logf("request of %d bytes", proto.Size(tt.req))
			start := time.Now()
			_, err := p.client.Commit(ctxT(t), tt.req, send)
			st := status.Convert(err)
			if st.Code() != tt.want || !strings.Contains(st.Message(), tt.wantField) {
				t.Fatalf("Commit = %v, want %v naming %q", err, tt.want, tt.wantField)
			}
			t.Logf("answered %v in %v", st.Code(), time.Since(start).Round(time.Millisecond))
		})
	}
	t.Run("three at once", func(t *testing.T) {
		reqs := make([]*catalogv1.CommitRequest, 3)
		for i := range reqs {
			reqs[i] = &catalogv1.CommitRequest{Table: table, BlindAppend: true, Adds: adds(230_000, 0)}
		}
		errs := make(chan error, len(reqs))
		for _, req := range reqs {
			go func() {
				_, err := p.client.Commit(ctxT(t), req, send)
				errs <- err
			}()
		}
		for range reqs {
			if err := <-errs; status.Code(err) != codes.InvalidArgument {
				t.Errorf("Commit = %v, want InvalidArgument", err)
			}
		}
	})
	// The last release may wait out its one-second spacing.
	time.Sleep(1500 * time.Millisecond)
	after, peak := vmRSS(t, pid)
	t.Logf("catalog RSS %d MiB before, %d MiB after, peak %d MiB", before>>20, after>>20, peak>>20)
	if after >= 256<<20 {
		t.Errorf("RSS after the hostile commits is %d MiB, want < 256 MiB", after>>20)
	}
}

// TestIdentitiesReloadedBySIGHUP: the catalog binary rereads its identities
// file on SIGHUP.
func TestIdentitiesReloadedBySIGHUP(t *testing.T) {
	wh := t.TempDir()
	path := identitiesFile(t, `{"identities":[{"name":"old","tokens":["old-tok"],"scopes":["read"]}]}`)
	p := startProc(t, wh, "table-commits-sighup", "--identities", path)
	list := func(addr, token string) codes.Code {
		conn := dial(t, addr, token)
		defer conn.Close()
		_, err := catalogv1.NewCatalogServiceClient(conn).ListTables(ctxT(t), &catalogv1.ListTablesRequest{})
		return status.Code(err)
	}
	addr := p.addr
	if got := list(addr, "old-tok"); got != codes.OK {
		t.Fatalf("old token: %v", got)
	}
	if err := os.WriteFile(path, []byte(`{"identities":[{"name":"new","tokens":["new-tok"],"scopes":["read"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for list(addr, "new-tok") != codes.OK {
		if time.Now().After(deadline) {
			t.Fatal("the new token does not work 10 s after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := list(addr, "old-tok"); got != codes.Unauthenticated {
		t.Fatalf("old token after the reload: %v, want Unauthenticated", got)
	}
}
