package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Versions of the container tooling the compose test builds. They are pinned
// so that every machine tests the same compose and Jaeger.
const (
	// ComposeModuleVersion is the docker/compose v2 release built from the Go
	// module proxy (Debian has only compose v1).
	ComposeModuleVersion = "v2.40.3"
	// JaegerModuleVersion is the Jaeger release built from its Go module for
	// the test's stand-in of the official Jaeger image.
	JaegerModuleVersion = "v1.75.0"
	// DebianSuite is the Debian release of the local base image.
	DebianSuite = "bookworm"
)

// Docker is a Docker engine the caller can use through the docker CLI.
type Docker struct {
	started *exec.Cmd
	done    chan struct{}
}

// StartDocker makes sure a Docker engine answers: if `docker info` fails it
// installs Debian's docker.io when dockerd is missing and starts
// `dockerd --storage-driver=overlay2` in the background, logging to
// <cache>/docker/dockerd.log. Stop ends only an engine StartDocker started;
// images and volumes stay in /var/lib/docker for the next run.
func StartDocker(ctx context.Context, log *slog.Logger) (*Docker, error) {
	log = orDiscard(log)
	if dockerAnswers(ctx) {
		return &Docker{}, nil
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		if err := aptInstall(ctx, log, "docker.io"); err != nil {
			return nil, fmt.Errorf("devstack: install docker.io: %w: %w", ErrNotInstalled, err)
		}
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "docker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: create %s: %w", dir, err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: dockerd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("dockerd", "--storage-driver=overlay2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log.Info("starting dockerd", "log", logf.Name())
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("devstack: start dockerd: %w", err)
	}
	d := &Docker{started: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for !dockerAnswers(ctx) {
		select {
		case <-d.done:
			return nil, fmt.Errorf("devstack: dockerd exited at start:\n%s", logTail(logf.Name(), 30))
		case <-ctx.Done():
			_ = d.Stop()
			return nil, fmt.Errorf("devstack: waiting for dockerd: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = d.Stop()
			return nil, fmt.Errorf("devstack: dockerd did not answer within a minute:\n%s", logTail(logf.Name(), 30))
		}
	}
	return d, nil
}

// Stop stops the engine if StartDocker started it (SIGTERM, then SIGKILL
// after 30 s); an engine that was already running is left alone.
func (d *Docker) Stop() error {
	if d == nil || d.started == nil {
		return nil
	}
	_ = d.started.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = d.started.Process.Kill()
		<-d.done
		return errors.New("devstack: dockerd did not stop within 30 s; killed")
	}
}

func dockerAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// ImageExists reports whether the engine has an image with the given reference.
func ImageExists(ctx context.Context, ref string) bool {
	return exec.CommandContext(ctx, "docker", "image", "inspect", ref).Run() == nil
}

// DebianBaseImage returns a local Debian image (plantlake-local/debian:bookworm)
// for builds on a machine without a registry: a minbase debootstrap of
// DebianSuite from the mirror apt uses, imported into the engine. The rootfs
// tarball is cached under <cache>/docker, so a new engine only imports it.
func DebianBaseImage(ctx context.Context, log *slog.Logger) (string, error) {
	log = orDiscard(log)
	ref := "plantlake-local/debian:" + DebianSuite
	if ImageExists(ctx, ref) {
		return ref, nil
	}
	err := withLock(ctx, "debian-base", func(cache string) error {
		if ImageExists(ctx, ref) {
			return nil
		}
		dir := filepath.Join(cache, "docker")
		tarball := filepath.Join(dir, "debian-"+DebianSuite+".tar")
		if !fileExists(tarball) {
			if _, err := exec.LookPath("debootstrap"); err != nil {
				if err := aptInstall(ctx, log, "debootstrap"); err != nil {
					return err
				}
			}
			mirror, err := aptMirror()
			if err != nil {
				return err
			}
			rootfs := filepath.Join(dir, "rootfs.tmp")
			if err := os.RemoveAll(rootfs); err != nil {
				return fmt.Errorf("clear %s: %w", rootfs, err)
			}
			log.Info("debootstrap", "suite", DebianSuite, "mirror", mirror)
			if err := run(ctx, log, nil, "debootstrap", "--variant=minbase", DebianSuite, rootfs, mirror); err != nil {
				return err
			}
			if err := run(ctx, log, nil, "tar", "-C", rootfs, "-cf", tarball+".tmp", "."); err != nil {
				return err
			}
			if err := os.Rename(tarball+".tmp", tarball); err != nil {
				return fmt.Errorf("keep %s: %w", tarball, err)
			}
			if err := os.RemoveAll(rootfs); err != nil {
				return fmt.Errorf("remove %s: %w", rootfs, err)
			}
		}
		log.Info("docker import", "image", ref)
		return run(ctx, log, nil, "docker", "import", tarball, ref)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: debian base image: %w", err)
	}
	return ref, nil
}

// aptMirror returns the first Debian mirror in apt's sources (deb822 or
// one-line format), e.g. http://deb.debian.org/debian.
func aptMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			var uri string
			switch {
			case len(fields) >= 2 && fields[0] == "URIs:":
				uri = fields[1]
			case len(fields) >= 3 && fields[0] == "deb":
				uri = fields[1]
				if strings.HasPrefix(uri, "[") {
					uri = fields[2]
				}
			}
			if uri != "" && !strings.Contains(uri, "security") {
				return uri, nil
			}
		}
	}
	return "", errors.New("no Debian mirror found in /etc/apt/sources.list*")
}

