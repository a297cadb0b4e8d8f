package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// MosquittoConfig says where and how to run Mosquitto.
// DefaultMosquittoMaxInflight is MosquittoConfig.MaxInflight's default, the
// window services/bridge/README.md recommends for production: 10,000
// readings still allow 70,000/s at a 140 ms acknowledgement (the bridge acks
// after Kafka stored a reading), and an overloaded or Kafka-less bridge holds
// at most that many instead of the broker's whole backlog.
const DefaultMosquittoMaxInflight = 10_000

type MosquittoConfig struct {
	// Dir holds mosquitto.conf, the persistence database (mosquitto.db) and
	// mosquitto.log. The database survives restarts.
	Dir string
	// Host is the loopback address to listen on; default 127.0.0.1.
	Host string
	// Port is the MQTT port; 0 picks a free one.
	Port int
	// AutosaveInterval is how often Mosquitto saves its persistent state
	// besides on shutdown; default 1s, the smallest window a kill -9 of the
	// broker can lose. Larger values cost less CPU under load.
	AutosaveInterval time.Duration
	// MaxInflight is max_inflight_messages: how many QoS 1 messages the
	// broker sends a subscriber before it waits for acknowledgements, and so
	// the most a bridge holds in memory; the rest wait in the broker's
	// persistent queue (max_queued_messages is unlimited). Default
	// DefaultMosquittoMaxInflight; -1 is Mosquitto's 0, no limit.
	MaxInflight int
	// StartTimeout bounds the wait until the port accepts; default 20s.
	StartTimeout time.Duration
	// StopTimeout bounds the wait after SIGTERM before SIGKILL; default 30s.
	StopTimeout time.Duration
	// Daemon makes Mosquitto outlive this program and writes Dir/mosquitto.pid.
	Daemon bool
	// Log receives devstack's own progress messages; nil discards them.
	Log *slog.Logger

	// Users, when not empty, turns anonymous access off on every listener:
	// clients must log in with one of these user names and its password.
	// devstack writes Dir/passwd with mosquitto_passwd.
	Users map[string]string
	// TLS, when set, adds a TLS listener on TLSPort.
	TLS *MosquittoTLS
	// TLSPort is the TLS listener's port; 0 picks a free one.
	TLSPort int
}

// MosquittoTLS is the TLS listener's configuration: PEM files.
type MosquittoTLS struct {
	// CertFile and KeyFile are the broker's certificate (with any
	// intermediates) and private key.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the listener require a client
	// certificate signed by one of its CAs.
	ClientCAFile string
}

// MosquittoBroker is a running (or stopped, restartable) Mosquitto.
type MosquittoBroker struct {
	cfg    MosquittoConfig
	binary string

	// tb is the test that owns the broker (nil outside tests): Start, Stop
	// and Restart report their errors to it as well as returning them.
	tb testing.TB

	mu   sync.Mutex
	proc *process
}

