package grpcserver

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/plantlake/plantlake/servicekit/identity"
)

// Method prefixes that are open to everyone: health checks and reflection
// (so that probes and `grpcurl list` work without credentials).
var authExempt = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// Names of the identities of the modes without an identities file.
const (
	// AnonymousIdentity is every caller when no credentials are configured
	// (the server then listens on loopback only).
	AnonymousIdentity = "anonymous"
	// SharedTokenIdentity is a caller that presented the shared
	// --auth-token when there is no identities file.
	SharedTokenIdentity = "auth-token"
	// CertificateIdentityPrefix begins the name of a caller proved by a
	// client certificate when there is no identities file: "cert:" and the
	// certificate's first name (see identity.CertificateNames).
	CertificateIdentityPrefix = "cert:"
)

// PipelineScopes are the scopes of plantlake.pipeline.v1.PipelineService,
// which every pipeline service registers: GetStatus reads; every other call
// (Pause, Resume, TriggerCommit, Reprocess and calls added later) controls
// the pipeline and needs operate. Every server has them.
var PipelineScopes = map[string]identity.Scope{
	"/plantlake.pipeline.v1.PipelineService/GetStatus": identity.Read,
	"/plantlake.pipeline.v1.PipelineService/":          identity.Operate,
}

// scopeFor returns the scope a method needs: its own entry, else its
// service's ("/pkg.Service/"), else admin, so that a method nobody listed
// is closed to all but admins.
func scopeFor(scopes map[string]identity.Scope, method string) identity.Scope {
	if sc, ok := scopes[method]; ok {
		return sc
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if sc, ok := scopes[method[:i+1]]; ok {
			return sc
		}
	}
	return identity.Admin
}

// RequireScopes sets the scopes the server's methods need, by full method
// name ("/plantlake.catalog.v1.CatalogService/Commit") or by service
// ("/plantlake.catalog.v1.CatalogService/"). A method without an entry
// needs admin. Call it before serving.
func (s *Server) RequireScopes(scopes map[string]identity.Scope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, sc := range scopes {
		s.scopes[m] = sc
	}
}

// authenticate says who makes a call. With an identities file a bearer
// token is looked up first, then a verified client certificate. Without
// one, the shared token (when set) or any verified client certificate
// proves an admin; with no credentials configured at all every caller is
// the anonymous admin.
func (s *Server) authenticate(ctx context.Context) (*identity.Identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	hasToken := false
	if values := md.Get("authorization"); len(values) > 0 {
		hasToken = true
		scheme, t, ok := strings.Cut(values[0], " ")
		if !ok || !strings.EqualFold(scheme, "bearer") {
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token (metadata \"authorization: Bearer <token>\")")
		}
		token = strings.TrimSpace(t)
	}
	cert := verifiedClientCert(ctx)
	switch {
	case s.opts.Identities != nil:
		set := s.opts.Identities.Current()
		if hasToken {
			if id := set.ByToken(token); id != nil {
				return id, nil
			}
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token: no identity has it")
		}
		if cert != nil {
			if id := set.ByCertificate(cert); id != nil {
				return id, nil
			}
			return nil, status.Errorf(codes.Unauthenticated, "client certificate %q is not in the identities file", certName(cert))
		}
		return nil, status.Error(codes.Unauthenticated, "missing credentials: a bearer token (metadata \"authorization: Bearer <token>\") or a client certificate")
	case s.opts.AuthToken != "":
		if hasToken {
			if subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.AuthToken)) == 1 {
				return identity.NewAdmin(SharedTokenIdentity), nil
			}
			return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
		}
		if cert != nil {
			return identity.NewAdmin(CertificateIdentityPrefix + certName(cert)), nil
		}
		return nil, status.Error(codes.Unauthenticated, "missing bearer token (metadata \"authorization: Bearer <token>\")")
	case s.opts.TLS != nil && s.opts.TLS.VerifiesClients():
		if cert != nil {
			return identity.NewAdmin(CertificateIdentityPrefix + certName(cert)), nil
		}
		return nil, status.Error(codes.Unauthenticated, "missing client certificate")
	}
	return s.anonymous, nil
}

// verifiedClientCert returns the client certificate of a TLS connection
// whose chain the server verified, or nil.
func verifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

func certName(cert *x509.Certificate) string {
	if names := identity.CertificateNames(cert); len(names) > 0 {
		return names[0]
	}
	return cert.Subject.String()
}

// authorize authenticates a call and checks that its identity holds the
// scope of the method. Open methods get no identity.
func (s *Server) authorize(ctx context.Context, method string) (*identity.Identity, error) {
	for _, prefix := range authExempt {
		if strings.HasPrefix(method, prefix) {
			return nil, nil
		}
	}
	id, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	need := scopeFor(s.scopes, method)
	s.mu.Unlock()
	if !id.Has(need) {
		return id, status.Errorf(codes.PermissionDenied, "identity %q lacks the %s scope that %s needs", id.Name, need, method)
	}
	return id, nil
}

// serverStream gives a stream handler the context with the identity, and
// gives the decode gate's weight back as soon as a message is decoded.
type serverStream struct {
	grpc.ServerStream
	ctx  context.Context
	gate *decodeGate
}

// Context returns the call's context with its identity.
func (s serverStream) Context() context.Context { return s.ctx }

// RecvMsg receives a message into m.
func (s serverStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	s.gate.release(m)
	return err
}
