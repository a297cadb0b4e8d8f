package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Versions of what the install steps fetch. They are pinned so that every
// machine and CI run the same brokers and the same Python readers.
const (
	// KafkaVersion is the org.apache.kafka:kafka_2.13 release the broker runs.
	KafkaVersion = "4.1.1"
	// Log4jVersion is the log4j2 release that Kafka logs through (Kafka's
	// build declares logging compileOnly, so the jars are added here).
	Log4jVersion = "2.24.3"
	// DeltalakeVersion is the Python deltalake (delta-rs) release in the venv.
	DeltalakeVersion = "1.6.6"
	// PyarrowVersion is the Python pyarrow release in the venv.
	PyarrowVersion = "26.0.1"
)

// ErrNotInstalled is returned when a component is missing and cannot be
// installed (for example, no package registry can be reached).
var ErrNotInstalled = errors.New("devstack: component not installed")

// CacheDir returns where devstack keeps what it installs: $PLANTLAKE_CACHE if
// set, else $HOME/.cache/plantlake.
func CacheDir() (string, error) {
	if d := os.Getenv("PLANTLAKE_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("devstack: cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "plantlake"), nil
}

// withLock runs fn while holding an exclusive flock on <cache>/locks/<name>.lock,
// so that concurrent test processes install a component once.
func withLock(ctx context.Context, name string, fn func(cache string) error) error {
	cache, err := CacheDir()
	if err != nil {
		return err
	}
	lockDir := filepath.Join(cache, "locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("devstack: create lock dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(lockDir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("devstack: open lock: %w", err)
	}
	defer f.Close()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("devstack: lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: waiting for lock %s: %w", name, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases it anyway
	return fn(cache)
}

// run runs a command, sending its output to a buffer; on failure the error
// carries the tail of that output.
func run(ctx context.Context, log *slog.Logger, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	start := time.Now()
	err := cmd.Run()
	log.Debug("ran", "cmd", name, "args", args, "took", time.Since(start), "err", err)
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.Bytes(), 40))
	}
	return nil
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// MosquittoPath returns the path of the mosquitto binary, installing the
// Debian packages mosquitto and mosquitto-clients if it is missing.
func MosquittoPath(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	if p, ok := findMosquitto(); ok {
		return p, nil
	}
	err := withLock(ctx, "apt", func(string) error {
		if _, ok := findMosquitto(); ok {
			return nil
		}
		return aptInstall(ctx, log, "mosquitto", "mosquitto-clients")
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install mosquitto: %w: %w", ErrNotInstalled, err)
	}
	p, ok := findMosquitto()
	if !ok {
		return "", fmt.Errorf("devstack: mosquitto not found after install: %w", ErrNotInstalled)
	}
	return p, nil
}

func findMosquitto() (string, bool) {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if fileExists(p) {
			return p, true
		}
	}
	p, err := exec.LookPath("mosquitto")
	return p, err == nil
}

