package bridge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantlake/plantlake/devstack"
)

// testCA is a certificate authority the test makes; issue writes a
// certificate it signs and its key as PEM files.
type testCA struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes name.pem and name-key.pem: a certificate for 127.0.0.1
// and localhost, for servers or clients.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs a bridge without waiting for it to become healthy; t.Cleanup
// stops it.
func start(t *testing.T, cfg Config) *Bridge {
	t.Helper()
	b, err := New(cfg, Options{Logger: testLogger(t).With("client_id", cfg.ClientID)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("bridge %s did not stop within 30s", cfg.ClientID)
		}
	})
	return b
}

// TestMQTTAuthAndTLS runs the bridge against a Mosquitto that refuses
// anonymous clients (a password file made with mosquitto_passwd) and has a
// TLS listener that requires client certificates, with certificates the
// test makes: the right credentials over tcp://, ssl:// and mqtts:// carry
// readings to Kafka; a wrong password, a missing client certificate and an
// unknown CA are refused, and Status says why.
func TestMQTTAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	serverCert, serverKey := ca.issue(t, "broker", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, "bridge", x509.ExtKeyUsageClientAuth)
	otherCA := newTestCA(t, dir, "other-ca")

	mosq := devstack.MosquittoWith(t, devstack.MosquittoConfig{
		Users: map[string]string{"bridge": "s3cret pass", "publisher": "pub"},
		TLS:   &devstack.MosquittoTLS{CertFile: serverCert, KeyFile: serverKey, ClientCAFile: ca.file},
	})
	bk := brokers{kafka: devstack.Kafka(t), mqtt: mosq}
	passwordFile := filepath.Join(dir, "mqtt-password")
	if err := os.WriteFile(passwordFile, []byte("s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsPort := strings.TrimPrefix(mosq.TLSURL(), "ssl://127.0.0.1:")

	// publish sends one reading as the publisher user over plain MQTT.
	publish := func(t *testing.T, topic, payload string) {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mosq.URL()).SetClientID("pub-" + topic).
			SetUsername("publisher").SetPassword("pub"))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect publisher: %v", tok.Error())
		}
		defer c.Disconnect(100)
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}

	ok := []struct {
		name   string
		broker string
		setup  func(*Config)
	}{
		{"password over tcp", mosq.URL(), func(c *Config) { c.MQTTUsername, c.MQTTPassword = "bridge", "s3cret pass" }},
		{"password file and client certificate over ssl", mosq.TLSURL(), func(c *Config) {
			c.MQTTUsername, c.MQTTPasswordFile = "bridge", passwordFile
			c.MQTTCA, c.MQTTClientCert, c.MQTTClientKey = ca.file, clientCert, clientKey
		}},
		{"mqtts scheme", "mqtts://localhost:" + tlsPort, func(c *Config) {
			c.MQTTUsername, c.MQTTPasswordFile = "bridge", passwordFile
			c.MQTTCA, c.MQTTClientCert, c.MQTTClientKey = ca.file, clientCert, clientKey
		}},
	}
	for i, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			name := "auth" + string(rune('a'+i))
			cfg := bk.config(name, "bridge-"+name)
			cfg.MQTTBroker = tc.broker
			tc.setup(&cfg)
			run(t, cfg, Options{})
			publish(t, "plant/"+name+"/press01/temperature", "reading-"+name)
			got := consumeByKey(t, bk.kafka.Brokers(), []string{name + "_raw"}, 1)
			if m := got["plant/"+name+"/press01/temperature"]; m == nil || string(m.Value) != "reading-"+name {
				t.Fatalf("Kafka has %v, want the reading", got)
			}
		})
	}

	refused := []struct {
		name   string
		broker string
		setup  func(*Config)
		reason string // in Status().LastError
	}{
		{"wrong password", mosq.URL(), func(c *Config) { c.MQTTUsername, c.MQTTPassword = "bridge", "wrong" }, "not Authorized"},
		{"no password", mosq.URL(), func(*Config) {}, "not Authorized"},
		{"no client certificate", mosq.TLSURL(), func(c *Config) {
			c.MQTTUsername, c.MQTTPassword, c.MQTTCA = "bridge", "s3cret pass", ca.file
		}, "certificate required"},
		{"unknown CA", mosq.TLSURL(), func(c *Config) {
			c.MQTTUsername, c.MQTTPassword = "bridge", "s3cret pass"
			c.MQTTCA, c.MQTTClientCert, c.MQTTClientKey = otherCA.file, clientCert, clientKey
		}, "certificate"},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			name := "refused" + string(rune('a'+i))
			cfg := bk.config(name, "bridge-"+name)
			cfg.MQTTBroker = tc.broker
			tc.setup(&cfg)
			b := start(t, cfg)
			waitFor(t, 30*time.Second, "a connection error in Status", func() bool {
				return strings.Contains(b.Status().LastError, tc.reason)
			})
			time.Sleep(2 * time.Second)
			if st := b.Status(); st.MQTTConnected || b.Healthy() {
				t.Errorf("connected: %+v", st)
			}
			t.Logf("last error: %s", b.Status().LastError)
		})
	}
}

func TestMQTTAuthConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.ClientID = "x"
		return c
	}
	tests := []struct {
		name  string
		setup func(*Config)
	}{
		{"password without user", func(c *Config) { c.MQTTPassword = "p" }},
		{"password and password file", func(c *Config) {
			c.MQTTUsername, c.MQTTPassword, c.MQTTPasswordFile = "u", "p", "/f"
		}},
		{"client certificate without key", func(c *Config) {
			c.MQTTBroker, c.MQTTClientCert = "ssl://localhost:8883", "/c.pem"
		}},
		{"CA on a plain URL", func(c *Config) { c.MQTTCA = "/ca.pem" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.setup(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate: %v, want ErrInvalidConfig", err)
			}
		})
	}
	c := base()
	c.MQTTBroker, c.MQTTUsername, c.MQTTPasswordFile = "mqtts://localhost:8883", "u", filepath.Join(t.TempDir(), "missing")
	if _, err := New(c, Options{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with a missing password file: %v, want ErrInvalidConfig", err)
	}
}
