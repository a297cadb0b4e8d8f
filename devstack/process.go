package devstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrNotRunning is returned when a broker that should be running is not: it
// exited early, or a pid file names no live broker.
var ErrNotRunning = errors.New("devstack: broker not running")

// procSpec says how to launch one broker process.
type procSpec struct {
	name    string   // "kafka" or "mosquitto", also the pid file's base name
	argv    []string // program and arguments
	env     []string // added to the environment
	logPath string   // stdout and stderr go here (appended)
	pidFile string   // written after the start when non-empty
	// marker is a string that /proc/<pid>/cmdline must contain for a pid
	// from a pid file to count as this broker (guards against pid reuse).
	marker string
	// daemon makes the process outlive its starter: a new session and no
	// parent-death signal. Otherwise it is killed when the starter dies.
	daemon bool
}

// process is a running broker process, started here or found by pid file.
type process struct {
	spec procSpec
	pid  int
	// done is closed when the process has exited; nil for a process that
	// this program did not start (found by pid file), which is polled.
	done chan struct{}
	// waitErr is the exit status, valid after done is closed.
	waitErr error
	// state is the exited process's state (rusage), valid after done is closed.
	state *os.ProcessState
	// hwmKiB is the highest VmHWM read while the process ran (see
	// sampleHWM); 0 for a process found by pid file.
	hwmKiB atomic.Int64
}

// hwmInterval is how often a started process's VmHWM is read.
const hwmInterval = 50 * time.Millisecond

// sampleHWM reads the process's VmHWM every hwmInterval until it exits.
// VmHWM is a high-water mark, so the samples miss only growth in the last
// interval before the exit. wait4's maxrss cannot serve: a Go program starts
// a child inside its own address space (vfork), and Linux carries that
// address space's high-water mark through the exec into the child's maxrss,
// so every child "peaks" at least at this program's own RSS.
func (p *process) sampleHWM() {
	t := time.NewTicker(hwmInterval)
	defer t.Stop()
	for {
		p.readHWM()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
}

// readHWM records the process's current VmHWM if it is higher.
func (p *process) readHWM() {
	if kib, err := VmHWMKiB(p.pid); err == nil && kib > p.hwmKiB.Load() {
		p.hwmKiB.Store(kib)
	}
}

// VmHWMKiB returns process pid's peak resident set size so far (VmHWM of
// /proc/<pid>/status) in KiB.
func VmHWMKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("devstack: peak RSS of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("devstack: peak RSS of pid %d: no VmHWM in /proc/%d/status", pid, pid)
}

// startProcess launches spec's program with its output in spec.logPath.
func startProcess(spec procSpec) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(spec.logPath), 0o755); err != nil {
		return nil, fmt.Errorf("devstack: %s log dir: %w", spec.name, err)
	}
	logf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: %s log: %w", spec.name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "==== devstack: starting %s at %s: %s\n", spec.name, time.Now().Format(time.RFC3339Nano), strings.Join(spec.argv, " "))

	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if spec.daemon {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// A test binary that dies (timeout, panic) takes its brokers along.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("devstack: start %s: %w", spec.name, err)
	}
	p := &process{spec: spec, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	go p.sampleHWM() // ends with the process
	if spec.pidFile != "" {
		if err := os.WriteFile(spec.pidFile, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
			p.kill()
			return nil, fmt.Errorf("devstack: write pid file: %w", err)
		}
	}
	return p, nil
}

// findProcess returns the live process named in pidFile, or ErrNotRunning.
func findProcess(spec procSpec) (*process, error) {
	b, err := os.ReadFile(spec.pidFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotRunning, spec.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("%w: %s: bad pid file %s", ErrNotRunning, spec.name, spec.pidFile)
	}
	p := &process{spec: spec, pid: pid}
	if !p.alive() {
		return nil, fmt.Errorf("%w: %s: pid %d from %s is gone", ErrNotRunning, spec.name, pid, spec.pidFile)
	}
	return p, nil
}

// alive reports whether the process still runs (and, for a process found by
// pid file, is still the broker: its command line has the marker).
func (p *process) alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
	if err != nil || !strings.Contains(string(cmdline), p.spec.marker) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	// A zombie ("Z") has exited; its parent has not reaped it yet.
	if err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *process) wait(d time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	deadline := time.Now().Add(d)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs and waits again. It
// returns an error if the process had to be killed or would not die.
func (p *process) stop(grace time.Duration) error {
	defer p.removePidFile()
	if !p.alive() {
		return nil
	}
	p.readHWM()
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	if p.wait(grace) {
		return nil
	}
	p.kill()
	if !p.wait(10 * time.Second) {
		return fmt.Errorf("devstack: %s (pid %d) survived SIGKILL", p.spec.name, p.pid)
	}
	return fmt.Errorf("devstack: %s (pid %d) ignored SIGTERM for %s and was killed", p.spec.name, p.pid, grace)
}

// kill sends SIGKILL and waits briefly for the exit.
func (p *process) kill() {
	if p.alive() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		p.wait(10 * time.Second)
	}
	p.removePidFile()
}

func (p *process) removePidFile() {
	if p.spec.pidFile == "" {
		return
	}
	b, err := os.ReadFile(p.spec.pidFile)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(p.pid) {
		_ = os.Remove(p.spec.pidFile)
	}
}

// logTail returns the last n lines of the process's log, for error messages.
func (p *process) logTail(n int) string {
	return logTail(p.spec.logPath, n)
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", path, tail(b, n))
}