// KcatPath returns the path of kcat, installing Debian's kcat if it is
// missing. The bridge benchmark compares against `mosquitto_sub | kcat -P`.
func KcatPath(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	if p, err := exec.LookPath("kcat"); err == nil {
		return p, nil
	}
	err := withLock(ctx, "apt", func(string) error {
		if _, err := exec.LookPath("kcat"); err == nil {
			return nil
		}
		return aptInstall(ctx, log, "kcat")
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install kcat: %w: %w", ErrNotInstalled, err)
	}
	p, err := exec.LookPath("kcat")
	if err != nil {
		return "", fmt.Errorf("devstack: kcat not found after install: %w", ErrNotInstalled)
	}
	return p, nil
}

// aptInstall installs Debian packages, refreshing the package lists only when
// the first attempt fails (a fresh machine may have none).
func aptInstall(ctx context.Context, log *slog.Logger, pkgs ...string) error {
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	args := append([]string{"-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends"}, pkgs...)
	log.Info("installing Debian packages", "packages", pkgs)
	if err := run(ctx, log, env, "apt-get", args...); err == nil {
		return nil
	}
	log.Info("apt-get install failed; running apt-get update first")
	if err := run(ctx, log, env, "apt-get", "-o", "DPkg::Lock::Timeout=300", "update"); err != nil {
		return err
	}
	return run(ctx, log, env, "apt-get", args...)
}

// kafkaPom is the Maven project whose dependencies are the Kafka broker's
// classpath. Kafka 4.1 logs through the slf4j 1.7 API, which
// log4j-slf4j-impl binds to log4j2 (log4j-slf4j2-impl would leave slf4j 1.7
// without a binding, and Kafka silent).
const kafkaPom = `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.plantlake</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{{KAFKA}}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{{LOG4J}}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{{LOG4J}}</version>
    </dependency>
  </dependencies>
</project>
`

// KafkaLibs returns the directory holding every jar of the Kafka broker,
// fetching them with Maven into <cache>/kafka-<version>/libs if missing.
func KafkaLibs(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	home := filepath.Join(cache, "kafka-"+KafkaVersion)
	libs := filepath.Join(home, "libs")
	done := filepath.Join(home, ".complete")
	pom := strings.NewReplacer("{{KAFKA}}", KafkaVersion, "{{LOG4J}}", Log4jVersion).Replace(kafkaPom)
	// The marker holds the pom it was made from, so a changed pom refetches.
	complete := func() bool {
		b, err := os.ReadFile(done)
		return err == nil && string(b) == pom
	}
	if complete() {
		return libs, nil
	}
	err = withLock(ctx, "kafka", func(cache string) error {
		if complete() {
			return nil
		}
		log.Info("fetching Kafka jars with Maven", "version", KafkaVersion, "dir", libs)
		if err := os.RemoveAll(libs); err != nil {
			return fmt.Errorf("clear %s: %w", libs, err)
		}
		if err := os.MkdirAll(home, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", home, err)
		}
		pomPath := filepath.Join(home, "pom.xml")
		if err := os.WriteFile(pomPath, []byte(pom), 0o644); err != nil {
			return fmt.Errorf("write pom: %w", err)
		}
		if err := run(ctx, log, nil, "mvn", "-q", "-B", "-f", pomPath,
			"-Dmaven.repo.local="+filepath.Join(cache, "m2"),
			"dependency:copy-dependencies",
			"-DincludeScope=runtime",
			"-DoutputDirectory="+libs); err != nil {
			return err
		}
		return os.WriteFile(done, []byte(pom), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install kafka %s: %w: %w", KafkaVersion, ErrNotInstalled, err)
	}
	return libs, nil
}

// pythonRequirements are the packages of the interop venv, pinned.
func pythonRequirements() []string {
	return []string{"deltalake==" + DeltalakeVersion, "pyarrow==" + PyarrowVersion}
}

// PythonPath returns the python3 of <cache>/venv, creating the venv and
// installing deltalake and pyarrow from PyPI if they are missing or pinned
// differently.
func PythonPath(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	venv := filepath.Join(cache, "venv")
	py := filepath.Join(venv, "bin", "python3")
	done := filepath.Join(venv, ".plantlake-requirements")
	want := strings.Join(pythonRequirements(), "\n") + "\n" + exitWorkaround
	complete := func() bool {
		b, err := os.ReadFile(done)
		return err == nil && string(b) == want && fileExists(py)
	}
	if complete() {
		return py, nil
	}
	err = withLock(ctx, "venv", func(string) error {
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
		log.Info("installing Python packages", "packages", pythonRequirements())
		args := append([]string{"-m", "pip", "install", "-q", "--disable-pip-version-check"}, pythonRequirements()...)
		if err := run(ctx, log, nil, py, args...); err != nil {
			return err
		}
		if err := installExitWorkaround(ctx, py); err != nil {
			return err
		}
		return os.WriteFile(done, []byte(want), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: install python venv: %w: %w", ErrNotInstalled, err)
	}
	return py, nil
}

// InstallReport says what [InstallAll] found or installed.
type InstallReport struct {
	Mosquitto string // path of the mosquitto binary
	KafkaLibs string // directory of the Kafka jars
	Python    string // python3 of the venv
	Kcat      string // path of kcat, empty if it could not be installed
	KcatErr   error  // why kcat is missing, if it is
	Azurite   string // azurite-blob program (npm), for the Azure store's tests
	Moto      string // moto_server program (PyPI), for the S3 store's tests
	Jaeger    string // Jaeger binary built from its Go module, for make up and the trace tests
}

// InstallAll installs everything the tests and `make up` need. kcat is
// optional: its absence is reported in the result, not as an error.
func InstallAll(ctx context.Context, log *slog.Logger) (InstallReport, error) {
	log = orDiscard(log)
	var r InstallReport
	var err error
	if r.Mosquitto, err = MosquittoPath(ctx, log); err != nil {
		return r, err
	}
	r.Kcat, r.KcatErr = KcatPath(ctx, log)
	if r.KafkaLibs, err = KafkaLibs(ctx, log); err != nil {
		return r, err
	}
	if _, err = kafkaTemplate(ctx, log, r.KafkaLibs); err != nil {
		return r, err
	}
	if r.Python, err = PythonPath(ctx, log); err != nil {
		return r, err
	}
	if r.Azurite, err = AzuritePath(ctx, log); err != nil {
		return r, err
	}
	if r.Moto, err = MotoPath(ctx, log); err != nil {
		return r, err
	}
	// A cold build of Jaeger takes minutes: here it happens once, before any
	// test's timeout runs.
	if r.Jaeger, err = JaegerBinary(ctx, log); err != nil {
		return r, err
	}
	return r, nil
}

// orDiscard returns log, or a logger that discards when log is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// exitWorkaround is the venv's sitecustomize.py. delta-rs can abort a Python
// process at interpreter exit ("terminate called without an active
// exception", delta-rs#2184) after a script has done all its work, which
// would fail a test at random. The last atexit handler flushes the output
// and ends the process with os._exit and the script's own exit status, so
// the native destructors that abort never run.
const exitWorkaround = `# Installed by plantlake's devstack: end the process with os._exit after
# the script's atexit handlers, keeping its exit status (delta-rs#2184).
import atexit, os, sys

_status = [0]
_sys_exit = sys.exit
_excepthook = sys.excepthook


def _exit(code=None):
    _status[0] = 0 if code is None else (code if isinstance(code, int) else 1)
    _sys_exit(code)


def _hook(kind, value, tb):
    _status[0] = 1
    _excepthook(kind, value, tb)


@atexit.register
def _hard_exit():
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(_status[0])


sys.exit = _exit
sys.excepthook = _hook
`

// installExitWorkaround writes exitWorkaround as sitecustomize.py into the
// venv's site-packages.
func installExitWorkaround(ctx context.Context, py string) error {
	out, err := exec.CommandContext(ctx, py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").Output()
	if err != nil {
		return fmt.Errorf("find the venv's site-packages: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if err := os.WriteFile(filepath.Join(dir, "sitecustomize.py"), []byte(exitWorkaround), 0o644); err != nil {
		return fmt.Errorf("write sitecustomize.py: %w", err)
	}
	return nil
}
