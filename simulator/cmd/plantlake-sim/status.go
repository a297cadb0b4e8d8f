package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/plantlake/plantlake/servicekit/config"
	"github.com/plantlake/plantlake/servicekit/grpcclient"
	"github.com/plantlake/plantlake/simulator/internal/overview"
)

const statusUsage = `plantlake-sim status asks every pipeline service for its status and prints one line per
hop (state, position in its input, lag, rates over the last minute, age of the newest data it
committed), then gold's freshness: the time of gold's latest commit minus the newest bridge_ts
in it. A service that does not answer is DOWN, with the error. The same numbers are on each
service's Prometheus /metrics (ports 9102-9105).

Usage:
  plantlake-sim status [flags]

Flags (each also read from PLANTLAKE_<FLAG> in upper snake case):
`

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plantlake-sim status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	catalogAddr := fs.String("catalog-addr", "127.0.0.1:7001", "the catalog's gRPC address")
	addrs := []struct {
		name string
		addr *string
	}{
		{"bridge", fs.String("bridge-addr", "127.0.0.1:7002", "the bridge's gRPC address")},
		{"ingest", fs.String("ingest-addr", "127.0.0.1:7003", "ingest's gRPC address")},
		{"deserialize", fs.String("deserialize-addr", "127.0.0.1:7004", "deserialize's gRPC address")},
		{"merge", fs.String("merge-addr", "127.0.0.1:7005", "merge's gRPC address")},
	}
	token := fs.String("auth-token", "", "bearer token presented to the services")
	tlsCA := fs.String("tls-ca", "", "CA file (PEM) that verifies the services; set, calls use TLS")
	tlsCert := fs.String("tls-client-cert", "", "client certificate file (PEM) presented to the services (with --tls-client-key)")
	tlsKey := fs.String("tls-client-key", "", "client private key file (PEM)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for each service")
	strict := fs.Bool("strict", false, "exit with an error when a service is DOWN")
	if err := config.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return err
	}
	opts := grpcclient.Options{AuthToken: *token}
	if *tlsCA != "" || *tlsCert != "" {
		tc, err := grpcclient.LoadTLS(*tlsCA, *tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		opts.TLS = tc
	}
	dial := func(addr string) (*grpc.ClientConn, error) {
		conn, err := grpcclient.Dial(addr, opts)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		return conn, nil
	}
	var hops []overview.Hop
	for _, a := range addrs {
		conn, err := dial(*a.addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		hops = append(hops, overview.Hop{Name: a.name, Addr: *a.addr, Conn: conn})
	}
	cat, err := dial(*catalogAddr)
	if err != nil {
		return err
	}
	defer cat.Close()

	rep := overview.Collect(ctx, hops, cat, *catalogAddr, *timeout)
	if err := rep.Write(stdout); err != nil {
		return err
	}
	if n := rep.Down(); *strict && n > 0 {
		return fmt.Errorf("%d services did not answer", n)
	}
	return nil
}
