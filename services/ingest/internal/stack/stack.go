// Package stack runs the processes ingest's integration tests and benchmark
// need besides Kafka (which devstack runs): the catalog and ingest binaries,
// built from this source tree, as child processes that can be stopped with
// SIGTERM or killed with SIGKILL, with their output in log files.
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// ErrExited is returned when a process exits while it is waited for to become ready.
var ErrExited = errors.New("process exited")

// servicesDir is the repository's services folder, found from this file's path.
func servicesDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("stack: cannot locate the source tree")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..")), nil
}

// Build builds the ingest binary into dir and takes the catalog binary
// from devstack (built once per machine and source tree); it returns both paths.
func Build(ctx context.Context, dir string) (catalogBin, ingestBin string, err error) {
	services, err := servicesDir()
	if err != nil {
		return "", "", err
	}
	if catalogBin, err = devstack.CatalogBinary(ctx); err != nil {
		return "", "", err
	}
	ingestBin = filepath.Join(dir, "ingest")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", ingestBin, "./cmd/ingest")
	cmd.Dir = filepath.Join(services, "ingest")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ingest: %w\n%s", err, out)
	}
	return catalogBin, ingestBin, nil
}

// Process is a child process.
type Process struct {
	// Name is for messages.
	Name string
	// LogPath is where its stdout and stderr go.
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error

	hwmMu sync.Mutex
	hwmKB int64
}

// Spec says how to start a process.
type Spec struct {
	Name    string
	Bin     string
	Args    []string
	Env     []string // added to the current environment
	LogPath string
	// CPUs, when set, pins the process with taskset -c CPUs (e.g. "1").
	CPUs string
}

// Start starts a process per spec.
func Start(spec Spec) (*Process, error) {
	logf, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", spec.Name, err)
	}
	bin, args := spec.Bin, spec.Args
	if spec.CPUs != "" {
		bin, args = "taskset", append([]string{"-c", spec.CPUs, spec.Bin}, spec.Args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), spec.Env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &Process{Name: spec.Name, LogPath: spec.LogPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, waits up to grace, then kills; it returns the exit
// error of a process that exited by itself in time.
func (p *Process) Stop(grace time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.Name, grace)
	}
}

// CPUTime is the exited process's user plus system CPU time.
func (p *Process) CPUTime() time.Duration {
	select {
	case <-p.done:
		return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	default:
		return 0
	}
}

// SampleVmHWM reads VmHWM (peak RSS, KiB) from /proc/<pid>/status and keeps
// the highest value seen; call it periodically while the process runs.
// (wait4's rusage would not do: exec folds the high-water mark of the
// memory a vfork child shares with its parent, here the test or benchmark
// with its Kafka producer, into the child's maxrss.)
func (p *Process) SampleVmHWM() int64 {
	kb, err := devstack.VmHWMKiB(p.Pid())
	p.hwmMu.Lock()
	defer p.hwmMu.Unlock()
	if err == nil && kb > p.hwmKB {
		p.hwmKB = kb
	}
	return p.hwmKB
}

// LogTail returns the last n lines of the process log.
func (p *Process) LogTail(n int) string {
	data, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitServing waits until the gRPC health service at addr says SERVING,
// p exits, or ctx ends.
func WaitServing(ctx context.Context, p *Process, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("health client: %w", err)
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
			return fmt.Errorf("%w: %s: %v\n%s", ErrExited, p.Name, p.waitErr, p.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s not serving at %s: %w (last: %v)\n%s", p.Name, addr, ctx.Err(), err, p.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// servingLine matches the service kit's "serving" log record, which names
// the bound addresses.
var servingLine = regexp.MustCompile(`msg=serving .*grpc=(\S+)(?: metrics=http://([^/\s]+))?`)

// ServingAddrs waits until a service started with port 0 logs where it
// listens and returns its gRPC and metrics addresses (metrics "" if off).
// Binding port 0 in the service avoids the race of picking a free port
// first.
func ServingAddrs(ctx context.Context, p *Process) (grpcAddr, metricsAddr string, err error) {
	for {
		if data, err := os.ReadFile(p.LogPath); err == nil {
			if m := servingLine.FindSubmatch(data); m != nil {
				return string(m[1]), string(m[2]), nil
			}
		}
		select {
		case <-p.done:
			return "", "", fmt.Errorf("%w: %s before serving: %v\n%s", ErrExited, p.Name, p.waitErr, p.LogTail(30))
		case <-ctx.Done():
			return "", "", fmt.Errorf("%s did not log its addresses: %w\n%s", p.Name, ctx.Err(), p.LogTail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
