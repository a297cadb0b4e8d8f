package delta

import (
	"context"
	"fmt"
	"sort"
)

// FileList is the outcome of a lenient log replay (Table.FileList): a
// table version and the files live at it, for tools that need the log's
// file set even where Snapshot refuses the table, e.g. a log written
// without a metaData or protocol action.
type FileList struct {
	// Version is the table version replayed to.
	Version int64
	// Files are the live files sorted by path. Each Path is canonical, as
	// in Snapshot.Files; DeletionVector is kept, so a caller can tell
	// which files have one.
	Files []Add
	// Protocol is the latest protocol action up to Version, nil if none.
	Protocol *Protocol
	// Metadata is the latest metaData action up to Version, nil if none.
	Metadata *Metadata
	// CheckpointVersion is the checkpoint replay started from, -1 if none.
	CheckpointVersion int64
}

// listingReaderFeatures are the reader features whose tables FileList
// lists: those Snapshot reads, plus the two it refuses only because rows
// would need them (the set of live files does not depend on them).
var listingReaderFeatures = map[string]bool{
	"deletionVectors": true,
	"columnMapping":   true,
}

// FileList replays the log up to the latest version and returns the live
// files, without requiring a protocol or metaData action and without the
// checks Snapshot makes before rows can be read (column mapping, deletion
// vectors). It still refuses a table whose protocol, when it has one, needs
// a reader version above 3 (ErrUnsupportedProtocol) or a reader feature
// that may change log replay (ErrUnsupportedFeature). Use Snapshot to read
// a table; use FileList to inspect a log. The result is not cached.
func (t *Table) FileList(ctx context.Context) (*FileList, error) {
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	return t.fileList(ctx, l, l.latestVersion())
}

// FileListAt is FileList at version.
func (t *Table) FileListAt(ctx context.Context, version int64) (*FileList, error) {
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	if version < 0 || version > l.latestVersion() {
		return nil, fmt.Errorf("%w: version %d (latest is %d)", ErrVersionNotFound, version, l.latestVersion())
	}
	return t.fileList(ctx, l, version)
}

func (t *Table) fileList(ctx context.Context, l *logListing, v int64) (*FileList, error) {
	rp, err := t.replay(ctx, l, v)
	if err != nil {
		return nil, err
	}
	st := rp.state
	if p := st.protocol; p != nil {
		if p.MinReaderVersion > 3 || p.MinReaderVersion < 1 {
			return nil, fmt.Errorf("%w: table needs reader version %d, this library reads 1 to 3", ErrUnsupportedProtocol, p.MinReaderVersion)
		}
		if p.MinReaderVersion == 3 {
			for _, f := range p.ReaderFeatures {
				if !supportedReaderFeatures[f] && !listingReaderFeatures[f] {
					return nil, &UnsupportedFeatureError{Feature: f, Detail: "reader feature not implemented"}
				}
			}
		}
	}
	fl := &FileList{Version: v, Files: make([]Add, 0, len(st.files)), Protocol: st.protocol, Metadata: st.metadata, CheckpointVersion: rp.cpVersion}
	for _, a := range st.files {
		fl.Files = append(fl.Files, *a)
	}
	sort.Slice(fl.Files, func(i, j int) bool { return fl.Files[i].Path < fl.Files[j].Path })
	return fl, nil
}
