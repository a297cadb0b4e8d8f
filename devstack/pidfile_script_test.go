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

// TestServingScript checks scripts/pidfile.sh's serving, with which make up
// waits for each service: it succeeds once the process logs that it serves,
// counting only what the log got after the start, and fails when the
// process exits first (a port another process holds), as make up then must.
func TestServingScript(t *testing.T) {
	script, err := filepath.Abs("../scripts/pidfile.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "svc.log")
	// An earlier run's lines, before the offset: they must not count.
	old := "time=2026-12-01T00:00:00Z level=INFO msg=serving service=ingest grpc=127.0.0.1:7003\n"
	if err := os.WriteFile(log, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	offset := strconv.Itoa(len(old))
	serving := func(shell string) error {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		svc := exec.Command("bash", "-c", shell)
		svc.Stdout, svc.Stderr = f, f
		if err := svc.Start(); err != nil {
			t.Fatal(err)
		}
		// Reap it as soon as it exits, or it stays a zombie that kill -0 finds.
		reaped := make(chan struct{})
		go func() { svc.Wait(); close(reaped) }()
		t.Cleanup(func() { svc.Process.Kill(); <-reaped })
		return exec.Command("bash", "-c", `set -euo pipefail; . "$1"; serving "$2" "$3" "$4"`,
			"bash", script, strconv.Itoa(svc.Process.Pid), log, offset).Run()
	}
	for _, tc := range []struct {
		name, shell string
		ok          bool
	}{
		{"text log", `sleep 0.5; echo 'time=x level=INFO msg=serving service=ingest grpc=127.0.0.1:7003'; sleep 300`, true},
		{"json log", `echo '{"time":"x","level":"INFO","msg":"serving","service":"ingest"}'; sleep 300`, true},
		{"exits: port taken", `echo 'ingest: listen tcp 127.0.0.1:7003: bind: address already in use'; exit 1`, false},
		{"exits after a while, never served", `sleep 0.5; exit 0`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := serving(tc.shell); (err == nil) != tc.ok {
				t.Errorf("serving = %v, want success %v", err, tc.ok)
			}
			// Later cases start after this one's lines.
			fi, err := os.Stat(log)
			if err != nil {
				t.Fatal(err)
			}
			offset = strconv.FormatInt(fi.Size(), 10)
		})
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