func (c *MosquittoConfig) setDefaults() error {
	if c.Dir == "" {
		return errors.New("devstack: MosquittoConfig.Dir is required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("devstack: mosquitto dir: %w", err)
	}
	c.Dir = dir
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	switch {
	case c.MaxInflight == 0:
		c.MaxInflight = DefaultMosquittoMaxInflight
	case c.MaxInflight < 0:
		c.MaxInflight = 0
	}
	if c.AutosaveInterval == 0 {
		c.AutosaveInterval = time.Second
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 20 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Port == 0 {
		if c.Port, err = freePort(); err != nil {
			return err
		}
	}
	if c.TLS != nil && c.TLSPort == 0 {
		if c.TLSPort, err = freePort(); err != nil {
			return err
		}
	}
	return nil
}

// writePasswordFile writes Dir/passwd for cfg.Users with mosquitto_passwd,
// which hashes the passwords as the broker expects.
func (m *MosquittoBroker) writePasswordFile(ctx context.Context) error {
	path := m.passwordFile()
	_ = os.Remove(path)
	tool := filepath.Join(filepath.Dir(m.binary), "mosquitto_passwd")
	if !fileExists(tool) {
		var err error
		if tool, err = exec.LookPath("mosquitto_passwd"); err != nil {
			return fmt.Errorf("devstack: mosquitto_passwd: %w: %w", ErrNotInstalled, err)
		}
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return fmt.Errorf("devstack: password file: %w", err)
	}
	users := slices.Sorted(maps.Keys(m.cfg.Users))
	for _, u := range users {
		out, err := exec.CommandContext(ctx, tool, "-b", path, u, m.cfg.Users[u]).CombinedOutput()
		if err != nil {
			return fmt.Errorf("devstack: mosquitto_passwd %s: %w\n%s", u, err, out)
		}
	}
	return nil
}

func (m *MosquittoBroker) passwordFile() string { return filepath.Join(m.cfg.Dir, "passwd") }

// StartMosquitto installs Mosquitto if needed and starts it with a
// configuration for at-least-once delivery (see mosquittoConf).
func StartMosquitto(ctx context.Context, cfg MosquittoConfig) (*MosquittoBroker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	bin, err := MosquittoPath(ctx, cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: mosquitto dir: %w", err)
	}
	m := &MosquittoBroker{cfg: cfg, binary: bin}
	if err := m.StartContext(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// mosquittoConf is the broker configuration: persistent sessions saved to
// disk, no limit on queued or in-flight messages (Mosquitto's defaults drop
// a persistent session's messages beyond 1000 and throttle a subscriber
// that acknowledges late to 20 in flight), anonymous access on loopback
// unless Users are set, and a TLS listener when TLS is set.
func (m *MosquittoBroker) mosquittoConf() string {
	c := m.cfg
	secs := int(c.AutosaveInterval / time.Second)
	if secs < 1 {
		secs = 1
	}
	access := []string{"allow_anonymous true"}
	if len(c.Users) > 0 {
		access = []string{"allow_anonymous false", "password_file " + m.passwordFile()}
	}
	var tlsListener []string
	if t := c.TLS; t != nil {
		tlsListener = []string{
			fmt.Sprintf("listener %d %s", c.TLSPort, c.Host),
			"certfile " + t.CertFile,
			"keyfile " + t.KeyFile,
		}
		if t.ClientCAFile != "" {
			tlsListener = append(tlsListener, "cafile "+t.ClientCAFile, "require_certificate true")
		}
	}
	return strings.Join(slices.Concat([]string{
		"# written by devstack; rewritten on every start",
	}, access, []string{
		fmt.Sprintf("listener %d %s", c.Port, c.Host),
		// Running as root, mosquitto would switch to the mosquitto user and
		// lose access to a data dir owned by root.
		"user root",
		"persistence true",
		"persistence_location " + c.Dir + "/",
		"persistence_file mosquitto.db",
		fmt.Sprintf("autosave_interval %d", secs),
		"autosave_on_changes false",
		"max_queued_messages 0",
		"max_queued_bytes 0",
		fmt.Sprintf("max_inflight_messages %d", c.MaxInflight),
		"max_inflight_bytes 0",
		"log_dest file " + filepath.Join(c.Dir, "mosquitto.log"),
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
		"log_timestamp_format %Y-%m-%dT%H:%M:%S",
	}, tlsListener, []string{""}), "\n")
}

// URL returns the broker URL for paho, "tcp://host:port".
func (m *MosquittoBroker) URL() string { return "tcp://" + m.Addr() }

// TLSURL returns the TLS listener's URL, "ssl://host:port", or "" without TLS.
func (m *MosquittoBroker) TLSURL() string {
	if m.cfg.TLS == nil {
		return ""
	}
	return fmt.Sprintf("ssl://%s:%d", m.cfg.Host, m.cfg.TLSPort)
}

// Addr returns "host:port".
func (m *MosquittoBroker) Addr() string { return fmt.Sprintf("%s:%d", m.cfg.Host, m.cfg.Port) }

// Dir returns the broker's directory.
func (m *MosquittoBroker) Dir() string { return m.cfg.Dir }

// LogPath returns the broker's log file.
func (m *MosquittoBroker) LogPath() string { return filepath.Join(m.cfg.Dir, "mosquitto.log") }

func (m *MosquittoBroker) spec() procSpec {
	conf := filepath.Join(m.cfg.Dir, "mosquitto.conf")
	pid := ""
	if m.cfg.Daemon {
		pid = filepath.Join(m.cfg.Dir, "mosquitto.pid")
	}
	return procSpec{
		name:    "mosquitto",
		argv:    []string{m.binary, "-c", conf},
		logPath: filepath.Join(m.cfg.Dir, "stdout.log"),
		pidFile: pid,
		marker:  conf,
		daemon:  m.cfg.Daemon,
	}
}

// Start starts the broker with its saved state and waits until it accepts
// connections. Starting a running broker is an error.
func (m *MosquittoBroker) Start() error {
	return m.report(m.StartContext(context.Background()))
}

// StartContext is Start bounded by ctx as well as the start timeout.
func (m *MosquittoBroker) StartContext(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && m.proc.alive() {
		return fmt.Errorf("devstack: mosquitto at %s is already running", m.Addr())
	}
	if m.cfg.Daemon {
		if p, err := findProcess(m.spec()); err == nil {
			return fmt.Errorf("devstack: mosquitto from %s is already running as pid %d", m.cfg.Dir, p.pid)
		}
	}
	if len(m.cfg.Users) > 0 {
		if err := m.writePasswordFile(ctx); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "mosquitto.conf"), []byte(m.mosquittoConf()), 0o644); err != nil {
		return fmt.Errorf("devstack: write mosquitto.conf: %w", err)
	}
	p, err := startProcess(m.spec())
	if err != nil {
		return err
	}
	if err := waitPort(ctx, p, m.Addr(), m.cfg.StartTimeout); err != nil {
		p.kill()
		return fmt.Errorf("%w\n%s\n%s", err, p.logTail(20), logTail(m.LogPath(), 40))
	}
	m.proc = p
	m.cfg.Log.Info("mosquitto serving", "url", m.URL(), "pid", p.pid)
	return nil
}

// Stop stops the broker with SIGTERM, on which Mosquitto saves its
// persistent sessions and queued messages; it is killed if it has not exited
// within the stop timeout.
func (m *MosquittoBroker) Stop() error {
	return m.report(m.stop())
}

func (m *MosquittoBroker) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return nil
	}
	err := m.proc.stop(m.cfg.StopTimeout)
	m.proc = nil
	return err
}

// Restart stops the broker with SIGTERM and starts it again on the same
// port with the state it saved.
func (m *MosquittoBroker) Restart() error {
	if err := m.stop(); err != nil {
		return m.report(fmt.Errorf("devstack: restart mosquitto: %w", err))
	}
	return m.report(m.StartContext(context.Background()))
}

// kill ends the broker at once, for test cleanup where the data is discarded.
func (m *MosquittoBroker) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		m.proc.kill()
		m.proc = nil
	}
}

// Running reports whether the broker process is alive.
func (m *MosquittoBroker) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && m.proc.alive()
}

// Pid returns the broker's process id, 0 when it is not running.
func (m *MosquittoBroker) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return 0
	}
	return m.proc.pid
}

// waitPort waits until addr accepts TCP connections, the process exits, or
// the timeout passes.
func waitPort(ctx context.Context, p *process, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if !p.alive() {
			return fmt.Errorf("%w: %s exited during start (%v)", ErrNotRunning, p.spec.name, p.waitErr)
		}
		if portOpen(addr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s at %s not accepting after %s: %w", p.spec.name, addr, timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// report marks the owning test failed when err is not nil, and returns err.
func (m *MosquittoBroker) report(err error) error {
	if err != nil && m.tb != nil {
		m.tb.Helper()
		m.tb.Errorf("%v", err)
	}
	return err
}
