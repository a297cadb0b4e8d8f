// Package storage is the object-store abstraction under a Delta table: a small
// Store interface whose methods state their contract, and Local, the local
// filesystem implementation that makes commits durable and atomic. The
// object stores are in s3store (S3) and azstore (Azure Blob, ADLS Gen2);
// storeuri opens any of them from a URI, and storagetest is the
// conformance suite every Store passes.
//
// Paths are slash-separated and relative to the store's root. They never start
// with "/" and never contain "." or ".." elements; a Store refuses such paths
// with ErrInvalidPath, so nothing a caller passes can escape the root.
package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Errors callers branch on.
var (
	// ErrExists is returned by PutIfAbsent when the path is already taken.
	ErrExists = errors.New("storage: file already exists")
	// ErrNotExist is returned when a path does not exist. It is fs.ErrNotExist,
	// so os and io/fs errors match it with errors.Is.
	ErrNotExist = fs.ErrNotExist
	// ErrInvalidPath is returned for a path that is absolute, contains "." or
	// ".." elements, or is otherwise not a clean relative path.
	ErrInvalidPath = errors.New("storage: invalid path")
)

// FileInfo describes one entry of a Store.
type FileInfo struct {
	// Path is the entry's full path relative to the store root.
	Path string
	// Size is the file's length in bytes (0 for directories).
	Size int64
	// ModTime is the last modification time.
	ModTime time.Time
	// IsDir reports whether the entry is a directory (a common prefix on
	// object stores).
	IsDir bool
}

// Name returns the last element of the entry's path.
func (fi FileInfo) Name() string { return path.Base(fi.Path) }

// File is an open file for random access reads, as Parquet readers need.
type File interface {
	io.ReaderAt
	io.Closer
	// Size returns the file's length in bytes.
	Size() int64
}

// Store is a table's or a warehouse's object store.
//
// Implementations must be safe for concurrent use.
type Store interface {
	// ReadFile returns the whole content of path; errors.Is(err, ErrNotExist)
	// when it does not exist.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Open opens path for random-access reads.
	Open(ctx context.Context, path string) (File, error)
	// WriteFile creates or replaces path with data. Readers see either the old
	// or the new content, never a mix, and the data is durable when it returns.
	// Missing parent directories are created.
	WriteFile(ctx context.Context, path string, data []byte) error
	// PutIfAbsent atomically creates path with data, or fails with ErrExists
	// if it is already taken. The file is durable when it returns nil. Readers
	// never see a partial file.
	PutIfAbsent(ctx context.Context, path string, data []byte) error
	// List returns the direct children of dir, sorted by name. A missing dir
	// is errors.Is(err, ErrNotExist). dir "" is the root.
	List(ctx context.Context, dir string) ([]FileInfo, error)
	// Stat describes path.
	Stat(ctx context.Context, path string) (FileInfo, error)
	// Delete removes the file at path; deleting a missing file is
	// errors.Is(err, ErrNotExist).
	Delete(ctx context.Context, path string) error
}

// CleanPath checks that p is a clean relative slash path inside the root and
// returns it. The empty path (the root) is allowed.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return "", errInvalid(p)
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return "", errInvalid(p)
		}
	}
	return p, nil
}

func errInvalid(p string) error {
	return &fs.PathError{Op: "clean", Path: p, Err: ErrInvalidPath}
}

// Join joins slash path elements, skipping empty ones.
func Join(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e != "" {
			parts = append(parts, strings.Trim(e, "/"))
		}
	}
	return strings.Join(parts, "/")
}

// Sub returns a Store rooted at prefix inside s: a table's store inside a
// warehouse. Paths given to and returned by the sub-store are relative to
// prefix.
func Sub(s Store, prefix string) (Store, error) {
	p, err := CleanPath(strings.Trim(prefix, "/"))
	if err != nil {
		return nil, err
	}
	if p == "" {
		return s, nil
	}
	if inner, ok := s.(*subStore); ok {
		return &subStore{parent: inner.parent, prefix: inner.prefix + "/" + p}, nil
	}
	return &subStore{parent: s, prefix: p}, nil
}

type subStore struct {
	parent Store
	prefix string
}

