// Package grpcclient dials plantlake services the way the kit's servers
// expect: OpenTelemetry tracing (otelgrpc), the bearer token on every call,
// and a receive limit large enough for big snapshots.
package grpcclient

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultMaxMessageSize is the largest response a client receives unless
// Options.MaxMessageSize says otherwise (gRPC's default is 4 MiB).
const DefaultMaxMessageSize = 64 << 20

// Options configure Dial.
type Options struct {
	// AuthToken, when not empty, is sent on every call as
	// "authorization: Bearer <token>".
	AuthToken string
	// MaxMessageSize is the largest message received; 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// DialOptions are appended to the kit's own options.
	DialOptions []grpc.DialOption
}

// Dial returns a client connection to target ("host:port" or any gRPC
// target URI). Like grpc.NewClient it connects lazily, on the first call.
// The connection is plaintext: transport security (mTLS) is a later wave.
func Dial(target string, opts Options) (*grpc.ClientConn, error) {
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxMessageSize)),
	}
	if opts.AuthToken != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerToken(opts.AuthToken)))
	}
	conn, err := grpc.NewClient(target, append(dialOpts, opts.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: dial %s: %w", target, err)
	}
	return conn, nil
}

// bearerToken sends a bearer token over plaintext connections too (the
// kit's connections are plaintext until mTLS arrives).
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }
