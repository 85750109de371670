package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/tlsutil"
	"github.com/admq/admq-manager/manager/pki"
)

// clock is a settable time source, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func openCA(t *testing.T, now func() time.Time) *pki.CA {
	t.Helper()
	ca, err := pki.Open(t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestOpenCreatesAndReloads(t *testing.T) {
	clk := newClock()
	dir := filepath.Join(t.TempDir(), "data", "pki")
	ca, err := pki.Open(dir, clk.Now)
	if err != nil {
		t.Fatal(err)
	}

	for _, f := range []struct {
		path string
		perm os.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, pki.KeyFile), 0o600},
		{filepath.Join(dir, pki.CertFile), 0o644},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.perm {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode().Perm(), f.perm)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want only ca.crt and ca.key (temp files left?)", len(entries))
	}

	c := ca.Certificate()
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA basic constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA key usage = %v", c.KeyUsage)
	}
	if c.Subject.CommonName != "admq-manager CA" {
		t.Errorf("CA CN = %q", c.Subject.CommonName)
	}
	if want := clk.Now().AddDate(10, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("CA NotAfter = %v, want %v", c.NotAfter, want)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("CA serial has %d bits", c.SerialNumber.BitLen())
	}
	if ca.Pin() != tlsutil.Pin(c) {
		t.Errorf("Pin() = %q, want %q", ca.Pin(), tlsutil.Pin(c))
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, pki.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, ca.CertPEM()) {
		t.Error("CertPEM differs from ca.crt")
	}

	again, err := pki.Open(dir, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if again.Pin() != ca.Pin() || !again.Certificate().Equal(c) {
		t.Errorf("second Open: pin %s, want %s", again.Pin(), ca.Pin())
	}
	// The reloaded key still signs for this CA.
	_, csr, err := tlsutil.NewKeyAndCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, _, err := again.SignAgentCSR(csr, "42", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyClientCert(t, ca, certPEM, clk.Now()); err != nil {
		t.Errorf("certificate from reloaded CA: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		{
			name: "only certificate",
			setup: func(t *testing.T, dir string) {
				copyFrom(t, dir, pki.CertFile)
			},
			wantErr: "ca.key does not",
		},
		{
			name: "only key",
			setup: func(t *testing.T, dir string) {
				copyFrom(t, dir, pki.KeyFile)
			},
			wantErr: "ca.crt does not",
		},
		{
			name: "key of another CA",
			setup: func(t *testing.T, dir string) {
				copyFrom(t, dir, pki.CertFile)
				copyFrom(t, dir, pki.KeyFile)
			},
			wantErr: "does not belong",
		},
		{
			name: "garbage certificate",
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, pki.CertFile), []byte("garbage"))
				copyFrom(t, dir, pki.KeyFile)
			},
			wantErr: "no CERTIFICATE PEM block",
		},
		{
			name: "garbage key",
			setup: func(t *testing.T, dir string) {
				copyFrom(t, dir, pki.CertFile)
				write(t, filepath.Join(dir, pki.KeyFile), []byte("garbage"))
			},
			wantErr: "parse CA key",
		},
		{
			name: "not a CA",
			setup: func(t *testing.T, dir string) {
				src := openCA(t, nil)
				_, csr, err := tlsutil.NewKeyAndCSR("x")
				if err != nil {
					t.Fatal(err)
				}
				leaf, _, _, err := src.SignAgentCSR(csr, "1", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, pki.CertFile), leaf)
				copyFrom(t, dir, pki.KeyFile)
			},
			wantErr: "is not a CA certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			before := snapshot(t, dir)
			_, err := pki.Open(dir, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open: err = %v, want it to contain %q", err, tt.wantErr)
			}
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Error("Open changed the directory")
			}
		})
	}
}

