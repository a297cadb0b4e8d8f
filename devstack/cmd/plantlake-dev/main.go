// Command plantlake-dev installs and runs plantlake's local brokers
// (Mosquitto and a single-node KRaft Kafka) for `make up`, `make down` and
// `make test`.
//
//	plantlake-dev install                 install Mosquitto, kcat, Kafka jars, the Python venv
//	plantlake-dev up     [--dir .plantlake] start Mosquitto on 1883 and Kafka on 9092 as daemons
//	plantlake-dev down   [--dir .plantlake] stop them (SIGTERM, then SIGKILL after a deadline)
//	plantlake-dev status [--dir .plantlake] say what runs where
//
// The brokers keep their data under --dir between runs: `up` after `down`
// finds the same topics, records and MQTT sessions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/plantlake/plantlake/devstack"
	"github.com/plantlake/plantlake/servicekit/kafkatopic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "plantlake-dev:", err)
		os.Exit(1)
	}
}

const usage = `usage: plantlake-dev <command> [flags]

commands:
  install   install Mosquitto, kcat, the Kafka jars and the Python venv if missing
  up        start Mosquitto and Kafka as daemons and create the pipeline topics
  down      stop the daemons started by up
  status    show whether the daemons run and where
  jaeger    start Jaeger as a daemon (--dir D: files in D/jaeger, binary linked as D/bin/jaeger;
            query API :16686, OTLP :4317 gRPC and :4318 HTTP); stop it with kill $(cat D/jaeger/jaeger.pid)
  python-path  print the path of the Python (venv) with deltalake and pyarrow, installing it if missing

Run plantlake-dev <command> -h for its flags.`

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("bad usage")

// stackFlags are the flags of up, down and status.
type stackFlags struct {
	dir            string
	host           string
	mqttPort       int
	kafkaPort      int
	controllerPort int
	kafkaHeapMB    int
	autosave       time.Duration
	retention      time.Duration
}

func (s *stackFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.dir, "dir", envOr("PLANTLAKE_DEV_DIR", ".plantlake"), "where the brokers keep data, logs and pid files")
	fs.StringVar(&s.host, "host", "127.0.0.1", "loopback address the brokers listen on")
	fs.IntVar(&s.mqttPort, "mqtt-port", 1883, "Mosquitto port")
	fs.IntVar(&s.kafkaPort, "kafka-port", 9092, "Kafka client port")
	fs.IntVar(&s.controllerPort, "kafka-controller-port", 9093, "Kafka KRaft controller port")
	fs.IntVar(&s.kafkaHeapMB, "kafka-heap-mb", 1024, "Kafka JVM maximum heap in MiB")
	fs.DurationVar(&s.autosave, "mqtt-autosave", time.Second, "how often Mosquitto saves its queues besides on shutdown")
	fs.DurationVar(&s.retention, "kafka-retention", kafkatopic.DefaultRetention,
		"retention of the pipeline topics up creates (negative: forever); existing topics keep theirs")
}

func (s *stackFlags) kafka(log *slog.Logger) devstack.KafkaConfig {
	return devstack.KafkaConfig{
		Dir: filepath.Join(s.dir, "kafka"), Host: s.host, Port: s.kafkaPort,
		ControllerPort: s.controllerPort, HeapMB: s.kafkaHeapMB, Daemon: true, Log: log,
	}
}

