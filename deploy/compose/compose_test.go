package compose

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// repoRoot is the repository root (the Dockerfile's build context).
func repoRoot() string { return filepath.Join(Dir(), "..", "..") }

var (
	helpOnce sync.Once
	helpErr  error
	helps    map[string]Flags
)

// serviceFlags builds every plantlake service that has a cmd folder in this
// tree (once per test binary) and parses its --help.
func serviceFlags(t *testing.T) map[string]Flags {
	t.Helper()
	helpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plantlake-compose-help-")
		if err != nil {
			helpErr = err
			return
		}
		defer os.RemoveAll(dir)
		var pkgs, names []string
		for name := range Ports {
			if _, err := os.Stat(filepath.Join(repoRoot(), "services", name, "cmd", name)); err == nil {
				pkgs = append(pkgs, "./services/"+name+"/cmd/"+name)
				names = append(names, name)
			}
		}
		build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		build.Dir = repoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			helpErr = errors.New("go build: " + err.Error() + "\n" + string(out))
			return
		}
		helps = map[string]Flags{}
		for _, name := range names {
			// --help exits 0 and prints the usage on stderr.
			out, err := exec.Command(filepath.Join(dir, name), "--help").CombinedOutput()
			if err != nil {
				helpErr = errors.New(name + " --help: " + err.Error() + "\n" + string(out))
				return
			}
			helps[name] = ParseHelp(string(out))
		}
	})
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return helps
}

func load(t *testing.T, files ...string) *types.Project {
	t.Helper()
	p, err := Load(context.Background(), files, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEnvironmentOnlyKnownVariables loads docker-compose.yml with compose-go
// and checks every plantlake service's environment against the --help of
// its binary built from this tree. Services whose binary is not in the tree
// yet (profile next) are listed, not checked.
func TestEnvironmentOnlyKnownVariables(t *testing.T) {
	flags := serviceFlags(t)
	for _, files := range [][]string{{"docker-compose.yml"}, {"docker-compose.yml", "scale.yml"}} {
		p := load(t, files...)
		for _, name := range PlantlakeServices(p) {
			s, _ := Service(p, name)
			f, ok := flags[name]
			if !ok {
				t.Logf("%v: %s: no services/%s/cmd in this tree yet (profiles %v): environment not checked", files, name, name, s.Profiles)
				continue
			}
			for _, err := range CheckEnvironment(s, f) {
				t.Errorf("%v: %v", files, err)
			}
		}
	}
}

// TestPortsAndHealthchecks checks the ports of DESIGN.md section 3: each
// service listens on its port, publishes it on the same host port (not in
// the scale-out override), and its healthcheck probes its gRPC port.
func TestPortsAndHealthchecks(t *testing.T) {
	for _, tc := range []struct {
		files   []string
		publish bool
	}{
		{[]string{"docker-compose.yml"}, true},
		{[]string{"docker-compose.yml", "scale.yml"}, false},
	} {
		p := load(t, tc.files...)
		names := PlantlakeServices(p)
		for name := range Ports {
			if _, ok := Service(p, name); !ok {
				t.Errorf("%v: no %s service", tc.files, name)
			}
		}
		for _, name := range names {
			s, _ := Service(p, name)
			publish := tc.publish || (name != "bridge" && name != "ingest")
			for _, err := range CheckPorts(s, publish) {
				t.Errorf("%v: %v", tc.files, err)
			}
		}
		for name := range BrokerPorts {
			s, ok := Service(p, name)
			if !ok {
				t.Errorf("%v: no %s service", tc.files, name)
				continue
			}
			for _, err := range CheckBrokerPorts(s) {
				t.Errorf("%v: %v", tc.files, err)
			}
		}
	}
}

// TestWarehouseShared checks that every service that writes tables sees
// the warehouse where the catalog does.
func TestWarehouseShared(t *testing.T) {
	p := load(t, "docker-compose.yml")
	for _, err := range CheckWarehouse(p) {
		t.Error(err)
	}
	ingest := p.Services["ingest"]
	ingest.Volumes = nil
	p.Services["ingest"] = ingest
	if errs := CheckWarehouse(p); len(errs) != 1 || !strings.Contains(errs[0].Error(), "ingest") {
		t.Errorf("ingest without the warehouse volume: got %v, want one problem naming ingest", errs)
	}
}

// TestChecksCatchMistakes feeds the checks the services of
// docker-compose.yml with one mistake each and expects each to be found.
func TestChecksCatchMistakes(t *testing.T) {
	flags := serviceFlags(t)
	ptr := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		service string
		mutate  func(*types.ServiceConfig)
		want    string
	}{
		{"unknown flag variable", "ingest", func(s *types.ServiceConfig) { s.Environment["PLANTLAKE_BATCH_ROWS"] = ptr("10") }, "PLANTLAKE_BATCH_ROWS"},
		{"flag of another service", "catalog", func(s *types.ServiceConfig) { s.Environment["PLANTLAKE_MQTT_BROKER"] = ptr("tcp://x:1") }, "PLANTLAKE_MQTT_BROKER"},
		{"misspelt OTEL variable", "bridge", func(s *types.ServiceConfig) { s.Environment["OTEL_SERVICE"] = ptr("b") }, "OTEL_SERVICE"},
		{"other variable", "catalog", func(s *types.ServiceConfig) { s.Environment["GOGC"] = ptr("50") }, "GOGC"},
		{"unknown flag on the command line", "bridge", func(s *types.ServiceConfig) { s.Command = types.ShellCommand{"--mqtt-clientid=x"} }, "--mqtt-clientid"},
		{"gRPC port", "catalog", func(s *types.ServiceConfig) { s.Environment["PLANTLAKE_GRPC_ADDR"] = ptr(":7011") }, "7011"},
		{"published port", "ingest", func(s *types.ServiceConfig) { s.Ports[0].Published = "17003" }, "publish container port 7003"},
		{"healthcheck port", "bridge", func(s *types.ServiceConfig) {
			s.HealthCheck.Test = types.HealthCheckTest{"CMD", "healthprobe", "-addr", "127.0.0.1:7001"}
		}, "healthcheck probes"},
		{"no healthcheck", "catalog", func(s *types.ServiceConfig) { s.HealthCheck = nil }, "no healthcheck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh load per case: the mutation must not leak.
			s, ok := Service(load(t, "docker-compose.yml"), tc.service)
			if !ok {
				t.Fatalf("no service %s", tc.service)
			}
			tc.mutate(&s)
			var msgs []string
			for _, err := range append(CheckEnvironment(s, flags[tc.service]), CheckPorts(s, true)...) {
				msgs = append(msgs, err.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tc.want) {
				t.Errorf("no problem mentioning %q found; got %q", tc.want, msgs)
			}
		})
	}
}

// inBuildContext reports whether the file rel (slash-separated, relative to
// the context root) is sent to the daemon. It walks as Docker's archiver does
// (moby/go-archive, used by the classic builder): an ignored directory is
// skipped whole unless an exception pattern, read as a literal path, lies
// below it, so "!bench/*/go.mod" does not bring back bench/peers/go.mod
// while "!bench/peers/go.mod" does.
func inBuildContext(t *testing.T, pm *patternmatcher.PatternMatcher, rel string) bool {
	t.Helper()
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		ignored, err := pm.MatchesOrParentMatches(dir)
		if err != nil {
			t.Fatalf("match %s: %v", dir, err)
		}
		if !ignored {
			continue
		}
		walked := false
		for _, p := range pm.Patterns() {
			if p.Exclusion() && strings.HasPrefix(p.String()+"/", dir+"/") {
				walked = true
				break
			}
		}
		if !walked {
			return false
		}
	}
	ignored, err := pm.MatchesOrParentMatches(rel)
	if err != nil {
		t.Fatalf("match %s: %v", rel, err)
	}
	return !ignored
}

// TestBuildContextHoldsEveryWorkspaceModule reads go.work and .dockerignore
// with Docker's own pattern matcher and checks that the go.mod and go.sum of
// every module the workspace uses reach the Dockerfile's build context: a
// module listed in go.work but ignored makes `go mod download` in the image
// fail at once (a bench module did exactly that).
func TestBuildContextHoldsEveryWorkspaceModule(t *testing.T) {
	root := repoRoot()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := modfile.ParseWork("go.work", work, nil)
	if err != nil {
		t.Fatalf("parse go.work: %v", err)
	}
	if len(wf.Use) == 0 {
		t.Fatal("go.work uses no module")
	}
	for _, u := range wf.Use {
		dir := filepath.Clean(u.Path)
		for _, name := range []string{"go.mod", "go.sum"} {
			rel := filepath.ToSlash(filepath.Join(dir, name))
			if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
				if name == "go.sum" && errors.Is(err, os.ErrNotExist) {
					continue // a module without dependencies has none
				}
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if !inBuildContext(t, pm, rel) {
				t.Errorf("%s is used by go.work but .dockerignore leaves it out of the image's build context", rel)
			}
		}
	}
}
