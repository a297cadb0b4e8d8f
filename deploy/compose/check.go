package compose

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Ports are the default ports of DESIGN.md section 3: every plantlake
// service's gRPC and metrics port, published on the same host port.
var Ports = map[string]struct{ GRPC, Metrics uint32 }{
	"catalog":     {7001, 9101},
	"bridge":      {7002, 9102},
	"ingest":      {7003, 9103},
	"deserialize": {7004, 9104},
	"merge":       {7005, 9105},
}

// BrokerPorts are the ports the brokers and Jaeger publish (DESIGN.md
// section 3).
var BrokerPorts = map[string][]uint32{
	"mosquitto": {1883},
	"kafka":     {9092},
	"jaeger":    {4317, 16686},
}

// otelVariables are the standard OpenTelemetry variables the services'
// SDK reads (servicekit/telemetry); a misspelt one is refused like an
// unknown flag.
var otelVariables = []string{
	"OTEL_SDK_DISABLED",
	"OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_INSECURE",
	"OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_CERTIFICATE",
	"OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_PROPAGATORS",
}

// Dir returns the folder of docker-compose.yml (this package's folder).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Load loads compose files (paths relative to Dir) with compose-go, as
// docker compose would, with the given profiles and environment
// ("KEY=value") for interpolation; the process environment is not used.
func Load(ctx context.Context, files []string, profiles []string, env []string) (*types.Project, error) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = filepath.Join(Dir(), f)
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(Dir()),
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
		cli.WithName("plantlake"),
	)
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", files, err)
	}
	return p, nil
}

