package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// tlsSchemes are the broker URL schemes that connect over TLS.
var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true, "wss": true}

// usesTLS reports whether the broker URL connects over TLS.
func usesTLS(broker string) bool {
	u, err := url.Parse(broker)
	return err == nil && tlsSchemes[u.Scheme]
}

// validateMQTTAuth checks the credential settings against each other and
// the broker URL; the files are read by mqttCredentials and mqttTLSConfig.
func (c Config) validateMQTTAuth() error {
	switch {
	case c.MQTTPassword != "" && c.MQTTPasswordFile != "":
		return fmt.Errorf("%w: --mqtt-password and --mqtt-password-file are both set; give one", ErrInvalidConfig)
	case (c.MQTTPassword != "" || c.MQTTPasswordFile != "") && c.MQTTUsername == "":
		return fmt.Errorf("%w: an MQTT password needs --mqtt-username", ErrInvalidConfig)
	case (c.MQTTClientCert == "") != (c.MQTTClientKey == ""):
		return fmt.Errorf("%w: --mqtt-client-cert and --mqtt-client-key go together", ErrInvalidConfig)
	case (c.MQTTCA != "" || c.MQTTClientCert != "") && !usesTLS(c.MQTTBroker):
		return fmt.Errorf("%w: TLS settings given but --mqtt-broker %q is not a TLS URL (ssl://, mqtts://)", ErrInvalidConfig, c.MQTTBroker)
	}
	return nil
}

// mqttPassword returns the configured password, reading the password file
// when one is set.
func (c Config) mqttPassword() (string, error) {
	if c.MQTTPasswordFile == "" {
		return c.MQTTPassword, nil
	}
	data, err := os.ReadFile(c.MQTTPasswordFile)
	if err != nil {
		return "", fmt.Errorf("%w: read --mqtt-password-file: %w", ErrInvalidConfig, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

// mqttTLSConfig returns the TLS configuration for a TLS broker URL (nil for
// others): the CA pool from MQTTCA, or the system's roots, and the client
// certificate when one is set. Certificates are checked against the
// broker's host name as usual.
func (c Config) mqttTLSConfig() (*tls.Config, error) {
	if !usesTLS(c.MQTTBroker) {
		return nil, nil
	}
	u, err := url.Parse(c.MQTTBroker)
	if err != nil {
		return nil, fmt.Errorf("%w: --mqtt-broker: %w", ErrInvalidConfig, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if c.MQTTCA != "" {
		pem, err := os.ReadFile(c.MQTTCA)
		if err != nil {
			return nil, fmt.Errorf("%w: read --mqtt-ca: %w", ErrInvalidConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --mqtt-ca %s holds no PEM certificate", ErrInvalidConfig, c.MQTTCA)
		}
		cfg.RootCAs = pool
	}
	if c.MQTTClientCert != "" {
		cert, err := tls.LoadX509KeyPair(c.MQTTClientCert, c.MQTTClientKey)
		if err != nil {
			return nil, fmt.Errorf("%w: --mqtt-client-cert/--mqtt-client-key: %w", ErrInvalidConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
