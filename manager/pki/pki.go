// Package pki is the manager's private certificate authority. It keeps the
// CA key pair in the manager's data directory, issues the manager's own TLS
// serving certificate, signs agent certificate requests during enrollment,
// and identifies agents from verified TLS client certificates.
//
// The manager certificate carries only the ServerAuth extended key usage and
// agent certificates only ClientAuth, so a certificate issued to an agent can
// never be used to impersonate the manager, although the same CA issues both.
package pki

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
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/internal/tlsutil"
)

// File names of the CA inside the data directory.
const (
	CertFile = "ca.crt"
	KeyFile  = "ca.key"
)

const (
	caCommonName     = "admq-manager CA"
	serverCommonName = "admq-manager"
	agentOrg         = "admq-agent"
	caValidityYears  = 10
	serverValidity   = 365 * 24 * time.Hour
	// backdate absorbs small clock differences between manager and agents.
	backdate = time.Minute
)

// CA is the manager's certificate authority. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	pin     string
	now     func() time.Time
}

// Open loads the CA from dir/ca.crt and dir/ca.key, or creates a new CA
// there when neither file exists. dir is created with mode 0700 if needed;
// a new key is written with mode 0600 and the certificate with 0644. If only
// one of the two files exists Open fails and changes nothing, since making a
// new CA would lock out every enrolled agent. now is the clock used for all
// validity periods; nil means time.Now.
func Open(dir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	certPath := filepath.Join(dir, CertFile)
	keyPath := filepath.Join(dir, KeyFile)
	certExists, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return load(certPath, keyPath, now)
	case certExists:
		return nil, fmt.Errorf("open CA: %s exists but %s does not; refusing to create a new CA over it (restore the key, or remove both files to start a new CA, which requires re-enrolling every agent)", certPath, keyPath)
	case keyExists:
		return nil, fmt.Errorf("open CA: %s exists but %s does not; refusing to create a new CA over it (restore the certificate, or remove both files to start a new CA, which requires re-enrolling every agent)", keyPath, certPath)
	}
	return create(dir, certPath, keyPath, now)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("open CA: %w", err)
	}
}

func load(certPath, keyPath string, now func() time.Time) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read CA certificate %s: no CERTIFICATE PEM block", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate %s: %w", certPath, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("CA certificate %s is not a CA certificate", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA key %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA key %s does not belong to CA certificate %s", keyPath, certPath)
	}
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:     key,
		pin:     tlsutil.Pin(cert),
		now:     now,
	}, nil
}

// parseKey reads a private key from a "PRIVATE KEY" (PKCS#8) or
// "EC PRIVATE KEY" (SEC 1) PEM block.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
}

func create(dir, certPath, keyPath string, now func() time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.AddDate(caValidityYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key goes first, so that an existing ca.crt always comes with its
	// key. A crash between the two renames leaves a lone ca.key, which
	// Open reports instead of silently replacing.
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := atomicfile.WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return &CA{cert: cert, certPEM: certPEM, key: key, pin: tlsutil.Pin(cert), now: now}, nil
}

func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s, nil
		}
	}
}

// Pin returns the CA pin ("sha256:<hex>") that agents need to enroll.
func (c *CA) Pin() string { return c.pin }

// Certificate returns the CA certificate. Callers must not modify it.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// CertPEM returns the CA certificate in PEM form.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.certPEM) }

