// Package server is the catalog's gRPC adapter: each handler checks the
// request's bounds (limits.go) and, for a commit, the caller's rights
// (scopes.go), converts the request to the engine's types, calls the
// engine, and converts the result. Errors are mapped to status codes in one
// place, MapError in errors.go.
package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/plantlake/plantlake/delta"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
	"github.com/plantlake/plantlake/services/catalog/internal/catalog"
)

// scanBatchBytes bounds the encoded rows of one ScanResponse.
const scanBatchBytes = 1 << 20

// Server implements catalogv1.CatalogServiceServer over a *catalog.Catalog.
type Server struct {
	catalogv1.UnimplementedCatalogServiceServer
	cat *catalog.Catalog
	log *slog.Logger
	// scanBatch bounds the rows of one ScanResponse.
	scanBatch int
	limits    Limits
}

// New returns the adapter. A zero limits.MaxCommitActions means
// DefaultMaxCommitActions.
func New(cat *catalog.Catalog, log *slog.Logger, limits Limits) *Server {
	if limits.MaxCommitActions <= 0 {
		limits.MaxCommitActions = DefaultMaxCommitActions
	}
	return &Server{cat: cat, log: log, scanBatch: 500, limits: limits}
}

// Register registers the service; the server must map errors with MapError
// and check MethodScopes.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	catalogv1.RegisterCatalogServiceServer(r, s)
}

// CreateTable implements catalogv1.CatalogServiceServer.
func (s *Server) CreateTable(ctx context.Context, req *catalogv1.CreateTableRequest) (*catalogv1.CreateTableResponse, error) {
	if err := authorizeCreate(ctx, req.GetName()); err != nil {
		return nil, err
	}
	if err := checkCreateTable(req); err != nil {
		return nil, err
	}
	def := catalog.TableDef{
		Name: req.GetName(), SchemaJSON: req.GetSchemaJson(), PartitionColumns: req.GetPartitionColumns(),
		Properties: req.GetProperties(), Description: req.GetDescription(),
	}
	for _, c := range req.GetColumns() {
		def.Columns = append(def.Columns, catalog.Column{Name: c.GetName(), Type: c.GetType(), Nullable: c.Nullable == nil || *c.Nullable})
	}
	info, created, err := s.cat.CreateTable(ctx, def)
	if err != nil {
		return nil, err
	}
	return &catalogv1.CreateTableResponse{Table: tableProto(info), Created: created}, nil
}

