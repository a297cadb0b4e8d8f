package devstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

// Topic names of the pipeline (DESIGN.md section 1 and 4).
const (
	// TopicRaw carries MQTT readings from the bridge to ingest.
	TopicRaw = kafkatopic.Raw
	// TopicOversized carries readings larger than the message limit, cut.
	TopicOversized = kafkatopic.Oversized
	// TopicTableCommits carries the catalog's TableCommitEvents.
	TopicTableCommits = kafkatopic.TableCommits
	// PipelinePartitions is how many partitions each pipeline topic gets.
	PipelinePartitions = 6
)

// PipelineTopics lists the topics that `make up` and the tests create.
var PipelineTopics = []string{TopicRaw, TopicOversized, TopicTableCommits}

// KafkaConfig says where and how to run a single-node KRaft Kafka (broker
// and controller in one JVM).
type KafkaConfig struct {
	// Dir holds everything of this broker: server.properties, data/ (the
	// log dirs, formatted once and reused by later starts), logs/.
	Dir string
	// Host is the loopback address to listen on and advertise; default 127.0.0.1.
	Host string
	// Port is the client (PLAINTEXT) port; 0 picks a free one.
	Port int
	// ControllerPort is the KRaft controller port; 0 picks a free one.
	ControllerPort int
	// HeapMB is the JVM's maximum heap; default 512.
	HeapMB int
	// StartTimeout bounds the wait until the broker serves metadata; default 90s.
	StartTimeout time.Duration
	// StopTimeout bounds the wait after SIGTERM before SIGKILL; default 30s.
	StopTimeout time.Duration
	// Daemon makes the JVM outlive this program and writes Dir/kafka.pid.
	Daemon bool
	// Log receives devstack's own progress messages; nil discards them.
	Log *slog.Logger
}

// KafkaBroker is a running (or stopped, restartable) single-node Kafka.
type KafkaBroker struct {
	cfg  KafkaConfig
	libs string

	// tb is the test that owns the broker (nil outside tests): Start, Stop
	// and Restart report their errors to it as well as returning them.
	tb testing.TB

	mu   sync.Mutex
	proc *process
}

