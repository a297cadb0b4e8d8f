// Package grpcclient dials plantlake services the way the kit's servers
// expect: OpenTelemetry tracing (otelgrpc), the bearer token on every call,
// TLS with an optional client certificate, and a receive limit large enough
// for big snapshots.
package grpcclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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
	// TLS, when set, secures the connection (see LoadTLS); nil dials
	// plaintext.
	TLS *tls.Config
	// MaxMessageSize is the largest message received; 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// DialOptions are appended to the kit's own options.
	DialOptions []grpc.DialOption
}

// Dial returns a client connection to target ("host:port" or any gRPC
// target URI). Like grpc.NewClient it connects lazily, on the first call.
// The connection is plaintext unless Options.TLS is set.
func Dial(target string, opts Options) (*grpc.ClientConn, error) {
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
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

// LoadTLS builds a client TLS configuration from PEM files: the CAs that
// verify servers (empty: the system's roots) and, when certFile is set, the
// client certificate and key presented to servers that ask for one.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("grpcclient: CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("grpcclient: CA: " + caFile + ": no PEM certificate in it")
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("grpcclient: client certificate %s, %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// bearerToken sends a bearer token over plaintext connections too: a
// service without TLS still proves who it is (on loopback, or on a network
// the operator trusts with --insecure-listen-any).
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }
