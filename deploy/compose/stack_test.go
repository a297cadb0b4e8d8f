//go:build compose

package compose

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/devstack"
	catalogv1 "github.com/plantlake/plantlake/proto/plantlake/catalog/v1"
)

// project is the compose project name of the test, so that a stack a user
// brought up (project plantlake) keeps its containers and volumes.
const project = "plantlake-composetest"

// stack drives docker compose on the real compose file plus the override
// that swaps in the local broker and Jaeger images.
type stack struct {
	t       *testing.T
	compose string
	env     []string
}

func (s *stack) cmd(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"-f", filepath.Join(Dir(), "docker-compose.yml"), "-f", filepath.Join(Dir(), "local", "docker-compose.local.yml"), "-p", project}
	c := exec.CommandContext(ctx, s.compose, append(base, args...)...)
	c.Env = append(os.Environ(), s.env...)
	return c
}

func (s *stack) run(ctx context.Context, args ...string) (string, error) {
	out, err := s.cmd(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker compose %s: %w\n%s", strings.Join(args, " "), err, tailLines(string(out), 60))
	}
	return string(out), nil
}

// container is a line of `docker compose ps --format json`.
type container struct {
	Name    string
	Service string
	State   string
	Health  string
}

func (s *stack) ps(ctx context.Context) ([]container, error) {
	out, err := s.cmd(ctx, "ps", "-a", "--format", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("docker compose ps: %w", err)
	}
	var cs []container
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var c container
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("docker compose ps output %q: %w", out, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// timings records how long each phase took, for the test log and the report.
type timings struct {
	mu    sync.Mutex
	names []string
	took  map[string]time.Duration
}

func (tm *timings) phase(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.took == nil {
		tm.took = map[string]time.Duration{}
	}
	tm.names = append(tm.names, name)
	tm.took[name] = time.Since(start)
	return err
}

func (tm *timings) String() string {
	var b strings.Builder
	var total time.Duration
	for _, n := range tm.names {
		fmt.Fprintf(&b, "  %-44s %8.1fs\n", n, tm.took[n].Seconds())
		total += tm.took[n]
	}
	fmt.Fprintf(&b, "  %-44s %8.1fs", "total", total.Seconds())
	return b.String()
}

// TestComposeStack builds every image (plantlake's from the real
// Dockerfile, the brokers' and Jaeger's stand-ins locally), brings the real
// compose file up, and checks: every service healthy; every service's
// environment known to the binary in its image; readings published to the
// published MQTT port reach raw, read through the published catalog port
// and with delta-rs from the warehouse volume, then in bronze and gold once
// deserialize and merge are in the stack; a `docker kill` of ingest
// in the middle of a stream loses and duplicates nothing; traces reach
// Jaeger; `docker compose down -v` removes everything.
func TestComposeStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var tm timings
	defer func() { t.Logf("phases:\n%s", tm.String()) }()
	must := func(name string, fn func() error) {
		t.Helper()
		if err := tm.phase(name, fn); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	var (
		docker                      *devstack.Docker
		base, builder               string
		composeBin, jaegerBin, libs string
	)
	must("docker engine", func() (err error) { docker, err = devstack.StartDocker(ctx, log); return err })
	t.Cleanup(func() {
		if err := docker.Stop(); err != nil {
			t.Error(err)
		}
	})
	must("compose v2 binary (cached)", func() (err error) { composeBin, err = devstack.ComposeBinary(ctx, log); return err })
	must("kafka jars (cached)", func() (err error) { libs, err = devstack.KafkaLibs(ctx, log); return err })
	must("debian base image (debootstrap, cached)", func() (err error) { base, err = devstack.DebianBaseImage(ctx, log); return err })
	must("go builder image", func() (err error) { builder, err = devstack.GoBuilderImage(ctx, log, base); return err })
	py := devstack.Python(t)

	token := randomHex(t, 16)
	st := &stack{t: t, compose: composeBin, env: []string{"PLANTLAKE_AUTH_TOKEN=" + token, "DOCKER_BUILDKIT=0"}}
	p, err := Load(ctx, []string{"docker-compose.yml", "local/docker-compose.local.yml"}, nil, st.env)
	if err != nil {
		t.Fatal(err)
	}

	// The stand-ins of the three official images, one build at a time.
	local := func(name string, files map[string]string, dirs map[string]string) func() error {
		return func() error {
			s := p.Services[name]
			dir := t.TempDir()
			if err := copyTree(filepath.Join(Dir(), "local", name), dir); err != nil {
				return err
			}
			for dst, src := range files {
				if err := exec.CommandContext(ctx, "cp", src, filepath.Join(dir, dst)).Run(); err != nil {
					return fmt.Errorf("copy %s: %w", src, err)
				}
			}
			for dst, src := range dirs {
				if err := copyTree(src, filepath.Join(dir, dst)); err != nil {
					return err
				}
			}
			return devstack.DockerBuild(ctx, nil, "--build-arg", "BASE_IMAGE="+base, "-t", s.Image, dir)
		}
	}
	must("image mosquitto (Debian's)", local("mosquitto", nil, nil))
	must("image kafka (Maven jars, Debian JRE)", local("kafka", nil, map[string]string{"libs": libs}))

	// Every enabled plantlake service from the real Dockerfile, with the
	// local base images as build arguments.
	services := enabledPlantlakeServices(p)
	for _, name := range services {
		s := p.Services[name]
		must("image "+name+" (deploy/compose/Dockerfile)", func() error {
			return devstack.DockerBuild(ctx, nil,
				"-f", filepath.Join(Dir(), "Dockerfile"), "--target", s.Build.Target,
				"--build-arg", "GO_IMAGE="+builder, "--build-arg", "RUNTIME_IMAGE="+base,
				"-t", s.Image, repoRootDir())
		})
	}

	must("jaeger binary (cached)", func() (err error) { jaegerBin, err = devstack.JaegerBinary(ctx, log); return err })
	must("image jaeger (Go module)", local("jaeger", map[string]string{"jaeger": jaegerBin}, nil))

	// The environment of every service against the --help of the binary in
	// its image, and the ports and healthchecks of the loaded file.
	for _, name := range services {
		s := p.Services[name]
		out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--entrypoint", "/usr/local/bin/"+name, s.Image, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help in %s: %v\n%s", name, s.Image, err, out)
		}
		for _, err := range append(CheckEnvironment(s, ParseHelp(string(out))), CheckPorts(s, true)...) {
			t.Error(err)
		}
	}
	for _, err := range CheckWarehouse(p) {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := st.cmd(context.Background(), "ps", "-a").CombinedOutput()
			t.Logf("docker compose ps:\n%s", out)
			out, _ = st.cmd(context.Background(), "logs", "--no-color", "--tail", "40").CombinedOutput()
			t.Logf("docker compose logs (tails):\n%s", out)
		}
		err := tm.phase("docker compose down -v", func() error {
			_, err := st.run(context.Background(), "down", "-v", "--timeout", "20")
			return err
		})
		if err != nil {
			t.Error(err)
		}
		for _, v := range []string{"warehouse", "kafka-data", "mosquitto-data"} {
			if exec.Command("docker", "volume", "inspect", project+"_"+v).Run() == nil {
				t.Errorf("volume %s_%s still exists after down -v", project, v)
			}
		}
		t.Logf("phases:\n%s", tm.String())
	})
	// A stack of an earlier, interrupted run would hold the ports.
	if _, err := st.run(ctx, "down", "-v", "--timeout", "5"); err != nil {
		t.Fatal(err)
	}
	must("published host ports free", func() error { return waitPortsFree(ctx, p, 3*time.Minute) })
	must("docker compose up --wait", func() error {
		_, err := st.run(ctx, "up", "-d", "--wait", "--wait-timeout", "600")
		return err
	})
	checkAllHealthy(ctx, t, st, p)

	conn, err := grpc.NewClient("127.0.0.1:7001", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	catalog := catalogv1.NewCatalogServiceClient(conn)
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	// The token from the environment is really required.
	if _, err := catalog.ListTables(ctx, &catalogv1.ListTablesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListTables without the token through the published port: %v, want Unauthenticated", err)
	}

	pub := newPublisher(t, "tcp://127.0.0.1:1883")
	const perRound = 300
	var want []string
	must("readings reach raw (published catalog port)", func() error {
		want = append(want, pub.publish(0, perRound, 0)...)
		return waitForPayloads(authed, catalog, want, 5*time.Minute)
	})

	// docker kill ingest (SIGKILL) while readings stream in, start it again,
	// and nothing may be lost or duplicated.
	ingest := containerOf(ctx, t, st, "ingest")
	must("docker kill ingest mid-stream, all readings once", func() error {
		var wg sync.WaitGroup
		var got []string
		wg.Add(1)
		go func() { defer wg.Done(); got = pub.publish(perRound, perRound, 10*time.Millisecond) }()
		time.Sleep(1500 * time.Millisecond)
		if out, err := exec.CommandContext(ctx, "docker", "kill", ingest).CombinedOutput(); err != nil {
			return fmt.Errorf("docker kill %s: %v\n%s", ingest, err, out)
		}
		// Docker counts a kill as a manual stop: the restart policy leaves
		// the container down, so start it as an operator would.
		if out, err := exec.CommandContext(ctx, "docker", "start", ingest).CombinedOutput(); err != nil {
			return fmt.Errorf("docker start %s: %v\n%s", ingest, err, out)
		}
		wg.Wait()
		want = append(want, got...)
		if err := waitRunning(ctx, ingest, 2*time.Minute); err != nil {
			return err
		}
		return waitForPayloads(authed, catalog, want, 5*time.Minute)
	})
	if _, err := st.run(ctx, "up", "-d", "--wait", "--wait-timeout", "300"); err != nil {
		t.Fatal(err)
	}
	checkAllHealthy(ctx, t, st, p)

	// Downstream of raw: every raw record exactly once in bronze (all the
	// readings are valid), once deserialize is part of the stack.
	// Each reading has its own gold key (sensor_id, measurement, ts), so gold
	// holds every one too, once merge is part of the stack.
	var raw map[string]int
	if _, ok := p.Services["deserialize"]; ok {
		must("every raw record once in bronze (deserialize)", func() (err error) {
			if raw, err = coordinates(authed, catalog, "raw.plant_sensor_readings"); err != nil {
				return err
			}
			return waitForCoordinates(authed, catalog, "bronze.plant_sensor_readings", raw, 5*time.Minute)
		})
	}
	if _, ok := p.Services["merge"]; ok && raw != nil {
		must("every reading once in gold (merge)", func() error {
			return waitForCoordinates(authed, catalog, "gold.plant_sensor_readings", raw, 5*time.Minute)
		})
	}

	must("delta-rs reads raw from the warehouse volume", func() error {
		return checkWithDeltaRS(ctx, py, want)
	})
	must("traces in Jaeger's query API", func() error {
		return waitForJaeger(ctx, []string{"catalog", "ingest"}, 2*time.Minute)
	})
}

// enabledPlantlakeServices are the plantlake services the default profile runs.
func enabledPlantlakeServices(p *types.Project) []string {
	var names []string
	for _, name := range PlantlakeServices(p) {
		if _, ok := p.Services[name]; ok {
			names = append(names, name)
		}
	}
	return names
}

func repoRootDir() string { return filepath.Join(Dir(), "..", "..") }

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func copyTree(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %w\n%s", src, err, out)
	}
	return nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkAllHealthy fails the test unless every container of the stack runs
// and every one with a healthcheck (all but Jaeger's) is healthy.
func checkAllHealthy(ctx context.Context, t *testing.T, st *stack, p *types.Project) {
	t.Helper()
	cs, err := st.ps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Service] = true
		s := p.Services[c.Service]
		switch {
		case c.State != "running":
			t.Errorf("%s (%s) is %s", c.Name, c.Service, c.State)
		case s.HealthCheck != nil && c.Health != "healthy":
			t.Errorf("%s (%s) is %q, not healthy", c.Name, c.Service, c.Health)
		}
	}
	for name := range p.Services {
		if !seen[name] {
			t.Errorf("no container of %s", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func containerOf(ctx context.Context, t *testing.T, st *stack, service string) string {
	t.Helper()
	cs, err := st.ps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Service == service {
			return c.Name
		}
	}
	t.Fatalf("no container of %s", service)
	return ""
}

// waitRunning waits until a restarted container runs and its healthcheck
// passes again.
func waitRunning(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", name).Output()
		state := strings.TrimSpace(string(out))
		if err == nil && strings.HasPrefix(state, "running ") && strings.HasSuffix(state, " healthy") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not running and healthy again after %v: %q %v", name, timeout, state, err)
		}
		time.Sleep(time.Second)
	}
}

