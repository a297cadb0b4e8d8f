package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// StackConfig says how to start a whole plantlake stack as local processes:
// Mosquitto, Kafka and the services, wired to each other.
type StackConfig struct {
	// Dir holds everything: the brokers' data, the warehouse and one log
	// per service (Dir/logs/<name>.log). Required.
	Dir string
	// Warehouse is the catalog's warehouse; default Dir/warehouse.
	Warehouse string
	// Kafka and Mosquitto are brokers to use; when nil the stack starts its
	// own in Dir and stops them in Close.
	Kafka     *KafkaBroker
	Mosquitto *MosquittoBroker
	// MosquittoAutosave is the autosave interval of the Mosquitto the stack
	// starts itself (MosquittoConfig.AutosaveInterval; default 1s).
	MosquittoAutosave time.Duration
	// Services names the services to start, in Services' order whatever
	// the order here; default all of Services.
	Services []string
	// Env is added to every service's environment (e.g. OTEL_* settings).
	Env []string
	// Args are a service's extra flags, after the stack's own, so they win
	// (e.g. Args["merge"] = {"--strategy", "latest_wins"}).
	Args map[string][]string
	// Nice is a service's niceness (ServiceConfig.Nice), e.g. Nice["merge"]
	// = 5 lets the ingress (Mosquitto, bridge, Kafka) have the CPU first.
	Nice map[string]int
	// ReadyTimeout bounds each service's start; default 60s.
	ReadyTimeout time.Duration
	// CatalogOverTCP has the hops dial the catalog's TCP address. By
	// default the catalog also serves a Unix socket, Dir/catalog.sock
	// (TCP when that path is too long for a socket), and the hops, on the
	// same machine, commit through it.
	CatalogOverTCP bool
}

// Stack is a running plantlake stack: the brokers and one process per
// service, each of which can be killed and restarted on its address.
type Stack struct {
	cfg       StackConfig
	Kafka     *KafkaBroker
	Mosquitto *MosquittoBroker
	// Catalog is the catalog process (also Service("catalog")); nil when
	// the stack was started without it.
	Catalog   *CatalogProcess
	services  map[string]*ServiceProcess
	ownKafka  bool
	ownMosqtt bool
}

