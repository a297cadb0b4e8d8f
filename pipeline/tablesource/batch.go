package tablesource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/plantlake/plantlake/delta"
	"github.com/plantlake/plantlake/delta/reader"
)

// Version is what one version of the followed table added.
type Version struct {
	// Version is the table version.
	Version int64
	// Operation is the commit's operation, e.g. "WRITE", "OPTIMIZE".
	Operation string
	// Files are the files the version added with dataChange=true, paths
	// canonical (decoded, relative to the table folder). Empty for a
	// compaction, a txn-only or a metadata commit.
	Files []delta.Add
	// Rows is the sum of the files' numRecords stats (0 for files without).
	Rows int64
	// Bytes is the sum of the files' sizes.
	Bytes int64
	// MetadataChanged is true when the version changed schema, partitioning
	// or properties.
	MetadataChanged bool
}

// Batch is a run of whole versions of the followed table,
// FromVersion..ToVersion, with the files they added. The zero Batch and
// a batch from a Next that found nothing are Empty.
type Batch struct {
	// FromVersion is the first version of the batch (the position + 1).
	FromVersion int64
	// ToVersion is the last version included, also when it added no data:
	// the position to store once the batch is processed. ToVersion <
	// FromVersion for an empty batch.
	ToVersion int64
	// Versions lists every version of the range, in order.
	Versions []Version
	// Rows and Bytes are the sums over Versions.
	Rows, Bytes int64

	f *Follower
}

// Empty reports whether the batch holds no version.
func (b Batch) Empty() bool { return b.ToVersion < b.FromVersion }

// Files returns the number of data files of the batch.
func (b Batch) Files() int {
	n := 0
	for _, v := range b.Versions {
		n += len(v.Files)
	}
	return n
}

// Read streams the rows of the batch's files, version by version and file by
// file, to fn as record batches shaped to the table's latest schema: columns
// in table order, or only those named in columns (nil: all). Only one record
// batch is in memory at a time; it is released when fn returns, so fn must
// Retain what it keeps. An error of fn stops the read and is returned. A file
// that does not exist any more is an error wrapping ErrFilesGone.
func (b Batch) Read(ctx context.Context, columns []string, fn func(version int64, rec arrow.RecordBatch) error) error {
	if b.Files() == 0 {
		return nil
	}
	store, snap, err := b.f.snapshot(ctx)
	if err != nil {
		return err
	}
	for _, v := range b.Versions {
		for _, add := range v.Files {
			scan, err := reader.NewFiles(store, snap, []delta.Add{add}, reader.Options{Columns: columns})
			if err != nil {
				return fmt.Errorf("tablesource: %s version %d: %w", b.f.cfg.Table, v.Version, err)
			}
			err = readScan(ctx, scan, v.Version, fn)
			scan.Close()
			var ce callerError
			if errors.As(err, &ce) {
				return ce.err
			}
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%w: %s version %d: file %s: %w", ErrFilesGone, b.f.cfg.Table, v.Version, add.Path, err)
			}
			if err != nil {
				return fmt.Errorf("tablesource: %s version %d file %s: %w", b.f.cfg.Table, v.Version, add.Path, err)
			}
		}
	}
	return nil
}

// readScan hands every record batch of scan to fn.
func readScan(ctx context.Context, scan *reader.Scan, version int64, fn func(int64, arrow.RecordBatch) error) error {
	for rec, err := range scan.Records(ctx) {
		if err != nil {
			return err
		}
		if err := fn(version, rec); err != nil {
			return callerError{err}
		}
	}
	return nil
}

// callerError carries fn's error through readScan unchanged, so that it is
// never mistaken for a missing file.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }
