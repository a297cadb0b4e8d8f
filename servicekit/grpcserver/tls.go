package grpcserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSFiles names the PEM files of a server's TLS.
type TLSFiles struct {
	// Cert and Key are the server's certificate (chain) and private key.
	Cert, Key string
	// ClientCA, when set, holds the CAs that verify client certificates.
	// Clients may still connect without one (and prove who they are with a
	// token); a certificate they present must verify.
	ClientCA string
}

// TLS is a server's TLS configuration, read from files and replaced by
// Reload while the server runs: connections made after a Reload use the
// new certificate and CAs.
type TLS struct {
	files TLSFiles
	cur   atomic.Pointer[tls.Config]
}

// LoadTLS reads the files.
func LoadTLS(files TLSFiles) (*TLS, error) {
	t := &TLS{files: files}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the files again; on error the configuration in force stays.
func (t *TLS) Reload() error {
	cert, err := tls.LoadX509KeyPair(t.files.Cert, t.files.Key)
	if err != nil {
		return fmt.Errorf("grpcserver: TLS key pair %s, %s: %w", t.files.Cert, t.files.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	if t.files.ClientCA != "" {
		pool, err := LoadCertPool(t.files.ClientCA)
		if err != nil {
			return fmt.Errorf("grpcserver: client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	t.cur.Store(cfg)
	return nil
}

// VerifiesClients says whether client certificates are verified.
func (t *TLS) VerifiesClients() bool { return t.files.ClientCA != "" }

// Config returns the configuration to serve with; each handshake uses the
// one loaded last.
func (t *TLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.cur.Load(), nil
		},
	}
}

// LoadCertPool reads a PEM file of CA certificates.
func LoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New(path + ": no PEM certificate in it")
	}
	return pool, nil
}
