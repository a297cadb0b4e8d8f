package service

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// TestBadRequests: each bad request gets its status code and a message
// naming what is wrong, and nothing is written outside the table.
func TestBadRequests(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false")
	const table = "raw.bad"
	createTable(t, tc.client, table, nil)
	c := tc.client
	good := putFile(t, wh, table, "day=2024-01-01/good.parquet", 10)
	if _, err := c.Commit(ctxT(t), &catalogv1.CommitRequest{Table: table, ReadVersion: 0, BlindAppend: true, Adds: []*catalogv1.AddFile{good}}); err != nil {
		t.Fatal(err)
	}
	add := func(path string, size int64, pv map[string]string) *catalogv1.AddFile {
		if pv == nil {
			pv = map[string]string{"day": "2024-01-01"}
		}
		return &catalogv1.AddFile{Path: path, Size: size, PartitionValues: pv, DataChange: true}
	}
	commit := func(adds ...*catalogv1.AddFile) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1, BlindAppend: true, Adds: adds})
			return err
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(tableDir(wh, table), "day=2024-01-01", "link.parquet")); err != nil {
		t.Fatal(err)
	}
	schemaJSON := `{"type":"struct","fields":[{"name":"id","type":"string","nullable":true,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}},{"name":"day","type":"date","nullable":true,"metadata":{}}]}`
	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		want     codes.Code
		contains string
	}{
		{"unknown table", func(ctx context.Context) error {
			_, err := c.GetTable(ctx, &catalogv1.GetTableRequest{Name: "raw.nope"})
			return err
		}, codes.NotFound, "raw.nope"},
		{"commit to unknown table", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: "raw.nope", BlindAppend: true, Adds: []*catalogv1.AddFile{good}})
			return err
		}, codes.NotFound, "raw.nope"},
		{"bad table name", func(ctx context.Context) error {
			_, err := c.GetTable(ctx, &catalogv1.GetTableRequest{Name: "../etc.passwd"})
			return err
		}, codes.InvalidArgument, "name"},
		{"create with traversal name", func(ctx context.Context) error {
			_, err := c.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: "raw/../../x.t", Columns: []*catalogv1.Column{{Name: "a", Type: "long"}}})
			return err
		}, codes.InvalidArgument, "name"},
		{"create with bad type", func(ctx context.Context) error {
			_, err := c.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: "raw.t2", Columns: []*catalogv1.Column{{Name: "a", Type: "int64"}}})
			return err
		}, codes.InvalidArgument, "columns"},
		{"create with unknown partition column", func(ctx context.Context) error {
			_, err := c.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: "raw.t3", Columns: []*catalogv1.Column{{Name: "a", Type: "long"}}, PartitionColumns: []string{"b"}})
			return err
		}, codes.InvalidArgument, "partition_columns[0]"},
		{"create differing table", func(ctx context.Context) error {
			_, err := c.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: table, Columns: []*catalogv1.Column{{Name: "id", Type: "long"}}})
			return err
		}, codes.AlreadyExists, table},
		{"create with bad property", func(ctx context.Context) error {
			_, err := c.CreateTable(ctx, &catalogv1.CreateTableRequest{Name: "raw.t4", Columns: []*catalogv1.Column{{Name: "a", Type: "long"}},
				Properties: map[string]string{"delta.checkpointInterval": "often"}})
			return err
		}, codes.InvalidArgument, "delta.checkpointInterval"},
		{"path with ..", commit(add("../../escape.parquet", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"encoded ..", commit(add("day=2024-01-01/%2e%2e/%2e%2e/%2e%2e/x.parquet", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"absolute path", commit(add("/etc/passwd", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"file URI", commit(add("file:///etc/passwd", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"s3 URI", commit(add("s3://bucket/x.parquet", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"into the log", commit(add("_delta_log/00000000000000000009.json", 10, nil)), codes.InvalidArgument, "adds[0].path"},
		{"symlink out of the table", commit(add("day=2024-01-01/link.parquet", 0, nil)), codes.InvalidArgument, "symbolic link"},
		{"missing file", commit(good, add("day=2024-01-01/missing.parquet", 10, nil)), codes.InvalidArgument, "adds[1].path"},
		{"wrong size", commit(add(good.Path, 11, nil)), codes.InvalidArgument, "adds[0].size"},
		{"missing partition value", commit(add(good.Path, 10, map[string]string{"other": "x"})), codes.InvalidArgument, "adds[0].partition_values"},
		{"bad stats", commit(&catalogv1.AddFile{Path: good.Path, Size: 10, PartitionValues: map[string]string{"day": "2024-01-01"}, Stats: "{"}), codes.InvalidArgument, "adds[0].stats"},
		{"empty commit", commit(), codes.InvalidArgument, "no actions"},
		{"read version ahead", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 99, BlindAppend: true, Adds: []*catalogv1.AddFile{good}})
			return err
		}, codes.InvalidArgument, "read_version"},
		{"duplicate txn app id", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Txns: []*catalogv1.Txn{{AppId: "a", Version: 1}, {AppId: "a", Version: 2}}})
			return err
		}, codes.InvalidArgument, "txns[1].app_id"},
		{"blind append removing", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1, BlindAppend: true, Removes: []*catalogv1.RemoveFile{{Path: good.Path}}})
			return err
		}, codes.InvalidArgument, "blind_append"},
		{"remove of a file not in the table", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1, Removes: []*catalogv1.RemoveFile{{Path: "day=2024-01-01/never.parquet"}}})
			return err
		}, codes.InvalidArgument, "removes[0].path"},
		{"incompatible schema", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1,
				Metadata: &catalogv1.Metadata{SchemaJson: schemaJSON, PartitionColumns: []string{"day"}}})
			return err
		}, codes.InvalidArgument, "metadata.schema_json"},
		{"partitioning change", func(ctx context.Context) error {
			_, err := c.Commit(ctx, &catalogv1.CommitRequest{Table: table, ReadVersion: 1,
				Metadata: &catalogv1.Metadata{SchemaJson: schemaJSON}})
			return err
		}, codes.InvalidArgument, "metadata.partition_columns"},
		{"snapshot of a version that does not exist", func(ctx context.Context) error {
			_, err := c.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: table, At: &catalogv1.GetSnapshotRequest_Version{Version: 42}})
			return err
		}, codes.NotFound, "42"},
		{"snapshot of a negative version", func(ctx context.Context) error {
			_, err := c.GetSnapshot(ctx, &catalogv1.GetSnapshotRequest{Table: table, At: &catalogv1.GetSnapshotRequest_Version{Version: -3}})
			return err
		}, codes.InvalidArgument, "version: -3: must be >= 0"},
		{"scan of a negative version", func(ctx context.Context) error {
			return drainScan(ctx, c, &catalogv1.ScanRequest{Table: table, At: &catalogv1.ScanRequest_Version{Version: -1}})
		}, codes.InvalidArgument, "version"},
		{"txn version without app id", func(ctx context.Context) error {
			_, err := c.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: table})
			return err
		}, codes.InvalidArgument, "app_id"},
		{"history with negative limit", func(ctx context.Context) error {
			_, err := c.History(ctx, &catalogv1.HistoryRequest{Table: table, Limit: -1})
			return err
		}, codes.InvalidArgument, "limit"},
		{"vacuum with negative retention", func(ctx context.Context) error {
			_, err := c.Vacuum(ctx, &catalogv1.VacuumRequest{Table: table, Retention: durationpb.New(-1)})
			return err
		}, codes.InvalidArgument, "retention"},
		{"vacuum below the minimum retention", func(ctx context.Context) error {
			_, err := c.Vacuum(ctx, &catalogv1.VacuumRequest{Table: table, Retention: durationpb.New(time.Minute)})
			return err
		}, codes.InvalidArgument, "min-vacuum-retention"},
		{"scan of an unknown column", func(ctx context.Context) error {
			return drainScan(ctx, c, &catalogv1.ScanRequest{Table: table, Columns: []string{"nope"}})
		}, codes.InvalidArgument, "columns[0]"},
		{"scan with unset operator", func(ctx context.Context) error {
			return drainScan(ctx, c, &catalogv1.ScanRequest{Table: table, Filters: []*catalogv1.Filter{{Column: "id", Value: "1"}}})
		}, codes.InvalidArgument, "filters[0].op"},
		{"optimize on a non-partition column", func(ctx context.Context) error {
			_, err := c.Optimize(ctx, &catalogv1.OptimizeRequest{Table: table, PartitionFilters: []*catalogv1.Filter{{Column: "id", Op: catalogv1.FilterOp_FILTER_OP_EQ, Value: "1"}}})
			return err
		}, codes.InvalidArgument, "partition_filters[0].column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxT(t))
			st := status.Convert(err)
			if st.Code() != tt.want || !strings.Contains(st.Message(), tt.contains) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tt.want, tt.contains)
			}
		})
	}
	snap, err := c.GetSnapshot(ctxT(t), &catalogv1.GetSnapshotRequest{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetVersion() != 1 || len(snap.GetFiles()) != 1 {
		t.Fatalf("bad requests changed the table: version %d, %d files", snap.GetVersion(), len(snap.GetFiles()))
	}
}

// drainScan reads a whole Scan stream.
func drainScan(ctx context.Context, c catalogv1.CatalogServiceClient, req *catalogv1.ScanRequest) error {
	_, err := scanRows(ctx, c, req)
	return err
}

// scanRows returns every row of a Scan as JSON-like maps.
func scanRows(ctx context.Context, c catalogv1.CatalogServiceClient, req *catalogv1.ScanRequest) ([]map[string]any, error) {
	stream, err := c.Scan(ctx, req)
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	for {
		resp, err := stream.Recv()
		if err != nil {
			if err.Error() == "EOF" || strings.HasSuffix(err.Error(), "EOF") {
				return rows, nil
			}
			return rows, err
		}
		for _, r := range resp.GetRows() {
			rows = append(rows, r.AsMap())
		}
	}
}

// TestAuth: with --auth-token every call but health and reflection needs it.
func TestAuth(t *testing.T) {
	wh := t.TempDir()
	tc := startCatalog(t, wh, "--auto-maintenance=false", "--auth-token", "s3cret")
	createTable(t, tc.client, "raw.auth", nil)
	for _, tt := range []struct {
		name, token string
		want        codes.Code
	}{{"no token", "", codes.Unauthenticated}, {"wrong token", "nope", codes.Unauthenticated}, {"right token", "s3cret", codes.OK}} {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, tc.addr, tt.token)
			defer conn.Close()
			_, err := catalogv1.NewCatalogServiceClient(conn).ListTables(ctxT(t), &catalogv1.ListTablesRequest{})
			if code(err) != tt.want {
				t.Fatalf("ListTables = %v, want %v", err, tt.want)
			}
		})
	}
	conn := dial(t, tc.addr, "")
	defer conn.Close()
	waitServing(t, conn) // health needs no token
}