// publisher publishes readings at QoS 1; each payload is unique.
type publisher struct {
	t      *testing.T
	client mqtt.Client
	run    string
	start  int64
}

func newPublisher(t *testing.T, broker string) *publisher {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("compose-test-" + randomHex(t, 4)).
		SetCleanSession(true).SetConnectTimeout(10 * time.Second).SetAutoReconnect(true)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return &publisher{t: t, client: c, run: randomHex(t, 4), start: time.Now().Unix()}
}

// publish sends readings first..first+n-1, pausing between them, and
// returns their payloads once the broker acknowledged each.
func (p *publisher) publish(first, n int, pause time.Duration) []string {
	var payloads []string
	var toks []mqtt.Token
	for i := first; i < first+n; i++ {
		// A distinct ts per reading: each has its own gold key.
		payload := fmt.Sprintf(`{"sensor_id":"press%02d","measurement":"temperature","value":%d.5,"unit":"C","ts":%d,"run":"%s"}`,
			i%7, i, p.start-3600+int64(i), p.run)
		topic := fmt.Sprintf("plant/line%d/press%02d/temperature", i%3, i%7)
		toks = append(toks, p.client.Publish(topic, 1, false, payload))
		payloads = append(payloads, payload)
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			p.t.Errorf("publish %d: not acknowledged: %v", first+i, tok.Error())
		}
	}
	return payloads
}

