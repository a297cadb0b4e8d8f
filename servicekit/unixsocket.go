package servicekit

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// UnixSocketMode is the permission of a Unix socket Run serves gRPC on:
// the service's user and group may connect, nobody else.
const UnixSocketMode fs.FileMode = 0o660

// maxUnixPath is the longest socket path Linux binds (sun_path holds 108
// bytes with the terminating zero).
const maxUnixPath = 107

// ListenUnix listens on a Unix socket at path for a gRPC server (clients
// dial "unix://" + an absolute path). The socket is created with
// UnixSocketMode and then moved into place: bound in a private folder
// beside path, chmodded, renamed over path, so that no one connects while
// it has the process's umask. A socket left at path by a process that
// died (nobody accepts on it) is replaced; a socket some process still
// accepts on, or a file that is not a socket, is an error. The folder of
// path is created (0755) if missing. Closing the listener removes the
// socket, unless another process has replaced it since.
func ListenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("servicekit: unix socket: empty path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	}
	if len(path) > maxUnixPath {
		return nil, fmt.Errorf("servicekit: unix socket %s: the path is too long for a socket (%d bytes, at most %d)", path, len(path), maxUnixPath)
	}
	if err := checkStaleSocket(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	}
	private, err := os.MkdirTemp(dir, ".sock")
	if err != nil {
		return nil, fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	if len(tmp) > maxUnixPath {
		return nil, fmt.Errorf("servicekit: unix socket %s: the path is too long to create the socket beside it (%s: %d bytes, at most %d)",
			path, tmp, len(tmp), maxUnixPath)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // the bound name moves; Close removes path itself
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, UnixSocketMode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: l, addr: &net.UnixAddr{Name: path, Net: "unix"}, file: fi}, nil
}

// checkStaleSocket refuses a path that holds something other than a dead
// socket.
func checkStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("servicekit: unix socket %s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("servicekit: unix socket %s: the path exists and is not a socket (%v)", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("servicekit: unix socket %s: another process listens on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("servicekit: unix socket %s: checking whether it is stale: %w", path, err)
	}
	return nil // a dead process's socket: the rename replaces it
}

// unixListener reports the socket's final path as its address and removes
// the socket when closed.
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	file fs.FileInfo // the socket at addr, to remove only our own

	once sync.Once
	err  error
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		if fi, err := os.Lstat(l.addr.Name); err == nil && os.SameFile(fi, l.file) {
			if err := os.Remove(l.addr.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				l.err = errors.Join(l.err, fmt.Errorf("servicekit: remove unix socket: %w", err))
			}
		}
	})
	return l.err
}
