package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Local is a Store on the local filesystem, rooted at a directory.
//
// PutIfAbsent writes a temporary file in the target's directory, syncs it,
// hard-links it to the final name (the link fails if the name is taken, which
// makes the operation atomic), removes the temporary name and syncs the
// directory, so an acknowledged file survives a crash.
type Local struct {
	root string
}

// NewLocal returns a Local store rooted at root, which is created if missing.
func NewLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage: resolve root %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create root %q: %w", abs, err)
	}
	return &Local{root: abs}, nil
}

// Root returns the absolute filesystem path of the store's root.
func (l *Local) Root() string { return l.root }

func (l *Local) abs(p string) (string, error) {
	p, err := CleanPath(p)
	if err != nil {
		return "", err
	}
	if p == "" {
		return l.root, nil
	}
	return filepath.Join(l.root, filepath.FromSlash(p)), nil
}

// ReadFile implements Store.
func (l *Local) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := l.abs(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(a)
}

type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

// Open implements Store.
func (l *Local) Open(ctx context.Context, p string) (File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := l.abs(p)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(a)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("is a directory")}
	}
	return localFile{File: f, size: st.Size()}, nil
}

func tempName(final string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	dir, base := filepath.Split(final)
	return filepath.Join(dir, "."+base+"."+hex.EncodeToString(b[:])+".tmp"), nil
}

// writeTemp writes data to a new temporary file next to final and syncs it.
func writeTemp(final string, data []byte) (string, error) {
	tmp, err := tempName(final)
	if err != nil {
		return "", err
	}
	f, err := createTemp(tmp)
	if err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// createTemp creates the new temporary file tmp, and its folder if missing.
func createTemp(tmp string) (*os.File, error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	return f, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFile implements Store: temporary file, fsync, rename, directory fsync.
func (l *Local) WriteFile(ctx context.Context, p string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := l.abs(p)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(a, data)
	if err != nil {
		return fmt.Errorf("storage: write %s: %w", p, err)
	}
	if err := os.Rename(tmp, a); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: write %s: %w", p, err)
	}
	if err := syncDir(filepath.Dir(a)); err != nil {
		return fmt.Errorf("storage: sync dir of %s: %w", p, err)
	}
	return nil
}

// PutIfAbsent implements Store: temporary file, fsync, hard link to the final
// name (EEXIST → ErrExists), remove the temporary name, directory fsync.
func (l *Local) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := l.abs(p)
	if err != nil {
		return err
	}
	tmp, err := writeTemp(a, data)
	if err != nil {
		return fmt.Errorf("storage: put %s: %w", p, err)
	}
	return linkTemp(tmp, a, p)
}

// linkTemp makes the durable temporary file tmp the file final unless final
// exists (ErrExists): a hard link, the temporary name removed, the folder
// fsynced. name is the file's name in errors.
func linkTemp(tmp, final, name string) error {
	lerr := os.Link(tmp, final)
	rerr := os.Remove(tmp)
	if lerr != nil {
		if errors.Is(lerr, fs.ErrExist) || errors.Is(lerr, syscall.EEXIST) {
			return fmt.Errorf("storage: put %s: %w", name, ErrExists)
		}
		return fmt.Errorf("storage: put %s: %w", name, lerr)
	}
	if rerr != nil {
		return fmt.Errorf("storage: put %s: remove temporary: %w", name, rerr)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("storage: sync folder of %s: %w", name, err)
	}
	return nil
}

// List implements Store. Temporary files of in-flight writes (names starting
// with "." and ending in ".tmp") are not listed.
func (l *Local) List(ctx context.Context, dir string) ([]FileInfo, error) {
	d, err := l.openDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]FileInfo, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if isTempName(name) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while listing
			}
			return nil, err
		}
		fi := FileInfo{Path: Join(dir, name), ModTime: info.ModTime(), IsDir: info.IsDir()}
		if !fi.IsDir {
			fi.Size = info.Size()
		}
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return FileInfo{}, err
	}
	a, err := l.abs(p)
	if err != nil {
		return FileInfo{}, err
	}
	info, err := os.Stat(a)
	if err != nil {
		return FileInfo{}, err
	}
	fi := FileInfo{Path: p, ModTime: info.ModTime(), IsDir: info.IsDir()}
	if !fi.IsDir {
		fi.Size = info.Size()
	}
	return fi, nil
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a, err := l.abs(p)
	if err != nil {
		return err
	}
	if p == "" {
		return errInvalid(p)
	}
	return os.Remove(a)
}

// ListNames returns the names of the direct children of dir, sorted, without
// stat-ing them: much cheaper than List on a large _delta_log. Directories
// are included; temporary files of in-flight writes are not.
func (l *Local) ListNames(ctx context.Context, dir string) ([]string, error) {
	names, err := l.ListNamesUnordered(ctx, dir)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// ListNamesUnordered is ListNames in directory order, without the sort
// (which costs more than the listing's parsing on a long _delta_log).
func (l *Local) ListNamesUnordered(ctx context.Context, dir string) ([]string, error) {
	d, err := l.openDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if isTempName(n) {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// openDir opens dir, relative to the store's root, for listing.
func (l *Local) openDir(ctx context.Context, dir string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := l.abs(dir)
	if err != nil {
		return nil, err
	}
	return os.Open(a)
}

// isTempName reports whether name is the temporary file of a write in
// flight (see tempName), which listings leave out.
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp")
}