// notAfter returns the end of a validity period of length d starting at t,
// cut off at the CA's own expiry, and fails if the CA has expired.
func (c *CA) notAfter(t time.Time, d time.Duration) (time.Time, error) {
	if !t.Before(c.cert.NotAfter) {
		return time.Time{}, fmt.Errorf("CA certificate expired at %s", c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	end := t.Add(d)
	if end.After(c.cert.NotAfter) {
		end = c.cert.NotAfter
	}
	return end, nil
}

// ServerTLSConfig issues a new manager serving certificate, kept only in
// memory, and returns the manager's TLS configuration. hosts are put into
// the certificate as IP address or DNS name subject alternative names;
// agents do not check them, but other TLS clients may. The handshake sends
// the CA certificate after the leaf so that enrolling agents can check it
// against their pin. Client certificates are optional and, when given, are
// verified against the CA; use AgentID on the resulting connection state.
func (c *CA) ServerTLSConfig(hosts []string) (*tls.Config, error) {
	var dnsNames []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		name := strings.ToLower(strings.TrimSuffix(h, "."))
		if !validDNSName(name) {
			return nil, fmt.Errorf("manager certificate host %q is neither an IP address nor a DNS name", h)
		}
		if !slices.Contains(dnsNames, name) {
			dnsNames = append(dnsNames, name)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate manager key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	t := c.now()
	end, err := c.notAfter(t, serverValidity)
	if err != nil {
		return nil, fmt.Errorf("issue manager certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: serverCommonName},
		NotBefore:             t.Add(-backdate),
		NotAfter:              end,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("issue manager certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse manager certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{der, c.cert.Raw},
			PrivateKey:  key,
			Leaf:        leaf,
		}},
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
		Time:       c.now,
	}, nil
}

// validDNSName reports whether name looks like a host name: dot-separated
// labels of letters, digits, '-' and '_', at most 63 bytes each and 253 in
// all, with an optional leading "*" wildcard label.
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for j := 0; j < len(label); j++ {
			ch := label[j]
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// SignAgentCSR issues the client certificate of agent agentID for the
// DER-encoded certificate request csrDER. The request must be correctly
// self-signed and hold an ECDSA P-256 or P-384 or an Ed25519 public key.
// Only that key is taken from the request: its subject and extensions are
// ignored. The certificate has common name agentID, organization
// "admq-agent", the ClientAuth extended key usage only, no subject
// alternative names, and is valid from one minute ago for validity (but not
// beyond the CA's own expiry). It returns the certificate in PEM form, its
// serial number as tlsutil.SerialHex, and its expiry.
func (c *CA) SignAgentCSR(csrDER []byte, agentID string, validity time.Duration) (certPEM []byte, serialHex string, notAfter time.Time, err error) {
	fail := func(err error) ([]byte, string, time.Time, error) {
		return nil, "", time.Time{}, fmt.Errorf("sign certificate for agent %q: %w", agentID, err)
	}
	if agentID == "" {
		return fail(errors.New("empty agent id"))
	}
	if validity <= 0 {
		return fail(fmt.Errorf("validity %v is not positive", validity))
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return fail(fmt.Errorf("parse certificate request: %w", err))
	}
	if err := csr.CheckSignature(); err != nil {
		return fail(fmt.Errorf("certificate request signature: %w", err))
	}
	if err := checkAgentKey(csr.PublicKey); err != nil {
		return fail(err)
	}
	serial, err := newSerial()
	if err != nil {
		return fail(err)
	}
	t := c.now()
	end, err := c.notAfter(t, validity)
	if err != nil {
		return fail(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: agentID, Organization: []string{agentOrg}},
		NotBefore:             t.Add(-backdate),
		NotAfter:              end,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return fail(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tlsutil.SerialHex(serial), end, nil
}

// checkAgentKey accepts the public key types agents may use.
func checkAgentKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not accepted; use P-256 or P-384", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		return errors.New("RSA keys are not accepted; use ECDSA P-256/P-384 or Ed25519")
	default:
		return fmt.Errorf("public key type %T is not accepted; use ECDSA P-256/P-384 or Ed25519", pub)
	}
}

// AgentID identifies the agent on a TLS connection served with a
// ServerTLSConfig configuration, after the handshake. crypto/tls has then
// already verified any client certificate against the CA. It returns the
// common name (the agent id) and serial number (as tlsutil.SerialHex) of the
// client certificate, and ok=false when the client presented no verified
// certificate or one without the ClientAuth extended key usage.
func AgentID(cs tls.ConnectionState) (agentID, serialHex string, ok bool) {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return "", "", false
	}
	leaf := cs.PeerCertificates[0]
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || leaf.Subject.CommonName == "" {
		return "", "", false
	}
	return leaf.Subject.CommonName, tlsutil.SerialHex(leaf.SerialNumber), true
}