// copyFrom copies name from a freshly created CA into dir.
func copyFrom(t *testing.T, dir, name string) {
	t.Helper()
	src := t.TempDir()
	if _, err := pki.Open(src, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, name), b)
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestServerTLSConfig(t *testing.T) {
	ca := openCA(t, nil)
	tests := []struct {
		name    string
		hosts   []string
		dns     []string
		ips     []string
		wantErr bool
	}{
		{name: "none"},
		{name: "mixed", hosts: []string{"10.0.0.5", "Manager.Example.com", "::1", "[fe80::1]", "", " manager ", "manager.example.com.", "10.0.0.5"},
			dns: []string{"manager.example.com", "manager"}, ips: []string{"10.0.0.5", "::1", "fe80::1"}},
		{name: "wildcard", hosts: []string{"*.example.com"}, dns: []string{"*.example.com"}},
		{name: "host with port", hosts: []string{"manager:8443"}, wantErr: true},
		{name: "url", hosts: []string{"https://manager"}, wantErr: true},
		{name: "space inside", hosts: []string{"a b"}, wantErr: true},
		{name: "empty label", hosts: []string{"a..b"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ca.ServerTLSConfig(tt.hosts)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.ClientCAs == nil {
				t.Errorf("config: min %x, client auth %v, client CAs %v", cfg.MinVersion, cfg.ClientAuth, cfg.ClientCAs)
			}
			if len(cfg.Certificates) != 1 || len(cfg.Certificates[0].Certificate) != 2 {
				t.Fatalf("want one certificate with a chain of 2, got %+v", cfg.Certificates)
			}
			if !bytes.Equal(cfg.Certificates[0].Certificate[1], ca.Certificate().Raw) {
				t.Error("second chain element is not the CA certificate")
			}
			leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
				t.Errorf("leaf EKU %v, IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
			}
			if leaf.Subject.CommonName != "admq-manager" {
				t.Errorf("leaf CN %q", leaf.Subject.CommonName)
			}
			if !slices.Equal(leaf.DNSNames, tt.dns) {
				t.Errorf("DNS SANs %q, want %q", leaf.DNSNames, tt.dns)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("IP SANs %q, want %q", ips, tt.ips)
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 364*24*time.Hour || d > 366*24*time.Hour {
				t.Errorf("leaf validity %v, want about a year", d)
			}
		})
	}
}

func TestEnrollHandshake(t *testing.T) {
	ca := openCA(t, nil)
	other := openCA(t, nil)
	srv, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	otherSrv, err := other.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		server  *tls.Config
		pin     string
		wantErr string
	}{
		{name: "correct pin", server: srv, pin: ca.Pin()},
		{name: "wrong pin", server: srv, pin: other.Pin(),
			wantErr: "manager CA pin mismatch: expected " + other.Pin() + ", manager presented " + ca.Pin()},
		{name: "server of another CA", server: otherSrv, pin: ca.Pin(),
			wantErr: "manager CA pin mismatch: expected " + ca.Pin() + ", manager presented " + other.Pin()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *x509.Certificate
			cfg, err := tlsutil.EnrollClientConfig(tt.pin, func(c *x509.Certificate) { got = c })
			if err != nil {
				t.Fatal(err)
			}
			r := handshake(t, tt.server, cfg)
			if tt.wantErr != "" {
				if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), tt.wantErr) {
					t.Fatalf("client error %v, want %q", r.clientErr, tt.wantErr)
				}
				if got != nil {
					t.Error("onCA called after a failed check")
				}
				return
			}
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
			}
			if got == nil || !got.Equal(ca.Certificate()) {
				t.Fatal("onCA did not receive the CA certificate")
			}
			// An enrolling agent has no certificate yet.
			if id, serial, ok := pki.AgentID(r.server); ok {
				t.Errorf("AgentID without client certificate = %q, %q, true", id, serial)
			}
		})
	}
}

