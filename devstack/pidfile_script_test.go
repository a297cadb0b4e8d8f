package devstack_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestPidfileScript checks scripts/pidfile.sh's ours, which make up and
// make down use to tell their own processes: a pid file whose pid is now
// another program's (a reboot, kill -9) must not count, or make up leaves
// the service down and make down signals a stranger.
func TestPidfileScript(t *testing.T) {
	script, err := filepath.Abs("../scripts/pidfile.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A process whose command line holds the marker (as up.sh starts a
	// service: by its binary's path), and one that does not.
	bin := filepath.Join(dir, "bin", "catalog")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sleep, bin); err != nil {
		t.Fatal(err)
	}
	start := func(name string) int {
		cmd := exec.Command(name, "300")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}
	mine, stranger := start(bin), start(sleep)
	ours := func(pid string) bool {
		pidfile := filepath.Join(dir, "catalog.pid")
		if err := os.WriteFile(pidfile, []byte(pid+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := exec.Command("bash", "-c", `. "$1"; ours "$2" "$3"`, "bash", script, pidfile, bin).Run()
		if _, exit := err.(*exec.ExitError); err != nil && !exit {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, tc := range []struct {
		pid  string
		want bool
	}{
		{strconv.Itoa(mine), true},
		{strconv.Itoa(stranger), false}, // a reused pid
		{"999999999", false},            // no such process
		{"", false},
		{"1; true", false},
	} {
		if got := ours(tc.pid); got != tc.want {
			t.Errorf("ours with pid %q = %v, want %v", tc.pid, got, tc.want)
		}
	}
	// Without a pid file: not ours.
	if err := exec.Command("bash", "-c", `. "$1"; ours "$2" "$3"`, "bash", script, filepath.Join(dir, "none.pid"), bin).Run(); err == nil {
		t.Error("ours without a pid file succeeded")
	}
}

// TestDownWithoutStack: make down before any make up has nothing to stop
// and succeeds (it failed with exit status 1).
func TestDownWithoutStack(t *testing.T) {
	out, err := exec.Command("bash", "../scripts/down.sh", filepath.Join(t.TempDir(), "never-up")).CombinedOutput()
	if err != nil {
		t.Fatalf("down.sh without a stack: %v\n%s", err, out)
	}
}