// GoBuilderImage returns a local stand-in for the official golang image
// (plantlake-local/golang:<go version>-bookworm): the machine's own Go
// toolchain (GOROOT) with gcc and the C library headers on the base image,
// laid out as the official image is (/usr/local/go, GOPATH=/go). It trusts
// the machine's CA bundle (/etc/ssl/certs/ca-certificates.crt) instead of
// Debian's, so that builds reach the Go module proxy wherever the machine
// does (through a TLS-inspecting egress, for one).
func GoBuilderImage(ctx context.Context, log *slog.Logger, base string) (string, error) {
	log = orDiscard(log)
	ref := "plantlake-local/golang:" + strings.TrimPrefix(runtime.Version(), "go") + "-" + DebianSuite
	if ImageExists(ctx, ref) {
		return ref, nil
	}
	err := withLock(ctx, "go-builder-image", func(string) error {
		if ImageExists(ctx, ref) {
			return nil
		}
		ctxDir, err := os.MkdirTemp("", "plantlake-go-builder-")
		if err != nil {
			return fmt.Errorf("context dir: %w", err)
		}
		defer os.RemoveAll(ctxDir)
		goroot := runtime.GOROOT()
		if out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output(); err == nil {
			goroot = strings.TrimSpace(string(out))
		}
		if err := run(ctx, log, nil, "cp", "-a", goroot, filepath.Join(ctxDir, "go")); err != nil {
			return err
		}
		if err := run(ctx, log, nil, "cp", "/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctxDir, "ca-certificates.crt")); err != nil {
			return err
		}
		dockerfile := `FROM ` + base + `
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev git \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY go /usr/local/go
ENV GOPATH=/go GOTOOLCHAIN=local PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
`
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			return fmt.Errorf("write Dockerfile: %w", err)
		}
		log.Info("building the Go builder image", "image", ref, "goroot", goroot)
		return run(ctx, log, []string{"DOCKER_BUILDKIT=0"}, "docker", "build", "-q", "-t", ref, ctxDir)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: go builder image: %w", err)
	}
	return ref, nil
}

// ComposeBinary returns the docker compose v2 CLI plugin, built once from the
// Go module proxy into <cache>/docker/docker-compose-<version>. `go install`
// refuses the module (its go.mod has exclude lines), so a copy of the
// downloaded module is built (about 7 minutes on 2 cores).
func ComposeBinary(ctx context.Context, log *slog.Logger) (string, error) {
	return moduleBinary(ctx, log, "github.com/docker/compose/v2", ComposeModuleVersion, "./cmd", "docker-compose")
}

// JaegerBinary returns Jaeger's all-in-one binary (cmd/jaeger), built once
// from its Go module into <cache>/docker/jaeger-<version>, statically
// linked, for an image that stands in for the official one. Its web UI
// assets are not in the module: the query API works, the UI does not.
func JaegerBinary(ctx context.Context, log *slog.Logger) (string, error) {
	return moduleBinary(ctx, log, "github.com/jaegertracing/jaeger", JaegerModuleVersion, "./cmd/jaeger", "jaeger")
}

// moduleBinary builds package pkg of a downloaded copy of module@version
// (with that module's own go.mod, outside any workspace) into
// <cache>/docker/<name>-<version>, once.
func moduleBinary(ctx context.Context, log *slog.Logger, module, version, pkg, name string) (string, error) {
	log = orDiscard(log)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "docker", name+"-"+version)
	if fileExists(out) {
		return out, nil
	}
	err = withLock(ctx, name+"-binary", func(string) error {
		if fileExists(out) {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(out), err)
		}
		tmp, err := os.MkdirTemp("", "plantlake-"+name+"-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		env := []string{"GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"}
		dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version)
		dl.Dir = tmp
		dl.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		dl.Stderr = &stderr
		js, err := dl.Output()
		if err != nil {
			return fmt.Errorf("go mod download %s@%s: %w\n%s", module, version, err, tail(stderr.Bytes(), 20))
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(js, &info); err != nil || info.Dir == "" {
			return fmt.Errorf("go mod download %s@%s: no module folder in %q", module, version, js)
		}
		src := filepath.Join(tmp, "src")
		if err := run(ctx, log, nil, "cp", "-r", info.Dir, src); err != nil {
			return err
		}
		if err := run(ctx, log, nil, "chmod", "-R", "u+w", src); err != nil {
			return err
		}
		log.Info("building from the Go module proxy (minutes; cached)", "module", module, "version", version)
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out+".tmp", pkg)
		build.Dir = src
		build.Env = append(os.Environ(), env...)
		var buf bytes.Buffer
		build.Stdout, build.Stderr = &buf, &buf
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build %s of %s@%s: %w\n%s", pkg, module, version, err, tail(buf.Bytes(), 30))
		}
		return os.Rename(out+".tmp", out)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: build %s %s: %w", name, version, err)
	}
	return out, nil
}

// DockerBuild runs the legacy builder (DOCKER_BUILDKIT=0: the docker CLI
// here may lack buildx) with the given arguments, streaming its output to w
// (nil: discarded) and returning an error with the tail of the output.
func DockerBuild(ctx context.Context, w io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var buf bytes.Buffer
	if w == nil {
		w = io.Discard
	}
	cmd.Stdout = io.MultiWriter(&buf, w)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker build %s: %w\n%s", strings.Join(args, " "), err, tail(buf.Bytes(), 40))
	}
	return nil
}
