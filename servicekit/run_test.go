package servicekit_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/config"
)

// stage is a PipelineService whose TriggerCommit takes `work` to finish
// unless its context is cancelled first.
type stage struct {
	pipelinev1.UnimplementedPipelineServiceServer
	work      time.Duration
	started   chan struct{} // receives when TriggerCommit starts
	cancelled chan struct{} // closed when TriggerCommit saw its context end
	once      sync.Once
}

func newStage(work time.Duration) *stage {
	return &stage{work: work, started: make(chan struct{}, 1), cancelled: make(chan struct{})}
}

func (s *stage) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: &pipelinev1.Status{Service: "test", State: pipelinev1.State_STATE_RUNNING}}, nil
}

func (s *stage) TriggerCommit(ctx context.Context, _ *pipelinev1.TriggerCommitRequest) (*pipelinev1.TriggerCommitResponse, error) {
	s.started <- struct{}{}
	select {
	case <-time.After(s.work):
		return &pipelinev1.TriggerCommitResponse{Committed: true, Rows: 1}, nil
	case <-ctx.Done():
		s.once.Do(func() { close(s.cancelled) })
		return nil, ctx.Err()
	}
}

// running is a kit serving on loopback ports in the background.
type running struct {
	kit         *servicekit.Kit
	logs        *lockedBuffer
	grpcAddr    string
	metricsAddr string
	stop        context.CancelFunc
	done        chan error
}

// runKit builds a kit from args (parsed like a service's flags), registers
// svc, marks it serving and runs it with loops until stop is called or the
// test ends.
func runKit(t *testing.T, svc pipelinev1.PipelineServiceServer, args []string, loops ...servicekit.Loop) *running {
	t.Helper()
	r, err := startKit(t, config.Shared{GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"}, args, svc, "", loops...)
	if err != nil {
		t.Fatalf("Run returned before listening: %v", err)
	}
	return r
}

// startKit is runKit with the shared settings' defaults given, and a Unix
// socket to serve on too (empty: none); it returns Run's error when Run
// ended before listening.
func startKit(t *testing.T, shared config.Shared, args []string, svc pipelinev1.PipelineServiceServer, unixSocket string, loops ...servicekit.Loop) (*running, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	shared.Register(fs)
	if err := config.Parse(fs, args); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	kit, err := servicekit.New(ctx, servicekit.Options{Name: "test", Config: &shared, LogOutput: logs})
	if err != nil {
		stop()
		t.Fatal(err)
	}
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, svc)
	kit.GRPC.SetServing(true)
	kit.UnixSocket = unixSocket
	r := &running{kit: kit, logs: logs, stop: stop, done: make(chan error, 1)}
	listening := make(chan struct{})
	kit.OnListen = func(grpcAddr, metricsAddr net.Addr) {
		r.grpcAddr = grpcAddr.String()
		if metricsAddr != nil {
			r.metricsAddr = metricsAddr.String()
		}
		close(listening)
	}
	go func() { r.done <- kit.Run(ctx, loops...) }()
	select {
	case <-listening:
	case err := <-r.done:
		stop()
		return nil, err
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	return r, nil
}

var grpcurl struct {
	once sync.Once
	path string
	err  error
}

// grpcurlPath returns the grpcurl binary pinned in tools/go.mod, built (or
// found in the build cache) by `go tool -n`.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	grpcurl.once.Do(func() {
		tools, err := filepath.Abs("../tools")
		if err != nil {
			grpcurl.err = err
			return
		}
		cmd := exec.Command("go", "tool", "-n", "grpcurl")
		cmd.Dir = tools
		cmd.Env = append(cmd.Environ(), "GOWORK=off") // tools is outside go.work on purpose
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			grpcurl.err = errors.Join(err, errors.New(stderr.String()))
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		grpcurl.path = lines[len(lines)-1]
	})
	if grpcurl.err != nil {
		t.Fatalf("building grpcurl from tools/go.mod: %v", grpcurl.err)
	}
	return grpcurl.path
}

