package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/plantlake/plantlake/devstack"
)

// usage is what one measured process cost.
type usage struct {
	wall   time.Duration
	cpu    time.Duration // user + system, every thread
	hwmKiB int64         // peak resident set size
}

// add is the cost of two processes run one after the other on one core:
// the times add up, the peak is the larger one.
func (u usage) add(v usage) usage {
	return usage{wall: u.wall + v.wall, cpu: u.cpu + v.cpu, hwmKiB: max(u.hwmKiB, v.hwmKiB)}
}

// proc is a measured child process, pinned to its CPUs with taskset (which
// execs the binary in place, so the pid is the binary's).
type proc struct {
	cmd   *exec.Cmd
	log   string
	start time.Time
	done  chan struct{}
	err   error
}

// startProc starts bin with args pinned to cpus, its output appended to logPath.
func startProc(logPath, cpus string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", bin, err)
	}
	defer logf.Close()
	cmd := exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitExit waits until the process exits by itself and returns its cost:
// the wall time from its start, its rusage CPU time and its peak RSS
// (VmHWM sampled every 20 ms; not rusage's maxrss, which counts this
// program's own RSS, carried through the vfork and exec into the child's).
func (p *proc) waitExit(ctx context.Context) (usage, error) {
	var hwm int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			wall := time.Since(p.start)
			if p.err != nil {
				return usage{}, fmt.Errorf("%s: %w\n%s", p.cmd.Args[3], p.err, tail(p.log, 20))
			}
			return usage{wall: wall, cpu: p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime(), hwmKiB: hwm}, nil
		case <-tick.C:
			if kb, err := devstack.VmHWMKiB(p.cmd.Process.Pid); err == nil {
				hwm = max(hwm, kb)
			}
		case <-ctx.Done():
			p.kill()
			return usage{}, ctx.Err()
		}
	}
}

// waitFinished waits until finished reports true (asked every 20 ms), for a
// process that does not exit by itself when its work is done, then kills
// it. The cost is read at that moment from /proc: wall time from the start,
// CPU time of every thread, VmHWM.
func (p *proc) waitFinished(ctx context.Context, timeout time.Duration, finished func() (bool, error)) (usage, error) {
	defer p.kill()
	pid := p.cmd.Process.Pid
	var hwm int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		select {
		case <-p.done:
			return usage{}, fmt.Errorf("%s exited before it was done: %v\n%s", p.cmd.Args[3], p.err, tail(p.log, 20))
		case <-tick.C:
			if kb, err := devstack.VmHWMKiB(pid); err == nil {
				hwm = max(hwm, kb)
			}
			ok, err := finished()
			if err != nil {
				return usage{}, err
			}
			if !ok {
				continue
			}
			wall := time.Since(p.start)
			cpu, err := cpuTime(pid)
			if err != nil {
				return usage{}, err
			}
			if kb, err := devstack.VmHWMKiB(pid); err == nil {
				hwm = max(hwm, kb)
			}
			return usage{wall: wall, cpu: cpu, hwmKiB: hwm}, nil
		case <-deadline:
			return usage{}, fmt.Errorf("%s not done after %s\n%s", p.cmd.Args[3], timeout, tail(p.log, 20))
		case <-ctx.Done():
			return usage{}, ctx.Err()
		}
	}
}

// kill ends the process (if it still runs) and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime reads a running process's user + system time, all threads.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time of %d: short /proc/PID/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// tail is the last n lines of a file, for error messages.
func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
