package devstack

import (
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestPeakRSSIsTheChildsOwn: a started process's peak RSS is its own, not
// this program's. The test holds 256 MiB, then starts a shell that sleeps:
// wait4's maxrss says the shell peaked above 256 MiB (Linux carries the
// parent's high-water mark through vfork and exec), the sampled VmHWM says
// a few MiB.
func TestPeakRSSIsTheChildsOwn(t *testing.T) {
	const held = 256 << 20
	ballast := make([]byte, held)
	for i := range ballast {
		ballast[i] = 1
	}
	p, err := startProcess(procSpec{name: "sleeper", argv: []string{"/bin/sh", "-c", "sleep 0.3"},
		logPath: filepath.Join(t.TempDir(), "sleeper.log")})
	if err != nil {
		t.Fatal(err)
	}
	if !p.wait(10 * time.Second) {
		p.kill()
		t.Fatal("sleeper did not exit")
	}
	runtime.KeepAlive(ballast)
	sampled := p.hwmKiB.Load()
	if sampled <= 0 || sampled > 64<<10 {
		t.Errorf("sampled peak RSS of the sleeping shell %d KiB, want between 1 KiB and 64 MiB", sampled)
	}
	if ru, ok := p.state.SysUsage().(*syscall.Rusage); ok {
		t.Logf("wait4 maxrss %d KiB, sampled VmHWM %d KiB", ru.Maxrss, sampled)
	}
}
