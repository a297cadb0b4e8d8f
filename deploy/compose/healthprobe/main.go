// Command healthprobe asks a gRPC server for its health (grpc.health.v1) and
// exits 0 only when it answers SERVING. The plantlake images carry it for
// their container healthchecks:
//
//	healthprobe -addr 127.0.0.1:7001
//
// Health needs no token, so the probe sends none.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthprobe:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("healthprobe", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7001", "gRPC address of the server to ask")
	service := fs.String("service", "", "service name to ask about (empty: the server as a whole)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the whole check may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		return fmt.Errorf("check %s: %w", *addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s is %s", *addr, resp.GetStatus())
	}
	return nil
}