func (c *KafkaConfig) setDefaults() error {
	if c.Dir == "" {
		return errors.New("devstack: KafkaConfig.Dir is required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("devstack: kafka dir: %w", err)
	}
	c.Dir = dir
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.HeapMB == 0 {
		c.HeapMB = 512
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 90 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	for _, p := range []*int{&c.Port, &c.ControllerPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartKafka installs Kafka if needed, formats cfg.Dir's storage if it has
// none, starts the broker and waits until it serves metadata.
func StartKafka(ctx context.Context, cfg KafkaConfig) (*KafkaBroker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	libs, err := KafkaLibs(ctx, cfg.Log)
	if err != nil {
		return nil, err
	}
	b := &KafkaBroker{cfg: cfg, libs: libs}
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	if err := b.StartContext(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Brokers returns the bootstrap servers, "host:port".
func (b *KafkaBroker) Brokers() string {
	return fmt.Sprintf("%s:%d", b.cfg.Host, b.cfg.Port)
}

// Dir returns the broker's directory.
func (b *KafkaBroker) Dir() string { return b.cfg.Dir }

// LogPath returns the broker's main log file.
func (b *KafkaBroker) LogPath() string { return filepath.Join(b.cfg.Dir, "logs", "server.log") }

func (b *KafkaBroker) spec() procSpec {
	d := b.cfg.Dir
	argv := []string{
		"java",
		fmt.Sprintf("-Xmx%dm", b.cfg.HeapMB), "-Xms128m",
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dkafka.logs.dir=" + filepath.Join(d, "logs"),
		"-Dlog4j2.configurationFile=" + filepath.Join(d, "log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*"),
		"kafka.Kafka", filepath.Join(d, "server.properties"),
	}
	pid := ""
	if b.cfg.Daemon {
		pid = filepath.Join(d, "kafka.pid")
	}
	return procSpec{
		name:    "kafka",
		argv:    argv,
		logPath: filepath.Join(d, "logs", "stdout.log"),
		pidFile: pid,
		marker:  filepath.Join(d, "server.properties"),
		daemon:  b.cfg.Daemon,
	}
}

// serverProperties is the broker's configuration. Topics are not created
// automatically: the pipeline creates the topics it uses.
func (b *KafkaBroker) serverProperties() string {
	c := b.cfg
	return strings.Join([]string{
		"# written by devstack; rewritten on every start",
		"process.roles=broker,controller",
		"node.id=1",
		fmt.Sprintf("controller.quorum.voters=1@%s:%d", c.Host, c.ControllerPort),
		fmt.Sprintf("listeners=PLAINTEXT://%s:%d,CONTROLLER://%s:%d", c.Host, c.Port, c.Host, c.ControllerPort),
		fmt.Sprintf("advertised.listeners=PLAINTEXT://%s:%d", c.Host, c.Port),
		"controller.listener.names=CONTROLLER",
		"inter.broker.listener.name=PLAINTEXT",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"log.dirs=" + filepath.Join(c.Dir, "data"),
		"num.partitions=6",
		"auto.create.topics.enable=false",
		"default.replication.factor=1",
		"min.insync.replicas=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=6",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=6",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		"num.network.threads=2",
		"num.io.threads=4",
		"log.retention.hours=168",
		"",
	}, "\n")
}

const log4j2Properties = `# written by devstack: everything to logs/server.log, nothing to stdout
status = error
name = devstack-kafka
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
`

// prepare writes the configuration and, when data/ has never been
// formatted, copies in the formatted storage template.
func (b *KafkaBroker) prepare(ctx context.Context) error {
	d := b.cfg.Dir
	if err := os.MkdirAll(filepath.Join(d, "logs"), 0o755); err != nil {
		return fmt.Errorf("devstack: kafka dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d, "server.properties"), []byte(b.serverProperties()), 0o644); err != nil {
		return fmt.Errorf("devstack: write server.properties: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d, "log4j2.properties"), []byte(log4j2Properties), 0o644); err != nil {
		return fmt.Errorf("devstack: write log4j2.properties: %w", err)
	}
	data := filepath.Join(d, "data")
	if fileExists(filepath.Join(data, "meta.properties")) {
		return nil
	}
	tmpl, err := kafkaTemplate(ctx, b.cfg.Log, b.libs)
	if err != nil {
		return err
	}
	if err := copyDir(tmpl, data); err != nil {
		return fmt.Errorf("devstack: copy formatted storage: %w", err)
	}
	return nil
}

// kafkaTemplate returns a storage directory formatted once by
// kafka.tools.StorageTool, which every new broker copies instead of running
// a second JVM to format its own. With a static controller.quorum.voters the
// formatted storage holds no address, so one template serves any port.
func kafkaTemplate(ctx context.Context, log *slog.Logger, libs string) (string, error) {
	log = orDiscard(log)
	home := filepath.Dir(libs)
	tmpl := filepath.Join(home, "storage-template")
	if fileExists(filepath.Join(tmpl, "meta.properties")) {
		return tmpl, nil
	}
	err := withLock(ctx, "kafka-template", func(string) error {
		if fileExists(filepath.Join(tmpl, "meta.properties")) {
			return nil
		}
		work, err := os.MkdirTemp(home, "format-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(work)
		b := &KafkaBroker{cfg: KafkaConfig{Dir: work, Host: "127.0.0.1", Port: 9092, ControllerPort: 9093}, libs: libs}
		props := strings.Replace(b.serverProperties(), "log.dirs="+filepath.Join(work, "data"), "log.dirs="+filepath.Join(work, "storage"), 1)
		propsPath := filepath.Join(work, "server.properties")
		if err := os.WriteFile(propsPath, []byte(props), 0o644); err != nil {
			return fmt.Errorf("write server.properties: %w", err)
		}
		log.Info("formatting Kafka storage template", "dir", tmpl)
		if err := run(ctx, log, nil, "java", "-Xmx256m", "-cp", filepath.Join(libs, "*"),
			"kafka.tools.StorageTool", "format", "-t", newClusterID(), "-c", propsPath); err != nil {
			return err
		}
		_ = os.RemoveAll(tmpl)
		return os.Rename(filepath.Join(work, "storage"), tmpl)
	})
	if err != nil {
		return "", fmt.Errorf("devstack: format kafka storage: %w", err)
	}
	return tmpl, nil
}

// newClusterID returns a random Kafka Uuid in its base64url form.
func newClusterID() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		s := base64.RawURLEncoding.EncodeToString(b[:])
		if !strings.HasPrefix(s, "-") {
			return s
		}
	}
}

// copyDir copies the regular files and folders of src into dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// Start starts the broker with its existing data and waits until it serves.
// Starting a running broker is an error.
func (b *KafkaBroker) Start() error {
	return b.report(b.StartContext(context.Background()))
}

// StartContext is Start bounded by ctx as well as the start timeout.
func (b *KafkaBroker) StartContext(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil && b.proc.alive() {
		return fmt.Errorf("devstack: kafka at %s is already running", b.Brokers())
	}
	if b.cfg.Daemon {
		if p, err := findProcess(b.spec()); err == nil {
			return fmt.Errorf("devstack: kafka from %s is already running as pid %d", b.cfg.Dir, p.pid)
		}
	}
	// server.properties is rewritten on every start so that a changed
	// configuration (ports, settings) takes effect on the same data.
	if err := os.WriteFile(filepath.Join(b.cfg.Dir, "server.properties"), []byte(b.serverProperties()), 0o644); err != nil {
		return fmt.Errorf("devstack: write server.properties: %w", err)
	}
	start := time.Now()
	p, err := startProcess(b.spec())
	if err != nil {
		return err
	}
	if err := waitKafka(ctx, p, b.Brokers(), b.cfg.StartTimeout); err != nil {
		p.kill()
		return fmt.Errorf("%w\n%s\n%s", err, p.logTail(20), logTail(b.LogPath(), 40))
	}
	b.proc = p
	b.cfg.Log.Info("kafka serving", "brokers", b.Brokers(), "pid", p.pid, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop stops the broker with SIGTERM (a controlled shutdown), killing it if
// it has not exited within the stop timeout. Its data stays for Start.
func (b *KafkaBroker) Stop() error {
	return b.report(b.stop())
}

func (b *KafkaBroker) stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return nil
	}
	err := b.proc.stop(b.cfg.StopTimeout)
	b.proc = nil
	return err
}

// kill ends the broker at once, for test cleanup where the data is discarded.
func (b *KafkaBroker) kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		b.proc.kill()
		b.proc = nil
	}
}

// Running reports whether the broker process is alive.
func (b *KafkaBroker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc != nil && b.proc.alive()
}

// Pid returns the broker's process id, 0 when it is not running.
func (b *KafkaBroker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return 0
	}
	return b.proc.pid
}

// waitKafka polls the broker's metadata until it lists one broker, the
// process exits, or the timeout passes.
func waitKafka(ctx context.Context, p *process, brokers string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var ac *kafka.AdminClient
	defer func() {
		if ac != nil {
			ac.Close()
		}
	}()
	var lastErr error
	for {
		if !p.alive() {
			return fmt.Errorf("%w: kafka exited during start (%v)", ErrNotRunning, p.waitErr)
		}
		if ac == nil && portOpen(brokers) {
			var err error
			ac, err = kafka.NewAdminClient(&kafka.ConfigMap{
				"bootstrap.servers": brokers,
				"log_level":         0,
			})
			if err != nil {
				return fmt.Errorf("devstack: kafka admin client: %w", err)
			}
		}
		if ac != nil {
			md, err := ac.GetMetadata(nil, true, 1000)
			if err == nil && len(md.Brokers) > 0 {
				return nil
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: kafka at %s not serving after %s (last error: %v): %w", brokers, timeout, lastErr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CreateTopics creates topics with the given partitions (replication 1)
// the way plantlake creates its topics (kafkatopic.Ensure).
func (b *KafkaBroker) CreateTopics(ctx context.Context, partitions int, names ...string) error {
	return CreateTopics(ctx, b.Brokers(), partitions, names...)
}

// CreateTopics creates topics on the Kafka at brokers with the given
// partitions, replication 1 and kafkatopic's defaults (room for a 1 MiB
// payload, 14 days' retention). It retries while the broker is still coming up.
func CreateTopics(ctx context.Context, brokers string, partitions int, names ...string) error {
	specs := make([]kafkatopic.Spec, len(names))
	for i, n := range names {
		specs[i] = kafkatopic.Spec{Name: n, Partitions: partitions, ReplicationFactor: 1}
	}
	return EnsureTopics(ctx, brokers, specs...)
}

// EnsureTopics runs kafkatopic.Ensure against the Kafka at brokers until it
// succeeds, for up to 90 seconds (the broker may still be coming up).
func EnsureTopics(ctx context.Context, brokers string, specs ...kafkatopic.Spec) error {
	ac, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": brokers, "log_level": 0})
	if err != nil {
		return fmt.Errorf("devstack: kafka admin client: %w", err)
	}
	defer ac.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := kafkatopic.Ensure(ctx, ac, specs...)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i] = s.Name
			}
			return fmt.Errorf("devstack: create topics %v at %s: %w", names, brokers, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// PipelineTopicSpecs are the topics `make up` creates: PipelineTopics with
// PipelinePartitions each, replication 1, room for the bridge's default
// payload limit and the given retention (0: kafkatopic.DefaultRetention).
func PipelineTopicSpecs(retention time.Duration) []kafkatopic.Spec {
	specs := make([]kafkatopic.Spec, len(PipelineTopics))
	for i, n := range PipelineTopics {
		specs[i] = kafkatopic.Spec{Name: n, Partitions: PipelinePartitions, ReplicationFactor: 1, Retention: retention}
	}
	return specs
}

// CreatePipelineTopics creates the pipeline's topics (PipelineTopicSpecs
// with the default retention). An existing topic keeps its settings, except
// a max.message.bytes inherited from the broker that is too small for a
// 1 MiB payload, which is raised (kafkatopic.Ensure).
func CreatePipelineTopics(ctx context.Context, brokers string) error {
	return EnsureTopics(ctx, brokers, PipelineTopicSpecs(0)...)
}

// report marks the owning test failed when err is not nil, and returns err.
func (b *KafkaBroker) report(err error) error {
	if err != nil && b.tb != nil {
		b.tb.Helper()
		b.tb.Errorf("%v", err)
	}
	return err
}