// rawRow is a row of raw.plant_sensor_readings as Scan returns it.
type rawRow struct {
	Topic     string  `json:"kafka_topic"`
	Partition float64 `json:"kafka_partition"`
	Offset    any     `json:"kafka_offset"`
	Payload   string  `json:"raw_payload"`
}

// scanRaw reads every row of raw through the catalog's Scan.
func scanRaw(ctx context.Context, catalog catalogv1.CatalogServiceClient) ([]rawRow, error) {
	stream, err := catalog.Scan(ctx, &catalogv1.ScanRequest{
		Table:   "raw.plant_sensor_readings",
		Columns: []string{"kafka_topic", "kafka_partition", "kafka_offset", "raw_payload"},
	})
	if err != nil {
		return nil, err
	}
	var rows []rawRow
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetRows() {
			b, err := r.MarshalJSON()
			if err != nil {
				return nil, err
			}
			var row rawRow
			if err := json.Unmarshal(b, &row); err != nil {
				return nil, fmt.Errorf("row %s: %w", b, err)
			}
			p, err := base64.StdEncoding.DecodeString(row.Payload)
			if err != nil {
				return nil, fmt.Errorf("raw_payload of %s: %w", b, err)
			}
			row.Payload = string(p)
			rows = append(rows, row)
		}
	}
}

// waitForPayloads waits until raw holds every wanted payload, then checks
// that no Kafka record is in raw twice (ingest is exactly once).
func waitForPayloads(ctx context.Context, catalog catalogv1.CatalogServiceClient, want []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		rows, err := scanRaw(ctx, catalog)
		missing := len(want)
		if err == nil {
			have := map[string]bool{}
			for _, r := range rows {
				have[r.Payload] = true
			}
			missing = 0
			for _, w := range want {
				if !have[w] {
					missing++
				}
			}
			if missing == 0 {
				seen := map[string]bool{}
				for _, r := range rows {
					key := fmt.Sprintf("%s/%v/%v", r.Topic, r.Partition, r.Offset)
					if seen[key] {
						return fmt.Errorf("Kafka record %s is in raw twice", key)
					}
					seen[key] = true
				}
				return nil
			}
		} else if status.Code(err) != codes.NotFound && status.Code(err) != codes.Unavailable {
			return fmt.Errorf("scan raw: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v, %d of %d readings are not in raw (last scan error: %v)", timeout, missing, len(want), err)
		}
		time.Sleep(2 * time.Second)
	}
}