// GetTable implements catalogv1.CatalogServiceServer.
func (s *Server) GetTable(ctx context.Context, req *catalogv1.GetTableRequest) (*catalogv1.GetTableResponse, error) {
	info, err := s.cat.GetTable(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &catalogv1.GetTableResponse{Table: tableProto(info)}, nil
}

// ListTables implements catalogv1.CatalogServiceServer.
func (s *Server) ListTables(ctx context.Context, req *catalogv1.ListTablesRequest) (*catalogv1.ListTablesResponse, error) {
	infos, err := s.cat.ListTables(ctx, req.GetSchema())
	if err != nil {
		return nil, err
	}
	resp := &catalogv1.ListTablesResponse{}
	for _, info := range infos {
		resp.Tables = append(resp.Tables, tableProto(info))
	}
	return resp, nil
}

func at(version *int64, ts *timestamppb.Timestamp) (catalog.At, error) {
	var a catalog.At
	if version != nil {
		if *version < 0 {
			return a, &catalog.FieldError{Field: "version", Reason: strconv.FormatInt(*version, 10) + ": must be >= 0"}
		}
		a.Version = version
	}
	if ts != nil {
		if err := ts.CheckValid(); err != nil {
			return a, &catalog.FieldError{Field: "timestamp", Reason: err.Error()}
		}
		t := ts.AsTime()
		a.Time = &t
	}
	return a, nil
}

// GetSnapshot implements catalogv1.CatalogServiceServer.
func (s *Server) GetSnapshot(ctx context.Context, req *catalogv1.GetSnapshotRequest) (*catalogv1.GetSnapshotResponse, error) {
	var v *int64
	if x, ok := req.GetAt().(*catalogv1.GetSnapshotRequest_Version); ok {
		v = &x.Version
	}
	a, err := at(v, req.GetTimestamp())
	if err != nil {
		return nil, err
	}
	snap, err := s.cat.Snapshot(ctx, req.GetTable(), a)
	if err != nil {
		return nil, err
	}
	resp := &catalogv1.GetSnapshotResponse{
		Version:          snap.Version,
		Timestamp:        timestamppb.New(snap.Timestamp),
		SchemaJson:       snap.SchemaString,
		Columns:          columnsProto(snap.Schema),
		PartitionColumns: snap.PartitionColumns,
		Properties:       snap.Properties,
		TxnVersions:      snap.Txns,
		Location:         snap.Location,
		Protocol:         protocolProto(snap.Protocol),
		Files:            make([]*catalogv1.AddFile, 0, len(snap.Files)),
	}
	for i := range snap.Files {
		f := addProto(&snap.Files[i], true)
		if req.GetOmitStats() {
			f.Stats = ""
		}
		resp.Files = append(resp.Files, f)
	}
	return resp, nil
}

// GetTransactionVersion implements catalogv1.CatalogServiceServer.
func (s *Server) GetTransactionVersion(ctx context.Context, req *catalogv1.GetTransactionVersionRequest) (*catalogv1.GetTransactionVersionResponse, error) {
	v, found, tv, err := s.cat.TxnVersion(ctx, req.GetTable(), req.GetAppId())
	if err != nil {
		return nil, err
	}
	return &catalogv1.GetTransactionVersionResponse{Version: v, Found: found, TableVersion: tv}, nil
}

// GetChanges implements catalogv1.CatalogServiceServer.
func (s *Server) GetChanges(ctx context.Context, req *catalogv1.GetChangesRequest) (*catalogv1.GetChangesResponse, error) {
	chs, latest, err := s.cat.Changes(ctx, req.GetTable(), req.GetStartVersion(), req.EndVersion, int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &catalogv1.GetChangesResponse{LatestVersion: latest}
	for _, ch := range chs {
		pc := &catalogv1.VersionChange{
			Version: ch.Version, Timestamp: timestamppb.New(ch.Timestamp), Operation: ch.Operation,
			MetadataChanged: ch.MetadataChanged,
		}
		for i := range ch.Adds {
			pc.Adds = append(pc.Adds, addProto(&ch.Adds[i], false))
		}
		for _, r := range ch.Removes {
			pr := &catalogv1.RemoveFile{Path: r.Path, PartitionValues: r.PartitionValues, DataChange: r.DataChange}
			if r.Size != nil {
				pr.Size = *r.Size
			}
			if r.DeletionTimestamp != nil {
				pr.DeletionTimestamp = *r.DeletionTimestamp
			}
			pc.Removes = append(pc.Removes, pr)
		}
		for _, x := range ch.Txns {
			pc.Txns = append(pc.Txns, &catalogv1.Txn{AppId: x.AppID, Version: x.Version})
		}
		resp.Changes = append(resp.Changes, pc)
	}
	return resp, nil
}

// Commit implements catalogv1.CatalogServiceServer.
func (s *Server) Commit(ctx context.Context, req *catalogv1.CommitRequest) (*catalogv1.CommitResponse, error) {
	if err := authorizeCommit(ctx, req); err != nil {
		return nil, err
	}
	if err := s.limits.checkCommit(req); err != nil {
		return nil, err
	}
	cr := &catalog.CommitRequest{
		Table: req.GetTable(), ReadVersion: req.GetReadVersion(), Operation: req.GetOperation(),
		OperationParameters: req.GetOperationParameters(), OperationMetrics: req.GetOperationMetrics(),
		BlindAppend: req.GetBlindAppend(), ReadAppIDs: req.GetReadAppIds(), ReadFiles: req.GetReadFiles(),
		Adds: make([]delta.Add, 0, len(req.GetAdds())),
	}
	for _, a := range req.GetAdds() {
		cr.Adds = append(cr.Adds, delta.Add{
			Path: a.GetPath(), PartitionValues: a.GetPartitionValues(), Size: a.GetSize(),
			ModificationTime: a.GetModificationTime(), DataChange: a.GetDataChange(), Stats: a.GetStats(), Tags: a.GetTags(),
		})
	}
	for _, r := range req.GetRemoves() {
		dr := delta.Remove{Path: r.GetPath(), PartitionValues: r.GetPartitionValues(), DataChange: r.GetDataChange()}
		if r.GetSize() > 0 {
			size := r.GetSize()
			dr.Size = &size
		}
		if r.GetDeletionTimestamp() > 0 {
			ts := r.GetDeletionTimestamp()
			dr.DeletionTimestamp = &ts
		}
		cr.Removes = append(cr.Removes, dr)
	}
	for _, x := range req.GetTxns() {
		cr.Txns = append(cr.Txns, delta.Txn{AppID: x.GetAppId(), Version: x.GetVersion()})
	}
	if m := req.GetMetadata(); m != nil {
		cr.Metadata = &delta.Metadata{SchemaString: m.GetSchemaJson(), PartitionColumns: m.GetPartitionColumns(), Configuration: m.GetConfiguration()}
	}
	res, err := s.cat.Commit(ctx, cr)
	if err != nil {
		return nil, err
	}
	return &catalogv1.CommitResponse{Version: res.Version, CommitTime: timestamppb.New(res.Time)}, nil
}

// History implements catalogv1.CatalogServiceServer.
func (s *Server) History(ctx context.Context, req *catalogv1.HistoryRequest) (*catalogv1.HistoryResponse, error) {
	entries, err := s.cat.History(ctx, req.GetTable(), int(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	resp := &catalogv1.HistoryResponse{}
	for _, e := range entries {
		pe := &catalogv1.HistoryEntry{
			Version: e.Version, Timestamp: timestamppb.New(e.Timestamp), Operation: e.Operation,
			OperationParameters: e.OperationParameters, OperationMetrics: e.OperationMetrics,
			IsBlindAppend: e.IsBlindAppend,
		}
		if e.ReadVersion != nil {
			pe.ReadVersion = *e.ReadVersion
		}
		resp.Entries = append(resp.Entries, pe)
	}
	return resp, nil
}

// Scan implements catalogv1.CatalogServiceServer.
func (s *Server) Scan(req *catalogv1.ScanRequest, stream grpc.ServerStreamingServer[catalogv1.ScanResponse]) error {
	if err := checkScan(req); err != nil {
		return err
	}
	var v *int64
	if x, ok := req.GetAt().(*catalogv1.ScanRequest_Version); ok {
		v = &x.Version
	}
	a, err := at(v, req.GetTimestamp())
	if err != nil {
		return err
	}
	sr := catalog.ScanRequest{Table: req.GetTable(), At: a, Columns: req.GetColumns(), Limit: req.GetLimit()}
	for i, f := range req.GetFilters() {
		op, ok := filterOps[f.GetOp()]
		if !ok {
			return &catalog.FieldError{Field: "filters[" + strconv.Itoa(i) + "].op", Reason: "unset or unknown operator"}
		}
		sr.Filters = append(sr.Filters, catalog.Filter{Column: f.GetColumn(), Op: op, Value: f.GetValue()})
	}
	resp := &catalogv1.ScanResponse{}
	size := 0
	flush := func() error {
		if len(resp.Rows) == 0 {
			return nil
		}
		err := stream.Send(resp)
		resp.Rows, size = resp.Rows[:0], 0
		return err
	}
	err = s.cat.Scan(stream.Context(), sr, func(version int64, row map[string]any) error {
		resp.Version = version
		st, err := rowStruct(row)
		if err != nil {
			return err
		}
		resp.Rows = append(resp.Rows, st)
		size += proto.Size(st)
		// Keep each message well under gRPC's default 4 MiB receive limit.
		if len(resp.Rows) >= s.scanBatch || size >= scanBatchBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

var filterOps = map[catalogv1.FilterOp]string{
	catalogv1.FilterOp_FILTER_OP_EQ: "=", catalogv1.FilterOp_FILTER_OP_NE: "!=",
	catalogv1.FilterOp_FILTER_OP_LT: "<", catalogv1.FilterOp_FILTER_OP_LE: "<=",
	catalogv1.FilterOp_FILTER_OP_GT: ">", catalogv1.FilterOp_FILTER_OP_GE: ">=",
	catalogv1.FilterOp_FILTER_OP_IS_NULL: "is null", catalogv1.FilterOp_FILTER_OP_IS_NOT_NULL: "is not null",
}

// Checkpoint implements catalogv1.CatalogServiceServer.
func (s *Server) Checkpoint(ctx context.Context, req *catalogv1.CheckpointRequest) (*catalogv1.CheckpointResponse, error) {
	v, deleted, err := s.cat.Checkpoint(ctx, req.GetTable(), req.GetCleanupLog())
	if err != nil {
		return nil, err
	}
	return &catalogv1.CheckpointResponse{Version: v, LogFilesDeleted: deleted}, nil
}

// Vacuum implements catalogv1.CatalogServiceServer.
func (s *Server) Vacuum(ctx context.Context, req *catalogv1.VacuumRequest) (*catalogv1.VacuumResponse, error) {
	var retention *time.Duration
	if r := req.GetRetention(); r != nil {
		if err := r.CheckValid(); err != nil || r.AsDuration() < 0 {
			return nil, &catalog.FieldError{Field: "retention", Reason: "must be a non-negative duration"}
		}
		d := r.AsDuration()
		retention = &d
	}
	res, err := s.cat.Vacuum(ctx, req.GetTable(), retention, req.GetDryRun())
	if err != nil {
		return nil, err
	}
	return &catalogv1.VacuumResponse{Files: res.Files, FilesDeleted: int64(len(res.Files)), BytesDeleted: res.Bytes}, nil
}

// Optimize implements catalogv1.CatalogServiceServer.
func (s *Server) Optimize(ctx context.Context, req *catalogv1.OptimizeRequest) (*catalogv1.OptimizeResponse, error) {
	if err := checkOptimize(req); err != nil {
		return nil, err
	}
	or := catalog.OptimizeRequest{Table: req.GetTable(), TargetFileSize: req.GetTargetFileSize(), MaxFiles: int(req.GetMaxFiles())}
	for i, f := range req.GetPartitionFilters() {
		op, ok := filterOps[f.GetOp()]
		if !ok {
			return nil, &catalog.FieldError{Field: "partition_filters[" + strconv.Itoa(i) + "].op", Reason: "unset or unknown operator"}
		}
		or.PartitionFilters = append(or.PartitionFilters, catalog.Filter{Column: f.GetColumn(), Op: op, Value: f.GetValue()})
	}
	res, err := s.cat.Optimize(ctx, or)
	if err != nil {
		return nil, err
	}
	return &catalogv1.OptimizeResponse{
		Version: res.Version, Committed: res.Committed, FilesRemoved: res.FilesRemoved, FilesAdded: res.FilesAdded,
		BytesRemoved: res.BytesRemoved, BytesAdded: res.BytesAdded,
	}, nil
}

// CommitEventProto builds the Kafka announcement of a commit.
func CommitEventProto(ev catalog.CommitEvent) *catalogv1.TableCommitEvent {
	return &catalogv1.TableCommitEvent{
		Table: ev.Table, Version: ev.Version, Operation: ev.Operation,
		FilesAdded: ev.FilesAdded, FilesRemoved: ev.FilesRemoved, RowsAdded: ev.RowsAdded,
		CommitTime: timestamppb.New(ev.Timestamp), Location: ev.Location,
	}
}

func tableProto(info catalog.TableInfo) *catalogv1.Table {
	t := &catalogv1.Table{
		Name: info.Name, Location: info.Location, SchemaJson: info.SchemaString, Columns: columnsProto(info.Schema),
		PartitionColumns: info.PartitionColumns, Properties: info.Properties, Version: info.Version, Id: info.ID,
	}
	if info.CreatedTime != nil {
		t.CreatedTime = timestamppb.New(*info.CreatedTime)
	}
	return t
}

func columnsProto(s *delta.StructType) []*catalogv1.Column {
	if s == nil {
		return nil
	}
	out := make([]*catalogv1.Column, 0, len(s.Fields))
	for _, f := range s.Fields {
		typ := ""
		if p, ok := f.Type.(delta.PrimitiveType); ok {
			typ = string(p)
		} else if b, err := json.Marshal(f.Type); err == nil {
			typ = string(b)
		}
		nullable := f.Nullable
		out = append(out, &catalogv1.Column{Name: f.Name, Type: typ, Nullable: &nullable})
	}
	return out
}

func protocolProto(p delta.Protocol) *catalogv1.Protocol {
	return &catalogv1.Protocol{
		MinReaderVersion: int32(p.MinReaderVersion), MinWriterVersion: int32(p.MinWriterVersion),
		ReaderFeatures: p.ReaderFeatures, WriterFeatures: p.WriterFeatures,
	}
}

// addProto converts an add; canonical says its path is decoded and needs
// encoding for the wire (paths in the log are URI-encoded already).
func addProto(a *delta.Add, canonical bool) *catalogv1.AddFile {
	p := a.Path
	if canonical {
		p = delta.EncodePath(p)
	}
	pv := a.PartitionValues
	if pv == nil {
		pv = map[string]string{}
	}
	return &catalogv1.AddFile{
		Path: p, PartitionValues: maps.Clone(pv), Size: a.Size, ModificationTime: a.ModificationTime,
		DataChange: a.DataChange, Stats: a.Stats, Tags: a.Tags,
	}
}