// TestAgentCertificateCannotServe checks that an agent certificate, although
// issued by the manager's CA, is refused as a server certificate.
func TestAgentCertificateCannotServe(t *testing.T) {
	ca := openCA(t, nil)
	keyPEM, csr, err := tlsutil.NewKeyAndCSR("agent")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, _, err := ca.SignAgentCSR(csr, "7", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := tls.X509KeyPair(append(certPEM, ca.CertPEM()...), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(agentCert.Certificate) != 2 {
		t.Fatalf("chain length %d, want 2", len(agentCert.Certificate))
	}
	evil := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{agentCert}}

	enrol, err := tlsutil.EnrollClientConfig(ca.Pin(), func(*x509.Certificate) { t.Error("onCA called") })
	if err != nil {
		t.Fatal(err)
	}
	// Another enrolled agent, with a valid certificate of its own.
	key2, csr2, err := tlsutil.NewKeyAndCSR("agent2")
	if err != nil {
		t.Fatal(err)
	}
	cert2, _, _, err := ca.SignAgentCSR(csr2, "8", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mtls, err := tlsutil.ClientConfig(ca.CertPEM(), cert2, key2)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{"enroll": enrol, "enrolled": mtls} {
		t.Run(name, func(t *testing.T) {
			r := handshake(t, evil, cfg)
			if r.clientErr == nil || !strings.Contains(r.clientErr.Error(), "key usage") {
				t.Fatalf("client error %v, want an extended key usage error", r.clientErr)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	clk := newClock()
	ca := openCA(t, clk.Now)
	other := openCA(t, nil)
	srv, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}

	agent := func(t *testing.T, issuer *pki.CA, id string, validity time.Duration) (*tls.Config, string) {
		t.Helper()
		keyPEM, csr, err := tlsutil.NewKeyAndCSR(id)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, serial, _, err := issuer.SignAgentCSR(csr, id, validity)
		if err != nil {
			t.Fatal(err)
		}
		cn, leafSerial, _, err := tlsutil.LeafInfo(certPEM)
		if err != nil || cn != id || leafSerial != serial {
			t.Fatalf("LeafInfo = %q, %q, %v; want %q, %q", cn, leafSerial, err, id, serial)
		}
		cfg, err := tlsutil.ClientConfig(ca.CertPEM(), certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return cfg, serial
	}

	t.Run("enrolled agent", func(t *testing.T) {
		cfg, serial := agent(t, ca, "1234567890", time.Hour)
		r := handshake(t, srv, cfg)
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		id, gotSerial, ok := pki.AgentID(r.server)
		if !ok || id != "1234567890" || gotSerial != serial {
			t.Fatalf("AgentID = %q, %q, %v; want 1234567890, %q, true", id, gotSerial, ok, serial)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: x509.NewCertPool()}
		cfg.RootCAs.AddCert(ca.Certificate())
		cfg.ServerName = "127.0.0.1"
		r := handshake(t, srv, cfg)
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", r.clientErr, r.serverErr)
		}
		if id, serial, ok := pki.AgentID(r.server); ok {
			t.Fatalf("AgentID = %q, %q, true; want ok=false", id, serial)
		}
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		cfg, _ := agent(t, other, "99", time.Hour)
		r := handshake(t, srv, cfg)
		if r.serverErr == nil {
			t.Fatalf("server accepted a foreign client certificate; AgentID ok=%v", func() bool { _, _, ok := pki.AgentID(r.server); return ok }())
		}
		if !strings.Contains(r.serverErr.Error(), "certificate") {
			t.Errorf("server error %v", r.serverErr)
		}
	})
	t.Run("expired by the manager's clock", func(t *testing.T) {
		cfg, _ := agent(t, ca, "5", time.Hour)
		clk.Set(clk.Now().Add(2 * time.Hour))
		defer clk.Set(clk.Now().Add(-2 * time.Hour))
		r := handshake(t, srv, cfg)
		if r.serverErr == nil || !strings.Contains(r.serverErr.Error(), "expired") {
			t.Fatalf("server error %v, want expired", r.serverErr)
		}
	})
	t.Run("server certificate as client certificate", func(t *testing.T) {
		cfg, _ := agent(t, ca, "6", time.Hour)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &srv.Certificates[0], nil
		}
		r := handshake(t, srv, cfg)
		if r.serverErr == nil {
			_, _, ok := pki.AgentID(r.server)
			t.Fatalf("server accepted its own certificate from a client; AgentID ok=%v", ok)
		}
	})
}

func TestAgentIDWithoutVerifiedChain(t *testing.T) {
	ca := openCA(t, nil)
	_, csr, err := tlsutil.NewKeyAndCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, _, err := ca.SignAgentCSR(csr, "3", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parsePEM(t, certPEM)
	serverLeaf, err := x509.ParseCertificate(mustServerConfig(t, ca).Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cs   tls.ConnectionState
		ok   bool
	}{
		{"no certificate", tls.ConnectionState{}, false},
		{"unverified", tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}, false},
		{"verified", tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca.Certificate()}}}, true},
		{"server EKU", tls.ConnectionState{PeerCertificates: []*x509.Certificate{serverLeaf}, VerifiedChains: [][]*x509.Certificate{{serverLeaf, ca.Certificate()}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _, ok := pki.AgentID(tt.cs)
			if ok != tt.ok || (ok && id != "3") {
				t.Fatalf("AgentID = %q, %v; want ok=%v", id, ok, tt.ok)
			}
		})
	}
}

func TestSignAgentCSR(t *testing.T) {
	clk := newClock()
	ca := openCA(t, clk.Now)

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	admin := csrFor(t, p256, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"admq-manager"}},
		DNSNames:       []string{"manager.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("127.0.0.1")},
		EmailAddresses: []string{"root@example.com"},
	})
	tampered := bytes.Replace(csrFor(t, p256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "aaaaaaaa"}}),
		[]byte("aaaaaaaa"), []byte("bbbbbbbb"), 1)

	tests := []struct {
		name     string
		csr      []byte
		id       string
		validity time.Duration
		wantErr  string
	}{
		{name: "CN admin ignored", csr: admin, id: "1001", validity: 24 * time.Hour},
		{name: "P-384", csr: csrFor(t, p384, nil), id: "1002", validity: time.Hour},
		{name: "Ed25519", csr: csrFor(t, edKey, nil), id: "1003", validity: time.Hour},
		{name: "garbage", csr: []byte("not a csr"), id: "1", validity: time.Hour, wantErr: "parse certificate request"},
		{name: "empty", csr: nil, id: "1", validity: time.Hour, wantErr: "parse certificate request"},
		{name: "bad signature", csr: tampered, id: "1", validity: time.Hour, wantErr: "signature"},
		{name: "RSA", csr: csrFor(t, rsaKey, nil), id: "1", validity: time.Hour, wantErr: "RSA keys are not accepted"},
		{name: "P-521", csr: csrFor(t, p521, nil), id: "1", validity: time.Hour, wantErr: "P-521 is not accepted"},
		{name: "empty agent id", csr: admin, id: "", validity: time.Hour, wantErr: "empty agent id"},
		{name: "zero validity", csr: admin, id: "1", validity: 0, wantErr: "not positive"},
		{name: "PEM instead of DER", csr: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: admin}), id: "1", validity: time.Hour, wantErr: "parse certificate request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, serial, notAfter, err := ca.SignAgentCSR(tt.csr, tt.id, tt.validity)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if certPEM != nil {
					t.Error("certificate returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := parsePEM(t, certPEM)
			csr, err := x509.ParseCertificateRequest(tt.csr)
			if err != nil {
				t.Fatal(err)
			}
			now := clk.Now()
			switch {
			case c.Subject.CommonName != tt.id:
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tt.id)
			case !slices.Equal(c.Subject.Organization, []string{"admq-agent"}):
				t.Errorf("O = %q", c.Subject.Organization)
			case !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(c.UnknownExtKeyUsage) != 0:
				t.Errorf("EKU = %v", c.ExtKeyUsage)
			case c.KeyUsage != x509.KeyUsageDigitalSignature:
				t.Errorf("KeyUsage = %v", c.KeyUsage)
			case len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0:
				t.Errorf("SANs %v %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs)
			case c.IsCA:
				t.Error("agent certificate is a CA")
			case !c.NotBefore.Equal(now.Add(-time.Minute)) || !c.NotAfter.Equal(now.Add(tt.validity)) || !notAfter.Equal(c.NotAfter):
				t.Errorf("validity %v..%v (returned %v), want %v..%v", c.NotBefore, c.NotAfter, notAfter, now.Add(-time.Minute), now.Add(tt.validity))
			case serial != tlsutil.SerialHex(c.SerialNumber) || c.SerialNumber.BitLen() < 64 || c.SerialNumber.BitLen() > 128:
				t.Errorf("serial %q, certificate serial %x", serial, c.SerialNumber)
			case !bytes.Equal(c.RawSubjectPublicKeyInfo, csr.RawSubjectPublicKeyInfo):
				t.Error("certificate key differs from the CSR key")
			}
			if err := verifyClientCert(t, ca, certPEM, now); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestValidityCappedByCA(t *testing.T) {
	clk := newClock()
	ca := openCA(t, clk.Now)
	caEnd := ca.Certificate().NotAfter
	_, csr, err := tlsutil.NewKeyAndCSR("x")
	if err != nil {
		t.Fatal(err)
	}

	clk.Set(caEnd.Add(-time.Hour))
	_, _, notAfter, err := ca.SignAgentCSR(csr, "1", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !notAfter.Equal(caEnd) {
		t.Errorf("notAfter %v, want the CA's %v", notAfter, caEnd)
	}

	clk.Set(caEnd.Add(time.Second))
	if _, _, _, err := ca.SignAgentCSR(csr, "1", time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("signing with an expired CA: err = %v", err)
	}
	if _, err := ca.ServerTLSConfig(nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("server certificate from an expired CA: err = %v", err)
	}
}

func TestCertPEMIsACopy(t *testing.T) {
	ca := openCA(t, nil)
	p := ca.CertPEM()
	p[0] = 'X'
	if ca.CertPEM()[0] == 'X' {
		t.Error("CertPEM returns the internal buffer")
	}
}

type result struct {
	server    tls.ConnectionState
	serverErr error
	clientErr error
}

// handshake runs a TLS handshake between serverCfg and clientCfg over a
// loopback TCP connection. In TLS 1.3 the client finishes before the server
// has checked its certificate, so a client that completed its handshake
// reads once to learn whether the server rejected it.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)

	var r result
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			r.serverErr = err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		s := tls.Server(c, serverCfg)
		if r.serverErr = s.Handshake(); r.serverErr == nil {
			r.server = s.ConnectionState()
			// Prove the connection carries data.
			_, r.serverErr = s.Write([]byte{'!'})
		}
	}()

	c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	cl := tls.Client(c, clientCfg)
	r.clientErr = cl.Handshake()
	if r.clientErr == nil {
		buf := make([]byte, 1)
		if _, err := cl.Read(buf); err != nil {
			r.clientErr = err
		} else if buf[0] != '!' {
			r.clientErr = errors.New("unexpected data")
		}
	}
	<-done
	return r
}

func csrFor(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func parsePEM(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a certificate PEM: %q", p)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func verifyClientCert(t *testing.T, ca *pki.CA, certPEM []byte, now time.Time) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	_, err := parsePEM(t, certPEM).Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

func mustServerConfig(t *testing.T, ca *pki.CA) *tls.Config {
	t.Helper()
	cfg, err := ca.ServerTLSConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTicketSecretKeptAcrossOpens(t *testing.T) {
	dir := t.TempDir()
	a, err := pki.TicketSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.TicketSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Fatalf("second open gave another secret (%d bytes): %x vs %x", len(a), a, b)
	}
	fi, err := os.Stat(filepath.Join(dir, pki.TicketSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, pki.TicketSecretFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.TicketSecret(dir); err == nil {
		t.Fatal("a damaged secret file was accepted")
	}
}
