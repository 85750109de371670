package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPin(t *testing.T) {
	ca, _ := newTestCA(t)
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := Pin(ca); got != want {
		t.Fatalf("Pin = %q, want %q", got, want)
	}
	if got, err := ParsePin(Pin(ca)); err != nil || got != want {
		t.Fatalf("ParsePin(Pin(ca)) = %q, %v; want %q, nil", got, err, want)
	}
}

func TestParsePin(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "good", in: "sha256:" + hex64, want: "sha256:" + hex64},
		{name: "uppercase normalised", in: "SHA256:" + strings.ToUpper(hex64), want: "sha256:" + hex64},
		{name: "surrounding space", in: " sha256:" + hex64 + "\n", want: "sha256:" + hex64},
		{name: "empty", in: "", wantErr: true},
		{name: "missing prefix", in: hex64, wantErr: true},
		{name: "other hash", in: "sha1:" + hex64[:40], wantErr: true},
		{name: "short", in: "sha256:" + hex64[:63], wantErr: true},
		{name: "long", in: "sha256:" + hex64 + "0", wantErr: true},
		{name: "non-hex", in: "sha256:" + hex64[:63] + "g", wantErr: true},
		{name: "inner space", in: "sha256: " + hex64[:63], wantErr: true},
		{name: "prefix only", in: "sha256:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePin(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePin(%q) = %q, want error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "want sha256:<64 hex digits>") {
					t.Errorf("error %q does not describe the expected form", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePin(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParsePin(f *testing.F) {
	for _, s := range []string{
		"",
		"sha256:",
		"sha256:" + strings.Repeat("a", 64),
		"SHA256:" + strings.Repeat("F", 64),
		"sha256:" + strings.Repeat("z", 64),
		strings.Repeat("0", 71),
		"sha256:\xff\xfe",
		"  sha256:" + strings.Repeat("1", 64) + "\t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePin(s)
		if err != nil {
			if p != "" {
				t.Fatalf("ParsePin(%q) returned %q with error %v", s, p, err)
			}
			return
		}
		if len(p) != len(PinPrefix)+64 || !strings.HasPrefix(p, PinPrefix) || strings.ToLower(p) != p {
			t.Fatalf("ParsePin(%q) = %q, not canonical", s, p)
		}
		if again, err := ParsePin(p); err != nil || again != p {
			t.Fatalf("ParsePin(%q) = %q, %v; not idempotent", p, again, err)
		}
	})
}

func TestSerialHex(t *testing.T) {
	big128, _ := new(big.Int).SetString("ABCDEF0123456789abcdef0123456789", 16)
	tests := []struct {
		in   *big.Int
		want string
	}{
		{nil, ""},
		{big.NewInt(0), "0"},
		{big.NewInt(255), "ff"},
		{big.NewInt(4096), "1000"},
		{big128, "abcdef0123456789abcdef0123456789"},
	}
	for _, tt := range tests {
		if got := SerialHex(tt.in); got != tt.want {
			t.Errorf("SerialHex(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewKeyAndCSR(t *testing.T) {
	keyPEM, csrDER, err := NewKeyAndCSR("agent-1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM block = %v, want PRIVATE KEY", block)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", k)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "agent-1" {
		t.Errorf("CSR CN = %q, want agent-1", csr.Subject.CommonName)
	}
	if !key.PublicKey.Equal(csr.PublicKey) {
		t.Error("CSR public key does not match the private key")
	}
	// Two calls give two different keys.
	keyPEM2, _, err := NewKeyAndCSR("agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if string(keyPEM) == string(keyPEM2) {
		t.Error("NewKeyAndCSR reused a key")
	}
}

func TestLeafInfo(t *testing.T) {
	ca, caKey := newTestCA(t)
	leaf, _ := issue(t, ca, caKey, "agent-7", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	cn, serial, notAfter, err := LeafInfo(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cn != "agent-7" || serial != SerialHex(leaf.SerialNumber) || !notAfter.Equal(leaf.NotAfter) {
		t.Errorf("LeafInfo = %q, %q, %v; want agent-7, %q, %v", cn, serial, notAfter, SerialHex(leaf.SerialNumber), leaf.NotAfter)
	}

	for _, bad := range [][]byte{nil, []byte("garbage"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})} {
		if _, _, _, err := LeafInfo(bad); err == nil {
			t.Errorf("LeafInfo(%q): want error", bad)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	ca, caKey := newTestCA(t)
	leaf, leafKey := issue(t, ca, caKey, "agent", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	_, otherKey := issue(t, ca, caKey, "other", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	caPEM := certPEM(ca)
	leafPEM := certPEM(leaf)

	if _, err := EnrollClientConfig("sha256:abc", nil); err == nil || !strings.Contains(err.Error(), "ca pin") {
		t.Errorf("EnrollClientConfig with bad pin: err = %v", err)
	}
	tests := []struct {
		name                string
		ca, cert, key       []byte
		wantErrContainsText string
	}{
		{"no CA", nil, leafPEM, keyPEM(t, leafKey), "load manager CA"},
		{"garbage CA", []byte("nope"), leafPEM, keyPEM(t, leafKey), "load manager CA"},
		{"key does not match", caPEM, leafPEM, keyPEM(t, otherKey), "load agent certificate"},
		{"no cert", caPEM, nil, keyPEM(t, leafKey), "load agent certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ClientConfig(tt.ca, tt.cert, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.wantErrContainsText) {
				t.Fatalf("ClientConfig: err = %v, want it to contain %q", err, tt.wantErrContainsText)
			}
		})
	}
	cfg, err := ClientConfig(caPEM, leafPEM, keyPEM(t, leafKey))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
}

// TestServerVerification runs real handshakes against servers that present
// various certificate chains.
func TestServerVerification(t *testing.T) {
	ca, caKey := newTestCA(t)
	other, otherKey := newTestCA(t)
	server, serverKey := issue(t, ca, caKey, "manager", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	client, clientKey := issue(t, ca, caKey, "agent", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	noEKU, noEKUKey := issue(t, ca, caKey, "no-eku", nil)
	forged, forgedKey := issue(t, other, otherKey, "manager", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})

	tests := []struct {
		name     string
		chain    []*x509.Certificate
		key      crypto.Signer
		enrolErr string // "" means EnrollClientConfig must accept
		mtlsErr  string // "" means ClientConfig must accept
	}{
		{name: "good", chain: []*x509.Certificate{server, ca}, key: serverKey},
		{name: "no CA sent", chain: []*x509.Certificate{server}, key: serverKey,
			enrolErr: "no CA certificate"},
		{name: "other CA", chain: []*x509.Certificate{forged, other}, key: forgedKey,
			enrolErr: "manager CA pin mismatch: expected " + Pin(ca) + ", manager presented " + Pin(other),
			mtlsErr:  "unknown authority"},
		{name: "forged leaf with our CA", chain: []*x509.Certificate{forged, ca}, key: forgedKey,
			enrolErr: "verify manager certificate", mtlsErr: "verify manager certificate"},
		{name: "client certificate as server", chain: []*x509.Certificate{client, ca}, key: clientKey,
			enrolErr: "incompatible key usage", mtlsErr: "incompatible key usage"},
		{name: "no extended key usage", chain: []*x509.Certificate{noEKU, ca}, key: noEKUKey,
			enrolErr: "no ServerAuth", mtlsErr: "no ServerAuth"},
		{name: "CA as leaf", chain: []*x509.Certificate{ca}, key: caKey,
			enrolErr: "no ServerAuth", mtlsErr: "no ServerAuth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{tlsCert(tt.chain, tt.key)}}

			var gotCA *x509.Certificate
			enrol, err := EnrollClientConfig(strings.ToUpper(Pin(ca)), func(c *x509.Certificate) { gotCA = c })
			if err != nil {
				t.Fatal(err)
			}
			checkErr(t, "enrol", handshake(t, srv, enrol), tt.enrolErr)
			if tt.enrolErr == "" && (gotCA == nil || !gotCA.Equal(ca)) {
				t.Errorf("onCA got %v, want the CA", gotCA)
			}
			if tt.enrolErr != "" && gotCA != nil {
				t.Error("onCA called on a failed handshake")
			}

			mtls, err := ClientConfig(certPEM(ca), certPEM(client), keyPEM(t, clientKey))
			if err != nil {
				t.Fatal(err)
			}
			checkErr(t, "mtls", handshake(t, srv, mtls), tt.mtlsErr)
		})
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s handshake: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s handshake succeeded, want error containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s handshake error %q does not contain %q", what, err, want)
	}
}

// handshake runs a TLS handshake over a loopback TCP connection and returns
// the client's error. (net.Pipe has no buffering, so a server writing
// session tickets and a client writing an alert can block each other.)
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		_ = tls.Server(c, serverCfg).Handshake()
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(deadline)
	err = tls.Client(c, clientCfg).Handshake()
	<-done
	c.Close()
	return err
}

func newTestCA(t *testing.T) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey crypto.Signer, cn string, eku []x509.ExtKeyUsage) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