// checkWithDeltaRS reads raw with delta-rs straight from the warehouse
// volume and expects every wanted payload.
func checkWithDeltaRS(ctx context.Context, py string, want []string) error {
	out, err := exec.CommandContext(ctx, "docker", "volume", "inspect", "-f", "{{.Mountpoint}}", project+"_warehouse").Output()
	if err != nil {
		return fmt.Errorf("docker volume inspect: %w", err)
	}
	table := filepath.Join(strings.TrimSpace(string(out)), "raw", "plant_sensor_readings")
	script := `
import json, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table(columns=["raw_payload"])
print(json.dumps([bytes(p).decode() for p in t.column("raw_payload").to_pylist()]))
`
	cmd := exec.CommandContext(ctx, py, "-c", script, table)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	js, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("delta-rs read of %s: %w\n%s", table, err, stderr.String())
	}
	var got []string
	if err := json.Unmarshal(js, &got); err != nil {
		return fmt.Errorf("delta-rs output: %w", err)
	}
	have := map[string]bool{}
	for _, g := range got {
		have[g] = true
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		return fmt.Errorf("delta-rs finds %d rows; %d readings missing, e.g. %s", len(got), len(missing), missing[0])
	}
	return nil
}

// waitForJaeger waits until Jaeger's query API (published port 16686) knows
// traces of every named service.
func waitForJaeger(ctx context.Context, services []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:16686/api/services", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct{ Data []string }
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err == nil {
				last = strings.Join(body.Data, ",")
				all := true
				for _, s := range services {
					all = all && strings.Contains(","+last+",", ","+s+",")
				}
				if all {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v Jaeger knows services %q, want %q (last error %v)", timeout, last, services, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// coordinates returns how often each Kafka record (topic/partition/offset)
// is in a table, read through the catalog's Scan.
func coordinates(ctx context.Context, catalog catalogv1.CatalogServiceClient, table string) (map[string]int, error) {
	stream, err := catalog.Scan(ctx, &catalogv1.ScanRequest{
		Table:   table,
		Columns: []string{"kafka_topic", "kafka_partition", "kafka_offset"},
	})
	if err != nil {
		return nil, err
	}
	got := map[string]int{}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return nil, err
		}
		for _, r := range resp.GetRows() {
			f := r.GetFields()
			key := fmt.Sprintf("%s/%v/%v", f["kafka_topic"].GetStringValue(), f["kafka_partition"].AsInterface(), f["kafka_offset"].AsInterface())
			got[key]++
		}
	}
}

// waitForCoordinates waits until table holds exactly the Kafka records of
// want, each once.
func waitForCoordinates(ctx context.Context, catalog catalogv1.CatalogServiceClient, table string, want map[string]int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := coordinates(ctx, catalog, table)
		if err == nil {
			missing, twice := 0, 0
			for k := range want {
				if got[k] == 0 {
					missing++
				}
			}
			for _, n := range got {
				if n > 1 {
					twice++
				}
			}
			if twice > 0 {
				return fmt.Errorf("%s: %d Kafka records more than once", table, twice)
			}
			if missing == 0 {
				if len(got) != len(want) {
					return fmt.Errorf("%s: %d records, raw has %d", table, len(got), len(want))
				}
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: after %v, %d of %d records missing", table, timeout, missing, len(want))
			}
		} else if c := status.Code(err); c != codes.NotFound && c != codes.Unavailable {
			return fmt.Errorf("scan %s: %w", table, err)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s: after %v: %w", table, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// waitPortsFree waits until every host port the stack publishes is free:
// on a shared machine another stack (make up, a colleague's test) may hold
// one for a while. It fails naming the ports still taken.
func waitPortsFree(ctx context.Context, p *types.Project, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var busy []string
		for _, s := range p.Services {
			for _, port := range s.Ports {
				addr := net.JoinHostPort(port.HostIP, port.Published)
				l, err := net.Listen("tcp", addr)
				if err != nil {
					busy = append(busy, s.Name+" "+addr)
					continue
				}
				l.Close()
			}
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(busy)
			return fmt.Errorf("published ports still taken by another process after %v: %v", timeout, busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
