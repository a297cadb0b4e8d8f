package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
	// ReadyTimeout bounds the wait until it serves; default 60s.
	ReadyTimeout time.Duration
}

// CatalogProcess is a catalog running as a child process. It is killed when
// the program that started it dies.
type CatalogProcess struct {
	cfg         CatalogConfig
	proc        *process
	addr        string
	metricsAddr string
}

var (
	catalogBinOnce sync.Once
	catalogBin     string
	catalogBinErr  error
)

// CatalogBinary builds the catalog from the source tree this package is in,
// once per program, and returns the binary's path. The binary lives in the
// cache directory under a name derived from the tree's path, so worktrees do
// not overwrite each other's, and replaces the previous one atomically.
func CatalogBinary(ctx context.Context) (string, error) {
	catalogBinOnce.Do(func() {
		catalogBin, catalogBinErr = buildCatalog(ctx)
	})
	return catalogBin, catalogBinErr
}

// repoRoot is the repository root, found from this file's path.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("devstack: cannot locate the source tree")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

func buildCatalog(ctx context.Context) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	var bin string
	err = withLock(ctx, "catalog-build", func(cache string) error {
		dir := filepath.Join(cache, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		bin = filepath.Join(dir, "catalog-"+hex.EncodeToString(sum[:6]))
		tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "./cmd/catalog")
		cmd.Dir = filepath.Join(root, "services", "catalog")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("devstack: go build catalog in %s: %w\n%s", cmd.Dir, err, out)
		}
		return os.Rename(tmp, bin)
	})
	return bin, err
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
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.Bin == "" {
		bin, err := CatalogBinary(ctx)
		if err != nil {
			return nil, err
		}
		cfg.Bin = bin
	}
	c := &CatalogProcess{cfg: cfg}
	if err := c.start(ctx, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return c, nil
}

// start launches the process listening on grpcAddr and waits until it serves.
func (c *CatalogProcess) start(ctx context.Context, grpcAddr string) error {
	args := []string{
		"--grpc-addr", grpcAddr, "--metrics-addr", "", "--warehouse", c.cfg.Warehouse,
		"--log-format", "text",
	}
	if c.cfg.Brokers != "" {
		args = append(args, "--kafka-brokers", c.cfg.Brokers)
	} else {
		args = append(args, "--announce=false")
	}
	args = append(args, c.cfg.Args...)
	argv := append([]string{c.cfg.Bin}, args...)
	if c.cfg.CPUs != "" {
		argv = append([]string{"taskset", "-c", c.cfg.CPUs}, argv...)
	}
	var logStart int64
	if fi, err := os.Stat(c.cfg.LogPath); err == nil {
		logStart = fi.Size() // a restart appends; its own serving line comes after
	}
	p, err := startProcess(procSpec{name: "catalog", argv: argv, env: c.cfg.Env, logPath: c.cfg.LogPath})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	addr, metrics, err := servingAddrs(ctx, p, logStart)
	if err == nil {
		err = waitHealthy(ctx, p, addr)
	}
	if err != nil {
		p.kill()
		return err
	}
	c.proc, c.addr, c.metricsAddr = p, addr, metrics
	return nil
}

// servingLine matches the service kit's "serving" log record, which names
// the bound addresses.
var servingLine = regexp.MustCompile(`msg=serving .*grpc=(\S+)(?: metrics=http://([^/\s]+))?`)

// servingAddrs waits until p logs where it listens (after offset from of its
// log) and returns its gRPC and metrics addresses (metrics "" if off).
func servingAddrs(ctx context.Context, p *process, from int64) (grpcAddr, metricsAddr string, err error) {
	for {
		if data, err := os.ReadFile(p.spec.logPath); err == nil && int64(len(data)) >= from {
			if m := servingLine.FindSubmatch(data[from:]); m != nil {
				return string(m[1]), string(m[2]), nil
			}
		}
		select {
		case <-p.done:
			return "", "", fmt.Errorf("%w: %s before serving: %v\n%s", ErrExited, p.spec.name, p.waitErr, p.logTail(30))
		case <-ctx.Done():
			return "", "", fmt.Errorf("devstack: %s did not log its address: %w\n%s", p.spec.name, ctx.Err(), p.logTail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitHealthy waits until the gRPC health service at addr says SERVING.
func waitHealthy(ctx context.Context, p *process, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("devstack: health client for %s: %w", addr, err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s: %v\n%s", ErrExited, p.spec.name, p.waitErr, p.logTail(30))
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s not serving at %s: %w (last: %v)\n%s", p.spec.name, addr, ctx.Err(), err, p.logTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Addr is the catalog's gRPC address, "127.0.0.1:PORT".
func (c *CatalogProcess) Addr() string { return c.addr }

// MetricsAddr is the metrics listener's address, "" when off (the default;
// turn it on with Args "--metrics-addr", "127.0.0.1:0").
func (c *CatalogProcess) MetricsAddr() string { return c.metricsAddr }

// Warehouse is the warehouse folder.
func (c *CatalogProcess) Warehouse() string { return c.cfg.Warehouse }

// LogPath is the file the process logs to.
func (c *CatalogProcess) LogPath() string { return c.cfg.LogPath }

// Pid is the process id (of the current run).
func (c *CatalogProcess) Pid() int { return c.proc.pid }

// Done is closed when the current run has exited.
func (c *CatalogProcess) Done() <-chan struct{} { return c.proc.done }

// Running reports whether the process runs.
func (c *CatalogProcess) Running() bool { return c.proc.alive() }

// Kill sends SIGKILL and waits for the exit: a crash.
func (c *CatalogProcess) Kill() { c.proc.kill() }

// Stop sends SIGTERM and waits up to grace for a graceful exit, then kills.
// It returns an error if the process had to be killed or exited with an error.
func (c *CatalogProcess) Stop(grace time.Duration) error {
	wasRunning := c.proc.alive()
	if err := c.proc.stop(grace); err != nil {
		return err
	}
	if wasRunning && c.proc.waitErr != nil {
		return fmt.Errorf("devstack: catalog exited: %w\n%s", c.proc.waitErr, c.proc.logTail(20))
	}
	return nil
}

// Restart starts the catalog again, after Kill or Stop, with the same flags
// on the same address, so that clients reconnect to it, and waits until it
// serves.
func (c *CatalogProcess) Restart(ctx context.Context) error {
	if c.proc.alive() {
		return fmt.Errorf("devstack: restart catalog: pid %d still runs", c.proc.pid)
	}
	return c.start(ctx, c.addr)
}

// MaxRSSKiB is the exited run's peak resident set size from wait4's rusage,
// in KiB; 0 while it runs.
func (c *CatalogProcess) MaxRSSKiB() int64 {
	select {
	case <-c.proc.done:
	default:
		return 0
	}
	if ru, ok := c.proc.state.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// CPUTime is the exited run's user plus system CPU time; 0 while it runs.
func (c *CatalogProcess) CPUTime() time.Duration {
	select {
	case <-c.proc.done:
		return c.proc.state.UserTime() + c.proc.state.SystemTime()
	default:
		return 0
	}
}

// LogTail returns the last n lines of the log.
func (c *CatalogProcess) LogTail(n int) string { return logTail(c.cfg.LogPath, n) }

// Dial returns a client connection to the catalog, with extra options (e.g.
// per-RPC credentials). The caller closes it.
func (c *CatalogProcess) Dial(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(c.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("devstack: dial catalog at %s: %w", c.addr, err)
	}
	return conn, nil
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

// Conn dials the catalog for the test; t.Cleanup closes the connection.
func (c *CatalogProcess) Conn(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := c.Dial(opts...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
