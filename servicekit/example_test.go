package servicekit_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipelinev1 "github.com/plantlake/plantlake/proto/plantlake/pipeline/v1"
	"github.com/plantlake/plantlake/servicekit"
	"github.com/plantlake/plantlake/servicekit/config"
)

// errNotReady is a domain error of the example's stage.
var errNotReady = errors.New("not ready")

// exampleStage is a minimal PipelineService.
type exampleStage struct {
	pipelinev1.UnimplementedPipelineServiceServer
}

func (exampleStage) GetStatus(context.Context, *pipelinev1.GetStatusRequest) (*pipelinev1.GetStatusResponse, error) {
	return &pipelinev1.GetStatusResponse{Status: &pipelinev1.Status{Service: "example", State: pipelinev1.State_STATE_RUNNING}}, nil
}

func (exampleStage) Pause(context.Context, *pipelinev1.PauseRequest) (*pipelinev1.PauseResponse, error) {
	return nil, fmt.Errorf("pause: %w", errNotReady) // becomes FailedPrecondition through MapError
}

// Example shows a service's run function from flags to shutdown; a real
// main passes os.Args[1:] and the context of signal.NotifyContext, and
// fixed addresses instead of port 0.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// 1. Flags: the shared ones this service needs, its own, env defaults.
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	shared := config.Shared{GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"} // per-service defaults
	shared.Register(fs, config.Kafka, config.Catalog)
	batchRows := fs.Int("batch-rows", 100_000, "rows per commit")
	if err := config.Parse(fs, []string{"--batch-rows", "500", "--log-level", "warn"}); err != nil {
		fmt.Println(err)
		return
	}

	// 2. The kit: logger, tracing, metrics registry, gRPC server.
	kit, err := servicekit.New(ctx, servicekit.Options{
		Name:      "example",
		Config:    &shared,
		LogOutput: io.Discard, // os.Stderr (the default) in a real service
		MapError: func(err error) *status.Status {
			if errors.Is(err, errNotReady) {
				return status.New(codes.FailedPrecondition, err.Error())
			}
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	pipelinev1.RegisterPipelineServiceServer(kit.GRPC, exampleStage{})
	kit.GRPC.SetServing(true) // once Kafka, the catalog, storage are reachable

	// 3. Run until ctx ends; the loop is the service's own work.
	loop := func(ctx context.Context) error {
		<-ctx.Done() // consume, batch, commit ... until shutdown
		return nil
	}
	addrs := make(chan net.Addr, 1)
	kit.OnListen = func(grpcAddr, _ net.Addr) { addrs <- grpcAddr }
	done := make(chan error, 1)
	go func() { done <- kit.Run(ctx, loop) }()

	// A client, as another service would dial it (with --auth-token, if set).
	conn, err := kit.Dial((<-addrs).String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := pipelinev1.NewPipelineServiceClient(conn)
	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := client.GetStatus(callCtx, &pipelinev1.GetStatusRequest{})
	fmt.Println(resp.GetStatus().GetState(), err, *batchRows)
	_, err = client.Pause(callCtx, &pipelinev1.PauseRequest{})
	fmt.Println(status.Code(err), status.Convert(err).Message())

	stop() // SIGTERM in a real service
	fmt.Println("run:", <-done)
	// Output:
	// STATE_RUNNING <nil> 500
	// FailedPrecondition pause: not ready
	// run: <nil>
}