// StartStack starts the brokers (unless given) and the services in
// dependency order, each on a free loopback port, waiting until each serves.
// On error everything it started is stopped again.
func StartStack(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("devstack: stack: no dir")
	}
	if cfg.Warehouse == "" {
		cfg.Warehouse = filepath.Join(cfg.Dir, "warehouse")
	}
	if len(cfg.Services) == 0 {
		cfg.Services = Services
	}
	for _, name := range cfg.Services {
		if !slices.Contains(Services, name) {
			return nil, fmt.Errorf("devstack: stack: unknown service %q", name)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("devstack: stack dir: %w", err)
	}
	s := &Stack{cfg: cfg, Kafka: cfg.Kafka, Mosquitto: cfg.Mosquitto, services: map[string]*ServiceProcess{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Kafka == nil {
		if s.Kafka, err = retryPorts(func() (*KafkaBroker, error) {
			return StartKafka(ctx, KafkaConfig{Dir: filepath.Join(cfg.Dir, "kafka")})
		}); err != nil {
			return nil, err
		}
		s.ownKafka = true
	}
	if s.Mosquitto == nil {
		if s.Mosquitto, err = retryPorts(func() (*MosquittoBroker, error) {
			return StartMosquitto(ctx, MosquittoConfig{Dir: filepath.Join(cfg.Dir, "mosquitto"), AutosaveInterval: cfg.MosquittoAutosave})
		}); err != nil {
			return nil, err
		}
		s.ownMosqtt = true
	}
	if err := CreatePipelineTopics(ctx, s.Kafka.Brokers()); err != nil {
		return nil, err
	}
	for _, name := range Services {
		if !slices.Contains(cfg.Services, name) {
			continue
		}
		if err := s.start(ctx, name); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// retryPorts runs start again on fresh ports when another process took a
// port between choosing and binding it.
func retryPorts[T any](start func() (T, error)) (T, error) {
	var v T
	var err error
	for range portAttempts {
		if v, err = start(); err == nil || !portTaken(err) {
			break
		}
	}
	return v, err
}

// start starts one service with the flags that wire it to the others.
func (s *Stack) start(ctx context.Context, name string) error {
	brokers := s.Kafka.Brokers()
	logPath := filepath.Join(s.cfg.Dir, "logs", name+".log")
	extra := s.cfg.Args[name]
	if name == "catalog" {
		var socket string
		if p := filepath.Join(s.cfg.Dir, "catalog.sock"); !s.cfg.CatalogOverTCP && socketPathFits(p) {
			socket = p
		}
		c, err := StartCatalog(ctx, CatalogConfig{
			Warehouse: s.cfg.Warehouse, Brokers: brokers, Args: extra, Env: s.cfg.Env,
			LogPath: logPath, ReadyTimeout: s.cfg.ReadyTimeout, UnixSocket: socket, Nice: s.cfg.Nice[name],
		})
		if err != nil {
			return err
		}
		s.Catalog, s.services[name] = c, c.ServiceProcess
		return nil
	}
	args := []string{"--kafka-brokers", brokers}
	if name == "bridge" {
		args = append(args, "--mqtt-broker", s.Mosquitto.URL(), "--mqtt-client-id", "plantlake-bridge-"+filepath.Base(s.cfg.Dir))
	} else {
		if s.Catalog == nil {
			return fmt.Errorf("devstack: stack: %s needs the catalog", name)
		}
		args = append(args, "--catalog-addr", s.Catalog.Target())
	}
	p, err := StartService(ctx, ServiceConfig{
		Name: name, Args: append(args, extra...), Env: s.cfg.Env,
		LogPath: logPath, ReadyTimeout: s.cfg.ReadyTimeout, Nice: s.cfg.Nice[name],
	})
	if err != nil {
		return err
	}
	s.services[name] = p
	return nil
}

// socketPathFits says whether path, made absolute, is short enough for a
// Unix socket with room to spare (the catalog binds it in a folder of its
// own beside the path first).
func socketPathFits(path string) bool {
	abs, err := filepath.Abs(path)
	return err == nil && len(abs) <= 90
}

// Service returns the named service's process, nil if the stack runs no
// such service.
func (s *Stack) Service(name string) *ServiceProcess { return s.services[name] }

// Warehouse is the catalog's warehouse.
func (s *Stack) Warehouse() string { return s.cfg.Warehouse }

// Dir is the stack's folder.
func (s *Stack) Dir() string { return s.cfg.Dir }

// LogTails returns the last n lines of every service's log, for a failing
// test's output.
func (s *Stack) LogTails(n int) string {
	var out string
	for _, name := range Services {
		if p := s.services[name]; p != nil {
			out += p.LogTail(n) + "\n"
		}
	}
	return out
}

// Close kills the services (the bridge first, so nothing new flows in) and
// the brokers the stack started.
func (s *Stack) Close() {
	for i := len(Services) - 1; i >= 0; i-- {
		if p := s.services[Services[i]]; p != nil {
			p.Kill()
		}
	}
	if s.ownMosqtt && s.Mosquitto != nil {
		s.Mosquitto.kill()
	}
	if s.ownKafka && s.Kafka != nil {
		s.Kafka.kill()
	}
}

// NewStack starts a stack for the test (cfg.Dir defaults to a t.TempDir).
// t.Cleanup closes it; if the test failed, every service's log tail goes to
// the test log.
func NewStack(t testing.TB, cfg StackConfig) *Stack {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, err := StartStack(ctx, cfg)
	if err != nil {
		t.Fatalf("devstack: start stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("devstack: stack in %s\n%s", s.Dir(), s.LogTails(30))
		}
		s.Close()
	})
	return s
}
