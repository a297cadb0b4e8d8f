// Package rawsink commits raw-table batches through the catalog: it creates
// the raw table if it is missing, writes each batch's rows as Parquet files
// into the table's folder, and commits them with their Kafka offsets (txn
// actions) as one Delta version.
package rawsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/delta/datafile"
	"github.com/plantlake/plantlake/delta/storage"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"

	"github.com/plantlake/plantlake/services/ingest/internal/rawtable"
)

// ErrUnsupportedLocation is returned when the catalog places the table
// somewhere this build cannot write (only file:// warehouses for now).
var ErrUnsupportedLocation = errors.New("unsupported table location")

// Sink is the raw table, written through the catalog.
type Sink struct {
	client   catalogv1.CatalogServiceClient
	store    storage.Store
	location string
	opts     datafile.Options
	log      *slog.Logger
}

// Open creates the raw table through the catalog if it does not exist (an
// identical existing table is fine; a different one is an error) and opens
// its folder for writing data files.
func Open(ctx context.Context, client catalogv1.CatalogServiceClient, log *slog.Logger) (*Sink, error) {
	resp, err := client.CreateTable(ctx, &catalogv1.CreateTableRequest{
		Name:             rawtable.Name,
		SchemaJson:       rawtable.DeltaSchema,
		PartitionColumns: []string{rawtable.PartitionColumn},
		Description:      "Every Kafka record of the plant sensor topics as it arrived (plantlake ingest).",
	})
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", rawtable.Name, err)
	}
	t := resp.GetTable()
	if resp.GetCreated() {
		log.Info("created table", "table", t.GetName(), "location", t.GetLocation())
	}
	store, err := openLocation(t.GetLocation())
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", rawtable.Name, err)
	}
	return &Sink{
		client:   client,
		store:    store,
		location: t.GetLocation(),
		opts: datafile.Options{
			PartitionColumns: []string{rawtable.PartitionColumn},
			Compression:      datafile.Snappy,
			PlainColumns:     rawtable.PlainColumns,
		},
		log: log,
	}, nil
}

// Location is the table folder's URI as the catalog gave it.
func (s *Sink) Location() string { return s.location }

// openLocation returns a store rooted at a table location URI.
func openLocation(loc string) (storage.Store, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrUnsupportedLocation, loc, err)
	}
	path := loc
	switch u.Scheme {
	case "file":
		path = u.Path
	case "":
	default:
		return nil, fmt.Errorf("%w: %q (scheme %s)", ErrUnsupportedLocation, loc, u.Scheme)
	}
	store, err := storage.NewLocal(path)
	if err != nil {
		return nil, fmt.Errorf("open table folder %s: %w", path, err)
	}
	return store, nil
}

// Positions reads each app id's txn version through the catalog. Version is
// the oldest table version among the answers: a commit reading at it
// aborts if any of the offsets changed after it.
func (s *Sink) Positions(ctx context.Context, appIDs []string) (rawtable.Positions, error) {
	pos := rawtable.Positions{Offsets: make(map[string]int64, len(appIDs)), Version: -1}
	for _, id := range appIDs {
		resp, err := s.client.GetTransactionVersion(ctx, &catalogv1.GetTransactionVersionRequest{Table: rawtable.Name, AppId: id})
		if err != nil {
			return rawtable.Positions{}, fmt.Errorf("txn version of %s: %w", id, err)
		}
		if resp.GetFound() {
			pos.Offsets[id] = resp.GetVersion()
		}
		if v := resp.GetTableVersion(); pos.Version < 0 || v < pos.Version {
			pos.Version = v
		}
	}
	if pos.Version < 0 {
		t, err := s.client.GetTable(ctx, &catalogv1.GetTableRequest{Name: rawtable.Name})
		if err != nil {
			return rawtable.Positions{}, fmt.Errorf("get table %s: %w", rawtable.Name, err)
		}
		pos.Version = t.GetTable().GetVersion()
	}
	return pos, nil
}

// Commit writes one Parquet file per batch (per ingest_date) into the table
// folder and commits them, with c's txns, as a blind append that read
// c.ReadAppIDs at c.ReadVersion. A lost race (Aborted) is returned wrapping
// rawtable.ErrAborted.
func (s *Sink) Commit(ctx context.Context, c rawtable.Commit) (rawtable.Committed, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commitTimeout)
		defer cancel()
	}
	req := &catalogv1.CommitRequest{
		Table:               rawtable.Name,
		ReadVersion:         c.ReadVersion,
		Operation:           "WRITE",
		OperationParameters: map[string]string{"mode": "Append", "partitionBy": `["` + rawtable.PartitionColumn + `"]`},
		BlindAppend:         true,
		ReadAppIds:          c.ReadAppIDs,
	}
	var bytes int64
	for _, b := range c.Batches {
		opts := s.opts
		opts.PartitionValues = map[string]string{rawtable.PartitionColumn: datafile.FormatDatePartition(b.Date)}
		add, err := datafile.Write(ctx, s.store, opts, b.Record)
		if err != nil {
			return rawtable.Committed{}, fmt.Errorf("write data file for %s: %w", opts.PartitionValues[rawtable.PartitionColumn], err)
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
	for _, t := range c.Txns {
		req.Txns = append(req.Txns, &catalogv1.Txn{AppId: t.AppID, Version: t.Offset})
	}
	req.OperationMetrics = map[string]string{
		"numFiles":       strconv.Itoa(len(req.Adds)),
		"numOutputRows":  strconv.Itoa(c.Rows),
		"numOutputBytes": strconv.FormatInt(bytes, 10),
	}
	resp, err := s.client.Commit(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Aborted {
			return rawtable.Committed{}, fmt.Errorf("%w: %w", rawtable.ErrAborted, err)
		}
		return rawtable.Committed{}, fmt.Errorf("commit to %s at read version %d: %w", rawtable.Name, c.ReadVersion, err)
	}
	return rawtable.Committed{Version: resp.GetVersion(), Files: len(req.Adds), Bytes: bytes}, nil
}

// commitTimeout bounds one commit call when the caller's context has no deadline.
const commitTimeout = 60 * time.Second
