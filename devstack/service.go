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
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Services are plantlake's services in the order a stack starts them: the
// catalog first (the others commit through it), the bridge last (it feeds
// the others).
var Services = []string{"catalog", "ingest", "deserialize", "merge", "bridge"}

// ServiceConfig says how to start one plantlake service process.
type ServiceConfig struct {
	// Name is the service ("catalog", "bridge", "ingest", "deserialize",
	// "merge"): its binary is built from services/<name>/cmd/<name>.
	Name string
	// Bin is the binary; when empty it is built (see ServiceBinary).
	Bin string
	// Args are the service's flags, after the harness's own (a free
	// loopback gRPC port, metrics off, text logs), so they win.
	Args []string
	// Env is added to the environment.
	Env []string
	// LogPath receives stdout and stderr (appended; required).
	LogPath string
	// CPUs, when set, pins the process with taskset -c CPUs (e.g. "1").
	CPUs string
	// Nice, when not 0, starts the process with that niceness (nice -n):
	// a positive one gives the CPU to the others first when it is short.
	Nice int
	// ReadyTimeout bounds the wait until it serves; default 60s.
	ReadyTimeout time.Duration
}

// ServiceProcess is a plantlake service running as a child process. It is
// killed when the program that started it dies.
type ServiceProcess struct {
	cfg         ServiceConfig
	proc        *process
	addr        string
	metricsAddr string
}

var (
	serviceBinMu sync.Mutex
	serviceBins  = map[string]*serviceBin{}
)

type serviceBin struct {
	once sync.Once
	path string
	err  error
}

// ServiceBinary builds service name from the source tree this package is in,
// once per program, and returns the binary's path. The binary lives in the
// cache directory under a name derived from the tree's path, so worktrees do
// not overwrite each other's, and replaces the previous one atomically.
func ServiceBinary(ctx context.Context, name string) (string, error) {
	serviceBinMu.Lock()
	b, ok := serviceBins[name]
	if !ok {
		b = &serviceBin{}
		serviceBins[name] = b
	}
	serviceBinMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildService(ctx, name) })
	return b.path, b.err
}

func buildService(ctx context.Context, name string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "services", name)
	if _, err := os.Stat(filepath.Join(src, "cmd", name)); err != nil {
		return "", fmt.Errorf("devstack: no service %q: %w", name, err)
	}
	sum := sha256.Sum256([]byte(root))
	var bin string
	err = withLock(ctx, name+"-build", func(cache string) error {
		dir := filepath.Join(cache, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		bin = filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:6]))
		tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, "./cmd/"+name)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("devstack: go build %s in %s: %w\n%s", name, cmd.Dir, err, out)
		}
		return os.Rename(tmp, bin)
	})
	return bin, err
}

// StartService starts a service on a free loopback port (it binds port 0
// and logs the address) with metrics off and text logs, and waits until its
// health service says SERVING.
func StartService(ctx context.Context, cfg ServiceConfig) (*ServiceProcess, error) {
	if cfg.Name == "" {
		return nil, errors.New("devstack: service: no name")
	}
	if cfg.LogPath == "" {
		return nil, fmt.Errorf("devstack: %s: no log path", cfg.Name)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.Bin == "" {
		bin, err := ServiceBinary(ctx, cfg.Name)
		if err != nil {
			return nil, err
		}
		cfg.Bin = bin
	}
	s := &ServiceProcess{cfg: cfg}
	if err := s.start(ctx, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return s, nil
}

// start launches the process listening on grpcAddr and waits until it serves.
func (s *ServiceProcess) start(ctx context.Context, grpcAddr string) error {
	args := append([]string{"--grpc-addr", grpcAddr, "--metrics-addr", "", "--log-format", "text"}, s.cfg.Args...)
	argv := append([]string{s.cfg.Bin}, args...)
	if s.cfg.CPUs != "" {
		argv = append([]string{"taskset", "-c", s.cfg.CPUs}, argv...)
	}
	if s.cfg.Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(s.cfg.Nice)}, argv...)
	}
	var logStart int64
	if fi, err := os.Stat(s.cfg.LogPath); err == nil {
		logStart = fi.Size() // a restart appends; its own serving line comes after
	}
	p, err := startProcess(procSpec{name: s.cfg.Name, argv: argv, env: s.cfg.Env, logPath: s.cfg.LogPath})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	addr, metrics, err := servingAddrs(ctx, p, logStart)
	if err == nil {
		err = waitHealthy(ctx, p, addr)
	}
	if err != nil {
		p.kill()
		return err
	}
	s.proc, s.addr, s.metricsAddr = p, addr, metrics
	return nil
}