func (s *stackFlags) mosquitto(log *slog.Logger) devstack.MosquittoConfig {
	return devstack.MosquittoConfig{
		Dir: filepath.Join(s.dir, "mosquitto"), Host: s.host, Port: s.mqttPort,
		AutosaveInterval: s.autosave, Daemon: true, Log: log,
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fs := flag.NewFlagSet("plantlake-dev "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf stackFlags
	switch args[0] {
	case "install":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return install(ctx, log, stdout)
	case "up", "down", "status":
		sf.register(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
	case "jaeger":
		dir := fs.String("dir", ".plantlake", "the stack's folder")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return startJaeger(ctx, log, stdout, *dir)
	case "python-path":
		py, err := devstack.PythonPath(ctx, log)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, py)
		return nil
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch args[0] {
	case "up":
		return up(ctx, log, stdout, sf)
	case "down":
		return down(log, stdout, sf)
	default:
		return status(stdout, sf)
	}
}

func install(ctx context.Context, log *slog.Logger, stdout io.Writer) error {
	start := time.Now()
	r, err := devstack.InstallAll(ctx, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mosquitto:  %s\n", r.Mosquitto)
	fmt.Fprintf(stdout, "kafka jars: %s (Kafka %s)\n", r.KafkaLibs, devstack.KafkaVersion)
	fmt.Fprintf(stdout, "python:     %s (deltalake %s, pyarrow %s)\n", r.Python, devstack.DeltalakeVersion, devstack.PyarrowVersion)
	fmt.Fprintf(stdout, "azurite:    %s (azurite %s, Azure Blob emulator)\n", r.Azurite, devstack.AzuriteVersion)
	fmt.Fprintf(stdout, "moto:       %s (moto %s, S3 server)\n", r.Moto, devstack.MotoVersion)
	if r.KcatErr != nil {
		fmt.Fprintf(stdout, "kcat:       not installed (%v); only the bridge benchmark's baseline needs it\n", r.KcatErr)
	} else {
		fmt.Fprintf(stdout, "kcat:       %s\n", r.Kcat)
	}
	fmt.Fprintf(stdout, "installed in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// startJaeger starts make up's Jaeger on its usual ports unless it runs.
func startJaeger(ctx context.Context, log *slog.Logger, stdout io.Writer, dir string) error {
	j, err := devstack.StartJaeger(ctx, devstack.JaegerConfig{
		Dir: filepath.Join(dir, "jaeger"), BinDir: filepath.Join(dir, "bin"), Host: "127.0.0.1",
		QueryPort: 16686, OTLPPort: 4317, OTLPHTTPPort: 4318, Daemon: true, Log: log,
	})
	if err != nil {
		return fmt.Errorf("start jaeger: %w", err)
	}
	fmt.Fprintf(stdout, "jaeger started (pid %d), query API %s, OTLP %s\n", j.Pid(), j.QueryURL(), j.OTLPEndpoint())
	return nil
}

func up(ctx context.Context, log *slog.Logger, stdout io.Writer, sf stackFlags) error {
	mcfg, kcfg := sf.mosquitto(log), sf.kafka(log)
	if m, err := devstack.AttachMosquitto(mcfg); err == nil {
		fmt.Fprintf(stdout, "mosquitto already running (pid %d)\n", m.Pid())
	} else {
		m, err := devstack.StartMosquitto(ctx, mcfg)
		if err != nil {
			return fmt.Errorf("start mosquitto: %w", err)
		}
		fmt.Fprintf(stdout, "mosquitto started (pid %d)\n", m.Pid())
	}
	if k, err := devstack.AttachKafka(kcfg); err == nil {
		fmt.Fprintf(stdout, "kafka already running (pid %d)\n", k.Pid())
	} else {
		start := time.Now()
		k, err := devstack.StartKafka(ctx, kcfg)
		if err != nil {
			return fmt.Errorf("start kafka: %w", err)
		}
		fmt.Fprintf(stdout, "kafka started (pid %d) in %s\n", k.Pid(), time.Since(start).Round(time.Millisecond))
	}
	brokers := fmt.Sprintf("%s:%d", sf.host, sf.kafkaPort)
	if err := devstack.EnsureTopics(ctx, brokers, devstack.PipelineTopicSpecs(sf.retention)...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "topics %v with %d partitions each, room for a %d-byte payload, retention %v\n",
		devstack.PipelineTopics, devstack.PipelinePartitions, kafkatopic.DefaultMaxPayloadBytes, sf.retention)
	return status(stdout, sf)
}

func down(log *slog.Logger, stdout io.Writer, sf stackFlags) error {
	var errs []error
	if k, err := devstack.AttachKafka(sf.kafka(log)); err == nil {
		errs = append(errs, k.Stop())
		fmt.Fprintln(stdout, "kafka stopped")
	} else {
		fmt.Fprintln(stdout, "kafka not running")
	}
	if m, err := devstack.AttachMosquitto(sf.mosquitto(log)); err == nil {
		errs = append(errs, m.Stop())
		fmt.Fprintln(stdout, "mosquitto stopped")
	} else {
		fmt.Fprintln(stdout, "mosquitto not running")
	}
	return errors.Join(errs...)
}

func status(stdout io.Writer, sf stackFlags) error {
	abs, err := filepath.Abs(sf.dir)
	if err != nil {
		return fmt.Errorf("dir: %w", err)
	}
	var down []string
	if m, err := devstack.AttachMosquitto(sf.mosquitto(nil)); err == nil {
		fmt.Fprintf(stdout, "mosquitto  running  pid %-7d --mqtt-broker=tcp://%s:%d   log %s\n", m.Pid(), sf.host, sf.mqttPort, m.LogPath())
	} else {
		fmt.Fprintf(stdout, "mosquitto  stopped\n")
		down = append(down, "mosquitto")
	}
	if k, err := devstack.AttachKafka(sf.kafka(nil)); err == nil {
		fmt.Fprintf(stdout, "kafka      running  pid %-7d --kafka-brokers=%s:%d     log %s\n", k.Pid(), sf.host, sf.kafkaPort, k.LogPath())
	} else {
		fmt.Fprintf(stdout, "kafka      stopped\n")
		down = append(down, "kafka")
	}
	fmt.Fprintf(stdout, "data in %s\n", abs)
	if len(down) > 0 {
		return fmt.Errorf("%w: %v", devstack.ErrNotRunning, down)
	}
	return nil
}
