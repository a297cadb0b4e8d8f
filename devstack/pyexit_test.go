package devstack

import (
	"errors"
	"os/exec"
	"testing"
)

// TestPythonExitStatusKept checks that the venv's exit workaround (which
// ends every process with os._exit) still reports each script's own exit
// status, so a failing interop script can never pass for a good one.
func TestPythonExitStatusKept(t *testing.T) {
	py := Python(t)
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"success", "print('ok')", 0},
		{"sys.exit(3)", "import sys; sys.exit(3)", 3},
		{"sys.exit with a message", "import sys; sys.exit('bad')", 1},
		{"uncaught exception", "raise ValueError('boom')", 1},
		{"deltalake imported", "import deltalake, sys; sys.exit(4)", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exec.Command(py, "-c", tt.script).Run()
			got := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				got = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("exit status %d, want %d", got, tt.want)
			}
		})
	}
}