func TestGrpcurl(t *testing.T) {
	bin := grpcurlPath(t)
	r := runKit(t, newStage(0), []string{"--auth-token", "tok"})
	tests := []struct {
		name    string
		args    []string // "ADDR" stands for the server's address
		wantErr bool
		want    []string
	}{
		{
			name: "list needs no token",
			args: []string{"ADDR", "list"},
			want: []string{"grpc.health.v1.Health\n", "grpc.reflection.v1.ServerReflection\n", "plantlake.pipeline.v1.PipelineService\n"},
		},
		{
			name: "health check needs no token",
			args: []string{"ADDR", "grpc.health.v1.Health/Check"},
			want: []string{`"status": "SERVING"`},
		},
		{
			name: "health of one service",
			args: []string{"-d", `{"service":"plantlake.pipeline.v1.PipelineService"}`, "ADDR", "grpc.health.v1.Health/Check"},
			want: []string{`"status": "SERVING"`},
		},
		{
			name: "describe",
			args: []string{"ADDR", "describe", "plantlake.pipeline.v1.PipelineService"},
			want: []string{"rpc GetStatus ( .plantlake.pipeline.v1.GetStatusRequest ) returns ( .plantlake.pipeline.v1.GetStatusResponse );"},
		},
		{
			name: "describe shows the protos' comments",
			args: []string{"ADDR", "describe", "plantlake.pipeline.v1.PipelineService.Pause"},
			want: []string{"// Pause stops taking input; what is in flight is finished or abandoned", "rpc Pause ( .plantlake.pipeline.v1.PauseRequest )"},
		},
		{
			name:    "call without token",
			args:    []string{"ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"},
			wantErr: true,
			want:    []string{"Code: Unauthenticated", "missing bearer token"},
		},
		{
			name:    "call with a wrong token",
			args:    []string{"-H", "authorization: Bearer nope", "ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"},
			wantErr: true,
			want:    []string{"Code: Unauthenticated", "invalid bearer token"},
		},
		{
			name: "call with the token",
			args: []string{"-H", "authorization: Bearer tok", "ADDR", "plantlake.pipeline.v1.PipelineService/GetStatus"},
			want: []string{`"state": "STATE_RUNNING"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := []string{"-plaintext"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "ADDR", r.grpcAddr))
			}
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if (err != nil) != tt.wantErr {
				t.Fatalf("grpcurl %v: err = %v, want error %v; output:\n%s", tt.args, err, tt.wantErr, out)
			}
			for _, want := range tt.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("grpcurl %v output lacks %q:\n%s", tt.args, want, out)
				}
			}
		})
	}
}

func TestShutdownWithCallInFlight(t *testing.T) {
	const slack = time.Second
	tests := []struct {
		name       string
		work       time.Duration // how long the in-flight call takes
		timeout    time.Duration // --shutdown-timeout
		wantCode   codes.Code
		wantCancel bool // whether the handler's context gets cancelled
		minElapsed time.Duration
		maxElapsed time.Duration // from cancelling Run's context to Run returning
	}{
		{
			name: "call finishes within the deadline", work: 300 * time.Millisecond, timeout: 5 * time.Second,
			wantCode: codes.OK, minElapsed: 200 * time.Millisecond, maxElapsed: 300*time.Millisecond + slack,
		},
		{
			name: "call outlives the deadline", work: time.Hour, timeout: 500 * time.Millisecond,
			wantCode: codes.Unavailable, wantCancel: true, minElapsed: 500 * time.Millisecond, maxElapsed: 500*time.Millisecond + slack,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStage(tt.work)
			r := runKit(t, st, []string{"--shutdown-timeout", tt.timeout.String()})
			conn, err := r.kit.Dial(r.grpcAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			callErr := make(chan error, 1)
			go func() {
				_, err := pipelinev1.NewPipelineServiceClient(conn).TriggerCommit(context.Background(), &pipelinev1.TriggerCommitRequest{})
				callErr <- err
			}()
			<-st.started

			start := time.Now()
			r.stop()
			var runErr error
			select {
			case runErr = <-r.done:
			case <-time.After(tt.timeout + 10*time.Second):
				t.Fatal("Run did not return")
			}
			elapsed := time.Since(start)
			r.done <- runErr // for the cleanup

			if runErr != nil {
				t.Errorf("Run = %v, want nil", runErr)
			}
			if elapsed < tt.minElapsed || elapsed > tt.maxElapsed {
				t.Errorf("shutdown took %v, want %v..%v", elapsed, tt.minElapsed, tt.maxElapsed)
			}
			if got := status.Code(<-callErr); got != tt.wantCode {
				t.Errorf("in-flight call ended with %v, want %v", got, tt.wantCode)
			}
			select {
			case <-st.cancelled:
				if !tt.wantCancel {
					t.Error("handler context cancelled, want the call to finish")
				}
			default:
				if tt.wantCancel {
					t.Error("handler context not cancelled after the deadline")
				}
			}
		})
	}
}

func TestRunLoops(t *testing.T) {
	errLoop := errors.New("loop failed")
	never := make(chan struct{})
	t.Cleanup(func() { close(never) }) // frees the loop that ignores its context
	tests := []struct {
		name       string
		loop       servicekit.Loop
		stopAfter  time.Duration // cancel Run's context after this; 0: never
		wantErr    error
		maxElapsed time.Duration // from Run's start
	}{
		{
			name:       "a failing loop stops the service",
			loop:       func(context.Context) error { return errLoop },
			wantErr:    errLoop,
			maxElapsed: 2 * time.Second,
		},
		{
			name:       "a loop ending with the context is a clean stop",
			loop:       func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			stopAfter:  100 * time.Millisecond,
			maxElapsed: 2 * time.Second,
		},
		{
			name:       "a loop ignoring the context is abandoned after the deadline",
			loop:       func(context.Context) error { <-never; return nil },
			stopAfter:  100 * time.Millisecond,
			wantErr:    servicekit.ErrShutdownTimeout,
			maxElapsed: 100*time.Millisecond + 300*time.Millisecond + time.Second + time.Second, // stop + timeout + grace + slack
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := runKit(t, newStage(0), []string{"--shutdown-timeout", "300ms"}, tt.loop)
			if tt.stopAfter > 0 {
				time.AfterFunc(tt.stopAfter, r.stop)
			}
			var err error
			select {
			case err = <-r.done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
			r.done <- err // for the cleanup
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Run = %v, want %v", err, tt.wantErr)
			}
			if elapsed := time.Since(start); elapsed > tt.maxElapsed {
				t.Errorf("Run took %v, want at most %v", elapsed, tt.maxElapsed)
			}
		})
	}
}

func TestMetricsServer(t *testing.T) {
	r := runKit(t, newStage(0), nil)
	conn, err := r.kit.Dial(r.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pipelinev1.NewPipelineServiceClient(conn).GetStatus(context.Background(), &pipelinev1.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
	}{
		{"/metrics", []string{
			"go_goroutines ",
			"process_resident_memory_bytes ",
			`plantlake_grpc_server_handled_total{code="OK",method="/plantlake.pipeline.v1.PipelineService/GetStatus"} 1`,
			`plantlake_grpc_server_handling_seconds_count{method="/plantlake.pipeline.v1.PipelineService/GetStatus"} 1`,
		}},
		{"/healthz", []string{"ok"}},
	}
	for _, tt := range tests {
		resp, err := http.Get("http://" + r.metricsAddr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", tt.path, resp.Status)
		}
		for _, want := range tt.want {
			if !strings.Contains(string(body), want) {
				t.Errorf("GET %s lacks %q:\n%s", tt.path, want, body)
			}
		}
	}
}

func TestNewRejectsInvalidSettings(t *testing.T) {
	shared := config.Shared{GRPCAddr: "no-port"}
	shared.Register(flag.NewFlagSet("x", flag.ContinueOnError))
	_, err := servicekit.New(context.Background(), servicekit.Options{Name: "x", Config: &shared, LogOutput: io.Discard})
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("New = %v, want config.ErrInvalid", err)
	}
}

func TestRunFailsOnBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	shared := config.Shared{GRPCAddr: busy.Addr().String()}
	shared.Register(flag.NewFlagSet("x", flag.ContinueOnError))
	kit, err := servicekit.New(context.Background(), servicekit.Options{Name: "x", Config: &shared, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	err = kit.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gRPC listener") {
		t.Fatalf("Run = %v, want a gRPC listener error", err)
	}
}
