package config_test

import (
	"errors"
	"flag"
	"os"
	"runtime/debug"
	"testing"

	"github.com/plantlake/plantlake/servicekit/config"
)

func TestMemoryFlags(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	var m config.Memory
	m.Register(fs, 64<<20, 300)
	if m.Limit != 64<<20 || m.GCPercent != 300 {
		t.Fatalf("defaults: got %+v", m)
	}
	if err := fs.Parse([]string{"--memory-limit", "0", "--gc-percent", "150"}); err != nil {
		t.Fatal(err)
	}
	if m.Limit != 0 || m.GCPercent != 150 {
		t.Fatalf("parsed: got %+v", m)
	}
	for _, bad := range []config.Memory{{Limit: -1}, {GCPercent: -5}} {
		if err := bad.Validate(); !errors.Is(err, config.ErrInvalidMemory) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidMemory", bad, err)
		}
	}
	if err := m.Validate(); err != nil {
		t.Errorf("%+v: %v", m, err)
	}
}

// gcPercent reads the runtime's collector percentage.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestMemoryApplyYieldsToTheEnvironment(t *testing.T) {
	prevGC, prevLimit := gcPercent(), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	unset := func(name string) {
		old, had := os.LookupEnv(name)
		os.Unsetenv(name)
		t.Cleanup(func() {
			if had {
				os.Setenv(name, old)
			}
		})
	}
	unset("GOGC")
	unset("GOMEMLIMIT")
	debug.SetGCPercent(100)

	config.Memory{Limit: 123 << 20, GCPercent: 250}.Apply()
	if got := gcPercent(); got != 250 {
		t.Errorf("GC percent %d, want 250", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("memory limit %d, want %d", got, 123<<20)
	}

	// Zero leaves the runtime's setting.
	config.Memory{}.Apply()
	if got := gcPercent(); got != 250 {
		t.Errorf("GC percent after a zero Apply %d, want 250 unchanged", got)
	}

	// An operator's GOGC and GOMEMLIMIT win.
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	config.Memory{Limit: 7 << 20, GCPercent: 900}.Apply()
	if got := gcPercent(); got != 250 {
		t.Errorf("GC percent with GOGC set %d, want 250 unchanged", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 123<<20 {
		t.Errorf("memory limit with GOMEMLIMIT set %d, want %d unchanged", got, 123<<20)
	}
}
