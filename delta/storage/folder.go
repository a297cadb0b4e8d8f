package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Folder is a folder of a Local store for a writer that puts one file after
// another into it, as a table's writer does with its log. Its PutIfAbsent is
// Local.PutIfAbsent — a temporary file, fsync, hard link to the final name
// (which fails if the name is taken), the temporary name removed, folder
// fsync: the same atomicity and durability — except that the temporary file
// may have been created ahead of time by Spare, off the put's critical path:
// creating a file allocates an inode and a folder entry, which wait on the
// file system's journal while other writers' fsyncs commit it. No file stays
// open between puts. A Folder is safe for concurrent use.
type Folder struct {
	dir string // absolute

	mu     sync.Mutex
	spare  string // an empty temporary file of ours for the next put, or ""
	closed bool
}

// Folder returns the folder p of the store; PutIfAbsent creates it if
// missing.
func (l *Local) Folder(p string) (*Folder, error) {
	a, err := l.abs(p)
	if err != nil {
		return nil, err
	}
	return &Folder{dir: a}, nil
}

// PutIfAbsent writes data as the file name of the folder unless it exists
// (ErrExists). The file is durable when it returns nil.
func (f *Folder) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("storage: %q is not a file name", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("storage: put %s: %w", name, os.ErrClosed)
	}
	final := filepath.Join(f.dir, name)
	tmp, file := f.takeSpare()
	if file == nil {
		var err error
		if tmp, err = tempName(final); err != nil {
			return fmt.Errorf("storage: put %s: %w", name, err)
		}
		if file, err = createTemp(tmp); err != nil {
			return fmt.Errorf("storage: put %s: %w", name, err)
		}
	}
	_, err := file.Write(data)
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	return linkTemp(tmp, final, name)
}

// takeSpare opens the spare file for writing, if there is one and it is
// still the empty regular file Spare made (not replaced by a link, not
// written to); otherwise it removes what is there and returns a nil file.
func (f *Folder) takeSpare() (string, *os.File) {
	tmp := f.spare
	f.spare = ""
	if tmp == "" {
		return "", nil
	}
	file, err := os.OpenFile(tmp, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		os.Remove(tmp)
		return "", nil
	}
	if fi, err := file.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		file.Close()
		os.Remove(tmp)
		return "", nil
	}
	return tmp, file
}

// Spare creates the temporary file of the next PutIfAbsent, unless one is
// ready. Call it when the folder is idle (after a put was acknowledged). A
// crash leaves the empty temporary file behind, which List skips, as it
// skips Local.PutIfAbsent's.
func (f *Folder) Spare() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.spare != "" {
		return nil
	}
	tmp, err := tempName(filepath.Join(f.dir, "next"))
	if err != nil {
		return err
	}
	file, err := createTemp(tmp)
	if err != nil {
		return fmt.Errorf("storage: spare file in %s: %w", f.dir, err)
	}
	if err := file.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: spare file in %s: %w", f.dir, err)
	}
	f.spare = tmp
	return nil
}

// Close removes the spare file; later puts fail.
func (f *Folder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.spare == "" {
		return nil
	}
	err := os.Remove(f.spare)
	f.spare = ""
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: remove spare file: %w", err)
	}
	return nil
}
