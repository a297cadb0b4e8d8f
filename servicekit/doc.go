// Package servicekit is the skeleton every plantlake service's main uses:
// shared flags with PLANTLAKE_* environment defaults (package config), a
// slog logger (logging), OpenTelemetry tracing from the OTEL_* variables
// (telemetry), a Prometheus registry and /metrics server (metrics), a gRPC
// server with reflection, health, auth, logging, panic recovery and error
// mapping (grpcserver), a client dialer to match (grpcclient), and Run,
// which serves all of it with the service's loops until the context ends
// and then shuts down within a deadline. Kafka producers and consumers carry
// trace context in message headers with package kafkatrace.
//
// A service's run function:
//
//	func run(ctx context.Context) error {
//		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
//		shared := config.Shared{GRPCAddr: ":7003", MetricsAddr: ":9103"} // this service's defaults
//		shared.Register(fs, config.Kafka, config.Catalog)                   // the shared flags it needs
//		batchRows := fs.Int("batch-rows", 100_000, "rows per commit")        // its own flags
//		if err := config.Parse(fs, os.Args[1:]); err != nil {                // env defaults, then args
//			if errors.Is(err, flag.ErrHelp) {
//				return nil // --help printed the flags with their PLANTLAKE_* names
//			}
//			return err
//		}
//		kit, err := servicekit.New(ctx, servicekit.Options{Name: "ingest", Config: &shared, MapError: mapError})
//		if err != nil {
//			return err
//		}
//		svc := ingest.New(kit.Logger, *batchRows, ...)
//		pipelinev1.RegisterPipelineServiceServer(kit.GRPC, svc)
//		kit.Metrics.MustRegister(svc.Collectors()...)
//		// once Kafka, the catalog and storage are reachable:
//		kit.GRPC.SetServing(true)
//		return kit.Run(ctx, svc.Loop)
//	}
//
// Health starts NOT_SERVING for the server and every registered service;
// the service turns it on with SetServing(true) when its dependencies are
// reachable (and off again while they are not). On shutdown every status
// turns NOT_SERVING first.
//
// Callers are checked by the kit (package identity): --identities names who
// may call and with which scopes, --tls-cert/--tls-key/--tls-client-ca
// serve TLS with optional client certificates, and without any of them (or
// --auth-token) the server listens on loopback only. A service declares the
// scopes of its own methods with Options.Scopes.
//
// A service whose callers share its machine can serve its gRPC server on a
// Unix socket too (Kit.UnixSocket, the catalog's --unix-socket; see
// ListenUnix): the same server, interceptors and credentials, with the
// socket file's 0660 as a further fence. Other services are dialed with
// kit.Dial(kit.Config.CatalogAddr) — host:port or unix:///path — which
// adds tracing, the --auth-token and the client TLS of --tls-ca and
// --tls-client-cert. Domain errors become gRPC codes in one
// place, Options.MapError (e.g. ErrConflict → codes.Aborted); a panicking
// handler answers Internal and is logged with its stack. Tests listen on
// "127.0.0.1:0" and learn the ports through Kit.OnListen; the Example below
// runs a whole service that way.
package servicekit