func (s *subStore) full(p string) (string, error) {
	p, err := CleanPath(p)
	if err != nil {
		return "", err
	}
	if p == "" {
		return s.prefix, nil
	}
	return s.prefix + "/" + p, nil
}

func (s *subStore) ReadFile(ctx context.Context, p string) ([]byte, error) {
	f, err := s.full(p)
	if err != nil {
		return nil, err
	}
	return s.parent.ReadFile(ctx, f)
}

func (s *subStore) Open(ctx context.Context, p string) (File, error) {
	f, err := s.full(p)
	if err != nil {
		return nil, err
	}
	return s.parent.Open(ctx, f)
}

func (s *subStore) WriteFile(ctx context.Context, p string, data []byte) error {
	f, err := s.full(p)
	if err != nil {
		return err
	}
	return s.parent.WriteFile(ctx, f, data)
}

func (s *subStore) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	f, err := s.full(p)
	if err != nil {
		return err
	}
	return s.parent.PutIfAbsent(ctx, f, data)
}

func (s *subStore) List(ctx context.Context, dir string) ([]FileInfo, error) {
	f, err := s.full(dir)
	if err != nil {
		return nil, err
	}
	infos, err := s.parent.List(ctx, f)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		infos[i].Path = strings.TrimPrefix(infos[i].Path, s.prefix+"/")
	}
	return infos, nil
}

func (s *subStore) Stat(ctx context.Context, p string) (FileInfo, error) {
	f, err := s.full(p)
	if err != nil {
		return FileInfo{}, err
	}
	fi, err := s.parent.Stat(ctx, f)
	fi.Path = strings.TrimPrefix(fi.Path, s.prefix+"/")
	return fi, err
}

func (s *subStore) Delete(ctx context.Context, p string) error {
	f, err := s.full(p)
	if err != nil {
		return err
	}
	return s.parent.Delete(ctx, f)
}

// Rooted is implemented by stores that live on the local filesystem; Root
// returns the absolute directory of the store's root, or "" if unknown. The
// Delta library uses it to resolve absolute file paths in a table's log.
type Rooted interface {
	Root() string
}

// Root implements Rooted when the parent store does.
func (s *subStore) Root() string {
	if r, ok := s.parent.(Rooted); ok && r.Root() != "" {
		return filepath.Join(r.Root(), filepath.FromSlash(s.prefix))
	}
	return ""
}

// NameLister is implemented by stores that can list names more cheaply than
// List (no per-entry metadata). The Delta library uses it to avoid a stat
// of every file in a long _delta_log.
type NameLister interface {
	ListNames(ctx context.Context, dir string) ([]string, error)
}

// UnorderedNameLister is implemented by stores that can list names in
// whatever order the store keeps them, without the sort NameLister
// implementations may do. The Delta library, which orders what it needs
// itself, uses it for a long _delta_log.
type UnorderedNameLister interface {
	ListNamesUnordered(ctx context.Context, dir string) ([]string, error)
}

// ListNamesUnordered implements UnorderedNameLister; it falls back to
// ListNames when the parent store lists in order only.
func (s *subStore) ListNamesUnordered(ctx context.Context, dir string) ([]string, error) {
	if ul, ok := s.parent.(UnorderedNameLister); ok {
		f, err := s.full(dir)
		if err != nil {
			return nil, err
		}
		return ul.ListNamesUnordered(ctx, f)
	}
	return s.ListNames(ctx, dir)
}

// ListNames implements NameLister when the parent store does.
func (s *subStore) ListNames(ctx context.Context, dir string) ([]string, error) {
	f, err := s.full(dir)
	if err != nil {
		return nil, err
	}
	if nl, ok := s.parent.(NameLister); ok {
		return nl.ListNames(ctx, f)
	}
	infos, err := s.parent.List(ctx, f)
	if err != nil {
		return nil, err
	}
	return Names(infos), nil
}

// Names returns the base names of infos, in order: a store's ListNames
// over its List.
func Names(infos []FileInfo) []string {
	names := make([]string, len(infos))
	for i, fi := range infos {
		names[i] = fi.Name()
	}
	return names
}
