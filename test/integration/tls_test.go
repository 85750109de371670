package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// selfSigned writes a new self-signed certificate for 127.0.0.1 and its
// key to certFile and keyFile and returns the certificate.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "admq console test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then the certificate: a reload in between sees a pair
	// that does not match and keeps the old one.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// TestConsoleTLS: with --tls-cert/--tls-key the console API speaks TLS
// 1.3, or 1.2 with AEAD suites only; older versions, CBC suites and plain
// HTTP are refused; a renewed certificate is served without a restart.
// The agent tunnel stays TLS 1.3 only.
func TestConsoleTLS(t *testing.T) {
	integrationTest(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "console.crt"), filepath.Join(dir, "console.key")
	first := selfSigned(t, certFile, keyFile, 1)
	tm := testenv.StartManager(t, func(c *manager.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	addr := tm.HTTPAddr()

	dial := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(first)
	for _, c := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"TLS 1.3", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, true},
		{"TLS 1.2 with ECDHE and AES-GCM", &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true},
		{"TLS 1.2 with CBC only", &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}, false},
		{"TLS 1.1", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
	} {
		st, err := dial(c.cfg)
		if c.ok != (err == nil) {
			t.Errorf("%s: handshake error %v, want success %v", c.name, err, c.ok)
		} else if err == nil {
			t.Logf("%s: %s, %s", c.name, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
		}
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Get("https://" + addr + "/admq-manager/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("GET /health over TLS: HTTP %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + addr + "/admq-manager/health")
	if err == nil {
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS console: HTTP %d %s, want 400", resp.StatusCode, body)
		}
	}

	// A renewed certificate: served from the next handshake on (a second
	// after the last look at the files).
	second := selfSigned(t, certFile, keyFile, 2)
	roots.AddCert(second)
	testenv.Eventually(t, 30*time.Second, "the renewed certificate to be served", func() bool {
		st, err := dial(&tls.Config{RootCAs: roots})
		return err == nil && st.PeerCertificates[0].SerialNumber.Int64() == 2
	})

	// The tunnel: TLS 1.3 only.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tm.TunnelAddr(),
		&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}) //nolint:gosec // only the version matters
	if err == nil {
		conn.Close()
		t.Fatal("the tunnel accepted a TLS 1.2 handshake")
	}
}
