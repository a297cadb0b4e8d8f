// Package identity says who calls a plantlake gRPC service and what the
// caller may do. Identities come from a JSON file (--identities): each has a
// name, the bearer tokens and client-certificate names that prove it, and
// scopes:
//
//	{
//	  "identities": [
//	    {"name": "ingest", "tokens": ["<random>"], "scopes": ["read"],
//	     "commit": [{"tables": "raw.*", "app_ids": "ingest/*"}]},
//	    {"name": "ops", "certificate_names": ["ops.plant.example"], "scopes": ["read", "operate", "maintain"]},
//	    {"name": "admin", "tokens": ["sha256:9f86d0…"], "scopes": ["admin"]}
//	  ]
//	}
//
// Scopes: read (every read call), maintain (Checkpoint, Vacuum, Optimize),
// operate (pipeline control: Pause, Resume, TriggerCommit, Reprocess) and
// admin (everything, CreateTable included). Commit rights are grants of a
// table pattern and an app-id pattern: a commit is allowed when one grant
// matches its table and every txn app id it writes. Patterns are globs in
// which * matches any run of characters (dots and slashes included) and ?
// one character; an empty app_ids pattern allows no txn at all.
//
// A token may be written as "sha256:<hex>" so that the file holds no
// secret. A certificate name matches a verified client certificate's
// subject common name or one of its DNS, URI or e-mail names.
package identity

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Scope is a right an identity may hold.
type Scope string

// The scopes. Commit rights are not a plain scope but CommitGrants.
const (
	// Read allows every call that only reads.
	Read Scope = "read"
	// Maintain allows table maintenance (Checkpoint, Vacuum, Optimize).
	Maintain Scope = "maintain"
	// Operate allows pipeline control calls (Pause, Resume, TriggerCommit,
	// Reprocess).
	Operate Scope = "operate"
	// Commit is required by commit calls; an identity holds it when it has
	// at least one CommitGrant, and the call checks the grants themselves
	// with MayCommit.
	Commit Scope = "commit"
	// Admin allows everything.
	Admin Scope = "admin"
)

// ErrPermissionDenied is wrapped by every refusal of an authenticated
// caller; the service kit answers it with codes.PermissionDenied.
var ErrPermissionDenied = errors.New("permission denied")

// Identity is an authenticated caller. Its methods are safe on a nil
// receiver, which holds no rights.
type Identity struct {
	// Name names the caller in logs and refusals.
	Name    string
	scopes  map[Scope]bool
	commits []grant
}

// grant is one commit right: tables matching one pattern, txn app ids
// matching another (nil: no txn allowed).
type grant struct {
	tables, appIDs *regexp.Regexp
}

// NewAdmin returns an identity holding every right, for the modes without
// an identities file (no auth at all, the shared --auth-token, or any
// client certificate the CA signed).
func NewAdmin(name string) *Identity {
	return &Identity{Name: name, scopes: map[Scope]bool{Admin: true}}
}

// Has says whether the identity holds scope (admin holds them all).
func (id *Identity) Has(s Scope) bool {
	if id == nil {
		return false
	}
	if id.scopes[Admin] {
		return true
	}
	if s == Commit {
		return len(id.commits) > 0
	}
	return id.scopes[s]
}

// MayCommit returns nil if the identity may commit to table writing txns
// with appIDs, and an error wrapping ErrPermissionDenied that says why not
// otherwise.
func (id *Identity) MayCommit(table string, appIDs []string) error {
	if id == nil {
		return fmt.Errorf("%w: no identity", ErrPermissionDenied)
	}
	if id.scopes[Admin] {
		return nil
	}
	tableMatched := false
	var refused string
	for _, g := range id.commits {
		if !g.tables.MatchString(table) {
			continue
		}
		tableMatched = true
		refused = ""
		for _, app := range appIDs {
			if g.appIDs == nil || !g.appIDs.MatchString(app) {
				refused = app
				break
			}
		}
		if refused == "" {
			return nil
		}
	}
	if !tableMatched {
		return fmt.Errorf("%w: identity %q may not commit to table %q", ErrPermissionDenied, id.Name, table)
	}
	return fmt.Errorf("%w: identity %q may not write txn app id %q to table %q", ErrPermissionDenied, id.Name, refused, table)
}

// Set is the identities of one file, looked up by token or certificate.
type Set struct {
	byToken map[[sha256.Size]byte]*Identity
	byCert  map[string]*Identity
	names   []string
}

// Len returns the number of identities.
func (s *Set) Len() int { return len(s.names) }

// Names returns the identities' names in file order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// ByToken returns the identity a bearer token proves, or nil. Tokens are
// compared by their SHA-256, so the lookup time does not depend on how much
// of a token is right.
func (s *Set) ByToken(token string) *Identity {
	if s == nil || token == "" {
		return nil
	}
	return s.byToken[sha256.Sum256([]byte(token))]
}

// ByCertificate returns the identity of a verified client certificate, by
// its subject common name, then its DNS, URI and e-mail names; nil if none
// is in the file.
func (s *Set) ByCertificate(cert *x509.Certificate) *Identity {
	if s == nil || cert == nil {
		return nil
	}
	for _, name := range CertificateNames(cert) {
		if id := s.byCert[name]; id != nil {
			return id
		}
	}
	return nil
}

// CertificateNames lists the names a client certificate may be mapped by:
// the subject common name, then the DNS, URI and e-mail names.
func CertificateNames(cert *x509.Certificate) []string {
	var names []string
	if cert.Subject.CommonName != "" {
		names = append(names, cert.Subject.CommonName)
	}
	names = append(names, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	return append(names, cert.EmailAddresses...)
}

// glob compiles a pattern in which * matches any run of characters and ?
// one character.
func glob(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, errors.New("empty pattern")
	}
	var b strings.Builder
	b.WriteString(`\A`)
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`\z`)
	return regexp.Compile(b.String())
}

// tokenKey is the lookup key of a token as written in the file: its
// SHA-256, given directly as "sha256:<hex>" or computed from the plain text.
func tokenKey(token string) ([sha256.Size]byte, error) {
	var key [sha256.Size]byte
	if hexSum, ok := strings.CutPrefix(token, "sha256:"); ok {
		b, err := hex.DecodeString(hexSum)
		if err != nil || len(b) != sha256.Size {
			return key, errors.New("sha256: needs 64 hex digits")
		}
		copy(key[:], b)
		return key, nil
	}
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return key, errors.New("empty or contains white space")
	}
	return sha256.Sum256([]byte(token)), nil
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the service kit authenticated for the
// call, or nil.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}
