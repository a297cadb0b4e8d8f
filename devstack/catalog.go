package devstack

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// ErrExited is returned when a service process exits before it serves.
var ErrExited = errors.New("devstack: process exited")

// CatalogConfig says how to start a catalog process.
type CatalogConfig struct {
	// Bin is the catalog binary; when empty it is built from this source
	// tree (see CatalogBinary).
	Bin string
	// Warehouse is the warehouse folder (required).
	Warehouse string
	// Brokers are the Kafka brokers commits are announced on; empty turns
	// the announcements off (--announce=false).
	Brokers string
	// Args are extra flags, placed after the harness's own, so they win
	// (e.g. "--commit-topic", "t", "--auto-maintenance=false").
	Args []string
	// Env is added to the environment.
	Env []string
	// LogPath receives stdout and stderr (appended); default catalog.log
	// beside the warehouse folder.
	LogPath string
	// CPUs, when set, pins the process with taskset -c CPUs (e.g. "1").
	CPUs string
	// Nice is the process's niceness (see ServiceConfig.Nice).
	Nice int
	// ReadyTimeout bounds the wait until it serves; default 60s.
	ReadyTimeout time.Duration
	// UnixSocket, when set, is a path where the catalog serves gRPC on a
	// Unix socket too (--unix-socket); Target then dials it.
	UnixSocket string
}

// CatalogProcess is a catalog running as a child process (a ServiceProcess
// that knows its warehouse). It is killed when the program that started it
// dies.
type CatalogProcess struct {
	*ServiceProcess
	warehouse string
	socket    string
}

// CatalogBinary builds the catalog from the source tree this package is in,
// once per program, and returns the binary's path (see ServiceBinary).
func CatalogBinary(ctx context.Context) (string, error) {
	return ServiceBinary(ctx, "catalog")
}

// repoRoot is the repository root, found from this file's path.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("devstack: cannot locate the source tree")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

// StartCatalog starts a catalog on a free loopback port (it binds port 0 and
// logs the address) with metrics off and text logs, and waits until its
// health service says SERVING.
func StartCatalog(ctx context.Context, cfg CatalogConfig) (*CatalogProcess, error) {
	if cfg.Warehouse == "" {
		return nil, errors.New("devstack: catalog: no warehouse")
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(filepath.Dir(filepath.Clean(cfg.Warehouse)), "catalog.log")
	}
	args := []string{"--warehouse", cfg.Warehouse}
	if cfg.UnixSocket != "" {
		args = append(args, "--unix-socket", cfg.UnixSocket)
	}
	if cfg.Brokers != "" {
		args = append(args, "--kafka-brokers", cfg.Brokers)
	} else {
		args = append(args, "--announce=false")
	}
	s, err := StartService(ctx, ServiceConfig{
		Name: "catalog", Bin: cfg.Bin, Args: append(args, cfg.Args...), Env: cfg.Env,
		LogPath: cfg.LogPath, CPUs: cfg.CPUs, Nice: cfg.Nice, ReadyTimeout: cfg.ReadyTimeout,
	})
	if err != nil {
		return nil, err
	}
	return &CatalogProcess{ServiceProcess: s, warehouse: cfg.Warehouse, socket: cfg.UnixSocket}, nil
}

// Warehouse is the warehouse folder.
func (c *CatalogProcess) Warehouse() string { return c.warehouse }

// UnixSocket is the path of the catalog's Unix socket, "" when it serves
// TCP only.
func (c *CatalogProcess) UnixSocket() string { return c.socket }

// Target is the address a service on this machine gives as --catalog-addr:
// "unix://" and the socket's absolute path when the catalog serves one,
// its TCP address otherwise.
func (c *CatalogProcess) Target() string {
	if c.socket == "" {
		return c.Addr()
	}
	if abs, err := filepath.Abs(c.socket); err == nil {
		return "unix://" + abs
	}
	return "unix://" + c.socket
}

// Catalog starts a catalog for the test (building it once per test binary),
// with its warehouse in a t.TempDir unless cfg names one and its log beside
// it. t.Cleanup kills it; if the test failed, the tail of its log goes to the
// test log.
func Catalog(t testing.TB, cfg CatalogConfig) *CatalogProcess {
	t.Helper()
	if cfg.Warehouse == "" {
		cfg.Warehouse = filepath.Join(t.TempDir(), "warehouse")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := StartCatalog(ctx, cfg)
	if err != nil {
		t.Fatalf("devstack: start catalog: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: catalog at %s, log %s\n%s", c.Addr(), c.LogPath(), c.LogTail(30))
		}
		c.Kill()
	})
	return c
}