// Name is the service's name ("ingest").
func (s *ServiceProcess) Name() string { return s.cfg.Name }

// Addr is the service's gRPC address, "127.0.0.1:PORT".
func (s *ServiceProcess) Addr() string { return s.addr }

// MetricsAddr is the metrics listener's address, "" when off (the default;
// turn it on with Args "--metrics-addr", "127.0.0.1:0").
func (s *ServiceProcess) MetricsAddr() string { return s.metricsAddr }

// LogPath is the file the process logs to.
func (s *ServiceProcess) LogPath() string { return s.cfg.LogPath }

// Pid is the process id (of the current run).
func (s *ServiceProcess) Pid() int { return s.proc.pid }

// Done is closed when the current run has exited.
func (s *ServiceProcess) Done() <-chan struct{} { return s.proc.done }

// Running reports whether the process runs.
func (s *ServiceProcess) Running() bool { return s.proc.alive() }

// Kill sends SIGKILL and waits for the exit: a crash.
func (s *ServiceProcess) Kill() { s.proc.kill() }

// Stop sends SIGTERM and waits up to grace for a graceful exit, then kills.
// It returns an error if the process had to be killed or exited with an error.
func (s *ServiceProcess) Stop(grace time.Duration) error {
	wasRunning := s.proc.alive()
	if err := s.proc.stop(grace); err != nil {
		return err
	}
	if wasRunning && s.proc.waitErr != nil {
		return fmt.Errorf("devstack: %s exited: %w\n%s", s.cfg.Name, s.proc.waitErr, s.proc.logTail(20))
	}
	return nil
}

// Restart starts the service again, after Kill or Stop, with the same flags
// on the same address, so that clients reconnect to it, and waits until it
// serves.
func (s *ServiceProcess) Restart(ctx context.Context) error {
	if s.proc.alive() {
		return fmt.Errorf("devstack: restart %s: pid %d still runs", s.cfg.Name, s.proc.pid)
	}
	return s.start(ctx, s.addr)
}

// MaxRSSKiB is the current or last run's peak resident set size in KiB:
// its VmHWM, read every 50 ms while it runs and before Stop signals it (not
// wait4's maxrss, which counts this program's own RSS; see sampleHWM).
func (s *ServiceProcess) MaxRSSKiB() int64 { return s.proc.hwmKiB.Load() }

// CPUTime is the exited run's user plus system CPU time; 0 while it runs.
func (s *ServiceProcess) CPUTime() time.Duration {
	select {
	case <-s.proc.done:
		return s.proc.state.UserTime() + s.proc.state.SystemTime()
	default:
		return 0
	}
}

// LogTail returns the last n lines of the log.
func (s *ServiceProcess) LogTail(n int) string { return logTail(s.cfg.LogPath, n) }

// Dial returns a client connection to the service, with extra options (e.g.
// per-RPC credentials). The caller closes it.
func (s *ServiceProcess) Dial(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(s.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("devstack: dial %s at %s: %w", s.cfg.Name, s.addr, err)
	}
	return conn, nil
}

// Conn dials the service for the test; t.Cleanup closes the connection.
func (s *ServiceProcess) Conn(t testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := s.Dial(opts...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
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