// PlantlakeServices returns the names of the services built from the
// Dockerfile (those with a build target), enabled or in a profile, sorted.
func PlantlakeServices(p *types.Project) []string {
	var names []string
	for _, services := range []types.Services{p.Services, p.DisabledServices} {
		for name, s := range services {
			if s.Build != nil && s.Build.Target != "" {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// Service returns a service, enabled or in a profile.
func Service(p *types.Project, name string) (types.ServiceConfig, bool) {
	if s, ok := p.Services[name]; ok {
		return s, true
	}
	s, ok := p.DisabledServices[name]
	return s, ok
}

var envInHelp = regexp.MustCompile(`\(env (PLANTLAKE_[A-Z0-9_]+)\)`)

// flagInHelp matches the flag names of Go's flag package usage output.
var flagInHelp = regexp.MustCompile(`(?m)^\s+-{1,2}([a-z0-9][a-z0-9.-]*)`)

// Flags is what a binary's --help says it accepts.
type Flags struct {
	// Env holds the PLANTLAKE_* variables that give flags their defaults.
	Env map[string]bool
	// Names holds the flag names.
	Names map[string]bool
}

// ParseHelp reads the output of a plantlake binary's --help.
func ParseHelp(help string) Flags {
	f := Flags{Env: map[string]bool{}, Names: map[string]bool{}}
	for _, m := range envInHelp.FindAllStringSubmatch(help, -1) {
		f.Env[m[1]] = true
	}
	for _, m := range flagInHelp.FindAllStringSubmatch(help, -1) {
		f.Names[m[1]] = true
	}
	return f
}

// CheckEnvironment returns a problem for every variable of a plantlake
// service's environment that its binary does not read: a PLANTLAKE_*
// variable of no flag, an OTEL_* variable the SDK does not know, or any
// other variable; and for every flag named in its command or entrypoint
// that the binary does not have.
func CheckEnvironment(s types.ServiceConfig, f Flags) []error {
	var errs []error
	for _, name := range sortedKeys(s.Environment) {
		switch {
		case strings.HasPrefix(name, "PLANTLAKE_"):
			if !f.Env[name] {
				errs = append(errs, fmt.Errorf("%s: environment %s: no flag of %s reads it", s.Name, name, s.Name))
			}
		case strings.HasPrefix(name, "OTEL_"):
			if !slices.Contains(otelVariables, name) {
				errs = append(errs, fmt.Errorf("%s: environment %s: not a standard OpenTelemetry variable", s.Name, name))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: environment %s: services are configured only through PLANTLAKE_* and OTEL_*", s.Name, name))
		}
	}
	for _, arg := range append(slices.Clone(s.Entrypoint), s.Command...) {
		for _, m := range regexp.MustCompile(`(?:^|\s)--([a-z0-9][a-z0-9.-]*)`).FindAllStringSubmatch(arg, -1) {
			if !f.Names[m[1]] {
				errs = append(errs, fmt.Errorf("%s: command line --%s: no such flag", s.Name, m[1]))
			}
		}
	}
	return errs
}

// CheckPorts returns a problem for every way a plantlake service's ports
// disagree with DESIGN.md section 3 and with each other: its gRPC and
// metrics listen addresses (PLANTLAKE_GRPC_ADDR, PLANTLAKE_METRICS_ADDR),
// the container ports it publishes (on the same host port), and the
// healthcheck, which must probe the gRPC port. publish says whether the
// service must publish its ports (scale-out overrides drop them).
func CheckPorts(s types.ServiceConfig, publish bool) []error {
	want, ok := Ports[s.Name]
	if !ok {
		return []error{fmt.Errorf("%s: not a plantlake service of DESIGN.md section 3", s.Name)}
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s.Name, fmt.Sprintf(format, args...)))
	}
	grpcPort := envPort(s, "PLANTLAKE_GRPC_ADDR")
	metricsPort := envPort(s, "PLANTLAKE_METRICS_ADDR")
	if grpcPort != want.GRPC {
		bad("PLANTLAKE_GRPC_ADDR listens on port %d, DESIGN.md says %d", grpcPort, want.GRPC)
	}
	if metricsPort != want.Metrics {
		bad("PLANTLAKE_METRICS_ADDR listens on port %d, DESIGN.md says %d", metricsPort, want.Metrics)
	}
	if publish {
		for _, port := range []uint32{want.GRPC, want.Metrics} {
			if !publishes(s, port) {
				bad("does not publish container port %d on host port %d", port, port)
			}
		}
	}
	for _, p := range s.Ports {
		if p.Target != grpcPort && p.Target != metricsPort {
			bad("publishes container port %d, on which it does not listen", p.Target)
		}
	}
	if s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 {
		bad("no healthcheck")
		return errs
	}
	test := s.HealthCheck.Test
	if test[0] != "CMD" || !slices.Contains(test, "healthprobe") {
		bad("healthcheck %q does not run healthprobe", test)
	}
	i := slices.Index(test, "-addr")
	if i < 0 || i+1 >= len(test) {
		bad("healthcheck %q has no -addr", test)
	} else if _, port, err := net.SplitHostPort(test[i+1]); err != nil || port != strconv.Itoa(int(grpcPort)) {
		bad("healthcheck probes %s, not the gRPC port %d", test[i+1], grpcPort)
	}
	return errs
}

// CheckBrokerPorts returns a problem for every port of BrokerPorts a broker
// or Jaeger does not publish on the same host port.
func CheckBrokerPorts(s types.ServiceConfig) []error {
	var errs []error
	for _, port := range BrokerPorts[s.Name] {
		if !publishes(s, port) {
			errs = append(errs, fmt.Errorf("%s: does not publish container port %d on host port %d", s.Name, port, port))
		}
	}
	return errs
}

func envPort(s types.ServiceConfig, name string) uint32 {
	v := s.Environment[name]
	if v == nil {
		return 0
	}
	_, port, err := net.SplitHostPort(*v)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0
	}
	return uint32(n)
}

func publishes(s types.ServiceConfig, port uint32) bool {
	for _, p := range s.Ports {
		if p.Target == port && p.Published == strconv.Itoa(int(port)) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TableWriters are the services that write data files into the tables'
// folders (the catalog only commits the log entries naming them).
var TableWriters = []string{"ingest", "deserialize", "merge"}

// CheckWarehouse returns a problem for every table writer that does not
// mount the catalog's warehouse volume at the catalog's --warehouse path:
// the catalog hands out table locations under that path, and refuses a
// commit whose files it cannot see.
func CheckWarehouse(p *types.Project) []error {
	catalog, ok := Service(p, "catalog")
	if !ok {
		return []error{fmt.Errorf("no catalog service")}
	}
	path := catalog.Environment["PLANTLAKE_WAREHOUSE"]
	if path == nil {
		return []error{fmt.Errorf("catalog: no PLANTLAKE_WAREHOUSE")}
	}
	source := ""
	for _, v := range catalog.Volumes {
		if v.Target == *path {
			source = v.Source
		}
	}
	if source == "" {
		return []error{fmt.Errorf("catalog: no volume mounted at its warehouse %s", *path)}
	}
	var errs []error
	for _, name := range TableWriters {
		s, ok := Service(p, name)
		if !ok {
			continue
		}
		mounted := false
		for _, v := range s.Volumes {
			mounted = mounted || (v.Source == source && v.Target == *path && !v.ReadOnly)
		}
		if !mounted {
			errs = append(errs, fmt.Errorf("%s: does not mount the catalog's warehouse volume %s at %s (read-write)", name, source, *path))
		}
	}
	return errs
}
