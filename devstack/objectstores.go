package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Versions of the object-store servers the cloud storage tests run against.
const (
	// AzuriteVersion is the npm azurite release: Azure's Blob API emulator.
	AzuriteVersion = "3.37.0"
	// MotoVersion is the PyPI moto release whose server plays S3. It
	// implements conditional PutObject (If-None-Match: *), which the S3
	// store's commits rely on; devstack's tests prove it.
	MotoVersion = "5.2.6"
)

// Well-known Azurite development account (public, documented by Microsoft;
// Azurite accepts nothing else by default).
const (
	// AzuriteAccount is Azurite's development storage account.
	AzuriteAccount = "devstoreaccount1"
	// AzuriteKey is the account key of AzuriteAccount.
	AzuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuritePath returns the azurite-blob program of <cache>/azurite-<version>,
// installing the npm package there if it is missing.
func AzuritePath(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	home := filepath.Join(cache, "azurite-"+AzuriteVersion)
	bin := filepath.Join(home, "node_modules", ".bin", "azurite-blob")
	done := filepath.Join(home, ".complete")
	complete := func() bool { return fileExists(done) && fileExists(bin) }
	if complete() {
		return bin, nil
	}
	err = withLock(ctx, "azurite", func(string) error {
		if complete() {
			return nil
		}
		if _, err := exec.LookPath("npm"); err != nil {
			if err := aptInstall(ctx, log, "nodejs", "npm"); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(home, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", home, err)
		}
		log.Info("installing azurite from npm", "version", AzuriteVersion, "dir", home)
		if err := run(ctx, log, nil, "npm", "install", "--prefix", home, "--no-audit", "--no-fund",
			"--loglevel=error", "azurite@"+AzuriteVersion); err != nil {
			return err
		}
		return os.WriteFile(done, []byte(AzuriteVersion+"\n"), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install azurite %s: %w: %w", AzuriteVersion, ErrNotInstalled, err)
	}
	return bin, nil
}

// motoRequirements are the moto venv's packages: moto with only its S3
// dependencies and the two its server needs (moto[server] would pull every
// service's, 318 MB against 141 MB).
func motoRequirements() []string {
	return []string{"moto[s3]==" + MotoVersion, "flask==3.1.3", "flask-cors==6.0.5"}
}

// MotoPath returns the moto_server program of <cache>/moto-venv, creating
// that venv and installing moto from PyPI if it is missing or pinned
// differently. moto has a venv of its own so that its dependencies never
// move the interop venv's pins.
func MotoPath(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	venv := filepath.Join(cache, "moto-venv")
	py := filepath.Join(venv, "bin", "python3")
	bin := filepath.Join(venv, "bin", "moto_server")
	done := filepath.Join(venv, ".plantlake-requirements")
	want := strings.Join(motoRequirements(), "\n") + "\n"
	complete := func() bool {
		b, err := os.ReadFile(done)
		return err == nil && string(b) == want && fileExists(bin)
	}
	if complete() {
		return bin, nil
	}
	err = withLock(ctx, "moto", func(string) error {
		if complete() {
			return nil
		}
		if !fileExists(py) {
			base, err := exec.LookPath("python3")
			if err != nil {
				return fmt.Errorf("python3 not found: %w", err)
			}
			log.Info("creating Python venv", "dir", venv)
			if err := run(ctx, log, nil, base, "-m", "venv", venv); err != nil {
				return err
			}
		}
		log.Info("installing moto from PyPI", "version", MotoVersion)
		args := append([]string{"-m", "pip", "install", "-q", "--disable-pip-version-check"}, motoRequirements()...)
		if err := run(ctx, log, nil, py, args...); err != nil {
			return err
		}
		return os.WriteFile(done, []byte(want), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install moto %s: %w: %w", MotoVersion, ErrNotInstalled, err)
	}
	return bin, nil
}

// ObjectServerConfig says where and how to run an object-store server.
type ObjectServerConfig struct {
	// Dir holds the server's log (server.log) and, for Azurite, its data.
	Dir string
	// Host is the loopback address to listen on; default 127.0.0.1.
	Host string
	// Port is the HTTP port; 0 picks a free one.
	Port int
	// StartTimeout bounds the wait until the server answers; default 60s.
	StartTimeout time.Duration
	// Log receives devstack's own progress messages; nil discards them.
	Log *slog.Logger
}

func (c *ObjectServerConfig) setDefaults(name string) error {
	if c.Dir == "" {
		return fmt.Errorf("devstack: %s: ObjectServerConfig.Dir is required", name)
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("devstack: %s dir: %w", name, err)
	}
	c.Dir = dir
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Port == 0 {
		if c.Port, err = freePort(); err != nil {
			return err
		}
	}
	return os.MkdirAll(c.Dir, 0o755)
}

// ObjectServer is a running Azurite or moto server.
type ObjectServer struct {
	cfg  ObjectServerConfig
	name string

	mu   sync.Mutex
	proc *process
}

// StartAzurite installs Azurite if needed and starts its Blob service with
// its data in cfg.Dir. It accepts the development account AzuriteAccount
// with key AzuriteKey, at http://host:port/devstoreaccount1.
func StartAzurite(ctx context.Context, cfg ObjectServerConfig) (*ObjectServer, error) {
	if err := cfg.setDefaults("azurite"); err != nil {
		return nil, err
	}
	bin, err := AzuritePath(ctx, cfg.Log)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(cfg.Dir, "data")
	argv := []string{bin, "--blobHost", cfg.Host, "--blobPort", strconv.Itoa(cfg.Port),
		"--location", data,
		// The Go SDK may speak a newer service version than Azurite knows;
		// the calls the store makes are in every version.
		"--skipApiVersionCheck", "--disableProductStyleUrl", "--silent"}
	s := &ObjectServer{cfg: cfg, name: "azurite"}
	// The marker is the data folder: unique to this server.
	return s, s.start(ctx, argv, data, "/"+AzuriteAccount+"?comp=list")
}

// StartMoto installs moto if needed and starts its server, which plays S3
// (any access key is accepted).
func StartMoto(ctx context.Context, cfg ObjectServerConfig) (*ObjectServer, error) {
	if err := cfg.setDefaults("moto"); err != nil {
		return nil, err
	}
	bin, err := MotoPath(ctx, cfg.Log)
	if err != nil {
		return nil, err
	}
	argv := []string{bin, "-H", cfg.Host, "-p", strconv.Itoa(cfg.Port)}
	s := &ObjectServer{cfg: cfg, name: "moto"}
	return s, s.start(ctx, argv, strconv.Itoa(cfg.Port), "/")
}

// start launches argv and waits until an HTTP GET of probe gets any answer.
func (s *ObjectServer) start(ctx context.Context, argv []string, marker, probe string) error {
	p, err := startProcess(procSpec{
		name: s.name, argv: argv, logPath: s.LogPath(), marker: marker,
		env: []string{"AZURITE_ACCOUNTS=", "PYTHONUNBUFFERED=1"},
	})
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, p, s.Endpoint()+probe, s.cfg.StartTimeout); err != nil {
		p.kill()
		return fmt.Errorf("%w\n%s", err, p.logTail(30))
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	s.cfg.Log.Info(s.name+" serving", "endpoint", s.Endpoint(), "pid", p.pid)
	return nil
}

// waitHTTP waits until url answers an HTTP GET (with any status), the
// process exits, or the timeout passes.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if !p.alive() {
			return fmt.Errorf("%w: %s exited during start (%v)", ErrNotRunning, p.spec.name, p.waitErr)
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s at %s not answering after %s: %w", p.spec.name, url, timeout, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Endpoint returns the server's base URL, "http://host:port". Azurite's
// Blob service for the development account is at Endpoint()+"/"+AzuriteAccount.
func (s *ObjectServer) Endpoint() string {
	return fmt.Sprintf("http://%s:%d", s.cfg.Host, s.cfg.Port)
}

// Dir returns the server's directory.
func (s *ObjectServer) Dir() string { return s.cfg.Dir }

// LogPath returns the file the server's output goes to.
func (s *ObjectServer) LogPath() string { return filepath.Join(s.cfg.Dir, "server.log") }

// Stop ends the server.
func (s *ObjectServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(10 * time.Second)
	s.proc = nil
	return err
}

// kill ends the server at once.
func (s *ObjectServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// String describes the server for logs.
func (s *ObjectServer) String() string {
	return fmt.Sprintf("%s %s (%s)", s.name, s.Endpoint(), s.cfg.Dir)
}

// Azurite starts (installing if missing) an Azurite Blob service for the
// test on a free loopback port with its data in a t.TempDir. t.Cleanup stops
// it; if the test failed, the tail of its log goes to the test log.
func Azurite(t testing.TB) *ObjectServer {
	t.Helper()
	return startObjectServer(t, "azurite", StartAzurite)
}

// Moto starts (installing if missing) a moto server, playing S3, for the
// test on a free loopback port. t.Cleanup stops it; if the test failed, the
// tail of its log goes to the test log.
func Moto(t testing.TB) *ObjectServer {
	t.Helper()
	return startObjectServer(t, "moto", StartMoto)
}

func startObjectServer(t testing.TB, name string, start func(context.Context, ObjectServerConfig) (*ObjectServer, error)) *ObjectServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), name)
	var s *ObjectServer
	var err error
	for range portAttempts {
		s, err = start(ctx, ObjectServerConfig{Dir: dir})
		if err == nil || !portTaken(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("devstack: start %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: %s, logs in %s\n%s", s, s.LogPath(), logTail(s.LogPath(), 30))
		}
		s.kill() // the data is discarded: no need to wait for a clean exit
	})
	return s
}
