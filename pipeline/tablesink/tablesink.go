// Package tablesink is the pipeline sink of the table-writing hops: it
// writes a batch's rows as Parquet files into one or more target tables'
// folders and commits them through the catalog, each target's commit
// carrying that target's own txn positions.
//
// A sink of several targets commits them in a fixed order, every batch to
// every target (a txn-only commit when a target gets no rows, so that every
// position advances). Each target resumes from its own txn: after a crash
// between two targets' commits, the lagging target's positions are behind,
// the source starts again from the lowest position, and a target skips a
// batch whose positions it already holds. Batches never span a target's
// position (see [Multi.Positions]) and derivation is deterministic, so the
// lagging target gets exactly the rows it misses.
package tablesink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	"github.com/plantlake/plantlake/delta/storage/storeuri"
	"github.com/plantlake/plantlake/pipeline"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// ErrUnsupportedLocation is returned when the catalog places a table
// somewhere this build cannot write.
var ErrUnsupportedLocation = errors.New("unsupported table location")

// Table describes a target table: how to create it when it is missing and
// how to write its data files.
type Table struct {
	// Name is schema.table.
	Name string
	// SchemaJSON is the Delta schema (a struct type as JSON).
	SchemaJSON string
	// PartitionColumns in table order.
	PartitionColumns []string
	// Description and Properties are set when the sink creates the table.
	Description string
	Properties  map[string]string
	// Files are the data-file options (compression, plain columns); the
	// partition columns and values are set per file by the sink.
	Files datafile.Options
}

// File is the rows of one data file: one partition's record batch.
type File struct {
	// PartitionValues are the file's serialized partition values.
	PartitionValues map[string]string
	Record          arrow.RecordBatch
}

// Target is a table open for writing through the catalog.
type Target struct {
	table    Table
	client   catalogv1.CatalogServiceClient
	store    storage.Store
	location string
	log      *slog.Logger
	// operation and its parameters name the commits in the table's history.
	operation string
	params    map[string]string
}

// Open creates t through the catalog if it does not exist (an identical
// existing table is fine; a different one is an error) and opens its folder
// for writing data files.
func Open(ctx context.Context, client catalogv1.CatalogServiceClient, t Table, log *slog.Logger) (*Target, error) {
	resp, err := client.CreateTable(ctx, &catalogv1.CreateTableRequest{
		Name:             t.Name,
		SchemaJson:       t.SchemaJSON,
		PartitionColumns: t.PartitionColumns,
		Description:      t.Description,
		Properties:       t.Properties,
	})
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", t.Name, err)
	}
	info := resp.GetTable()
	if resp.GetCreated() {
		log.Info("created table", "table", info.GetName(), "location", info.GetLocation())
	}
	store, err := OpenLocation(ctx, info.GetLocation())
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", t.Name, err)
	}
	partitionBy := "["
	for i, c := range t.PartitionColumns {
		if i > 0 {
			partitionBy += ","
		}
		partitionBy += strconv.Quote(c)
	}
	partitionBy += "]"
	return &Target{
		table:     t,
		client:    client,
		store:     store,
		location:  info.GetLocation(),
		log:       log,
		operation: "WRITE",
		params:    map[string]string{"mode": "Append", "partitionBy": partitionBy},
	}, nil
}

// Name is the table's name.
func (t *Target) Name() string { return t.table.Name }

// Location is the table folder's URI as the catalog gave it.
func (t *Target) Location() string { return t.location }

// OpenLocation returns a store rooted at a table location as the catalog
// gives it (a folder, file://, s3://, abfss:// or az://; see
// delta/storage/storeuri). An error wraps ErrUnsupportedLocation.
func OpenLocation(ctx context.Context, loc string) (storage.Store, error) {
	store, err := storeuri.Open(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedLocation, err)
	}
	return store, nil
}

// Positions reads each app id's txn version through the catalog.
// ReadVersion is the oldest table version among the answers: a commit
// reading at it aborts if any of the positions changed after it.
func (t *Target) Positions(ctx context.Context, appIDs []string) (pipeline.Positions, error) {
	pos := pipeline.Positions{Versions: make(map[string]int64, len(appIDs)), ReadVersion: -1}
	for _, id := range appIDs {
		resp, err := t.client.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: t.table.Name, AppId: id})
		if err != nil {
			return pipeline.Positions{}, fmt.Errorf("txn version of %s in %s: %w", id, t.table.Name, err)
		}
		if resp.GetFound() {
			pos.Versions[id] = resp.GetVersion()
		}
		if v := resp.GetTableVersion(); pos.ReadVersion < 0 || v < pos.ReadVersion {
			pos.ReadVersion = v
		}
	}
	if pos.ReadVersion < 0 {
		info, err := t.client.GetTable(ctx, &catalogv1.GetTableRequest{Name: t.table.Name})
		if err != nil {
			return pipeline.Positions{}, fmt.Errorf("get table %s: %w", t.table.Name, err)
		}
		pos.ReadVersion = info.GetTable().GetVersion()
	}
	return pos, nil
}

// commitTimeout bounds one commit call when the caller's context has no deadline.
const commitTimeout = 60 * time.Second

// Write is one commit to a target: files to write and the txns that say
// which source positions they cover.
type Write struct {
	// ReadVersion is the table version the positions were read at;
	// ReadAppIDs the app ids whose positions the writer relied on.
	ReadVersion int64
	ReadAppIDs  []string
	Txns        []pipeline.Txn
	Files       []File
	// Rows is the number of rows in Files, for the commit's metrics.
	Rows int
	// Params are added to the commit's operation parameters (commitInfo),
	// e.g. the rules generation a batch was derived with.
	Params map[string]string
}

// Commit writes one data file per File and commits them, with the txns, as
// a blind append that read w.ReadAppIDs at w.ReadVersion. A lost race
// (Aborted) is returned wrapping pipeline.ErrAborted.
func (t *Target) Commit(ctx context.Context, w Write) (pipeline.Committed, error) {
	readVersion, readAppIDs, txns, files, rows := w.ReadVersion, w.ReadAppIDs, w.Txns, w.Files, w.Rows
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commitTimeout)
		defer cancel()
	}
	params := t.params
	if len(w.Params) > 0 {
		params = maps.Clone(t.params)
		maps.Copy(params, w.Params)
	}
	req := &catalogv1.CommitRequest{
		Table:               t.table.Name,
		ReadVersion:         readVersion,
		Operation:           t.operation,
		OperationParameters: params,
		BlindAppend:         true,
		ReadAppIds:          readAppIDs,
	}
	var bytes int64
	for _, f := range files {
		opts := t.table.Files
		opts.PartitionColumns = t.table.PartitionColumns
		opts.PartitionValues = f.PartitionValues
		add, err := datafile.Write(ctx, t.store, opts, f.Record)
		if err != nil {
			return pipeline.Committed{}, fmt.Errorf("write a data file of %s (%v): %w", t.table.Name, f.PartitionValues, err)
		}
		bytes += add.Size
		req.Adds = append(req.Adds, &catalogv1.AddFile{
			Path:             add.Path,
			PartitionValues:  add.PartitionValues,
			Size:             add.Size,
			ModificationTime: add.ModificationTime,
			DataChange:       add.DataChange,
			Stats:            add.Stats,
			Tags:             add.Tags,
		})
	}
	for _, x := range txns {
		req.Txns = append(req.Txns, &catalogv1.Txn{AppId: x.AppID, Version: x.Version})
	}
	req.OperationMetrics = map[string]string{
		"numFiles":       strconv.Itoa(len(req.Adds)),
		"numOutputRows":  strconv.Itoa(rows),
		"numOutputBytes": strconv.FormatInt(bytes, 10),
	}
	resp, err := t.client.Commit(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Aborted {
			return pipeline.Committed{}, fmt.Errorf("%w: %w", pipeline.ErrAborted, err)
		}
		return pipeline.Committed{}, fmt.Errorf("commit to %s at read version %d: %w", t.table.Name, readVersion, err)
	}
	return pipeline.Committed{Version: resp.GetVersion(), Files: len(req.Adds), Bytes: bytes}, nil
}

// Single is the sink of one target table.
type Single struct{ T *Target }

// Positions reads the target's positions.
func (s Single) Positions(ctx context.Context, appIDs []string) (pipeline.Positions, error) {
	return s.T.Positions(ctx, appIDs)
}

// Commit writes and commits c to the target.
func (s Single) Commit(ctx context.Context, c pipeline.Commit[[]File]) (pipeline.Committed, error) {
	return s.T.Commit(ctx, Write{ReadVersion: c.ReadVersion, ReadAppIDs: c.ReadAppIDs, Txns: c.Txns, Files: c.Data, Rows: c.Rows})
}

// Release frees the record batches of files.
func Release(files []File) {
	for _, f := range files {
		f.Record.Release()
	}
}
