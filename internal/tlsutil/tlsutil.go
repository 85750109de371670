// Package tlsutil holds the TLS and certificate helpers shared by the manager
// and the agents: CA pins, agent key and CSR generation, and the client-side
// tls.Config values an agent uses to reach the manager.
//
// Trust model: the manager runs a private CA. An agent that has not enrolled
// yet knows only the pin of that CA (the SHA-256 of its SubjectPublicKeyInfo)
// and authenticates the manager with EnrollClientConfig. Once enrolled it
// holds the CA certificate plus its own client certificate and uses
// ClientConfig. In both cases the manager's leaf certificate must chain to
// the CA and carry the ServerAuth extended key usage; the host name is not
// checked, because agents reach the manager by IP address or by any name.
// Agent certificates carry only ClientAuth, so they never pass as a manager.
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
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// PinPrefix starts every pin string; it names the hash function.
const PinPrefix = "sha256:"

// Pin returns the pin of cert: "sha256:" followed by the lowercase hex
// SHA-256 of the certificate's DER-encoded SubjectPublicKeyInfo. The pin
// depends only on the key, so it survives a re-issue of the certificate
// with the same key.
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return PinPrefix + hex.EncodeToString(sum[:])
}

// ParsePin checks that s is a pin ("sha256:" followed by 64 hex digits,
// surrounding white space ignored) and returns it in canonical lowercase
// form, comparable with the result of Pin.
func ParsePin(s string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(s))
	digits, ok := strings.CutPrefix(p, PinPrefix)
	if !ok || len(digits) != 2*sha256.Size || !isHex(digits) {
		return "", fmt.Errorf("ca pin %q: want %s<%d hex digits>", s, PinPrefix, 2*sha256.Size)
	}
	return p, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SerialHex formats a certificate serial number as lowercase hex without
// leading zeros or prefix. Both sides use it so that serial strings stored
// by the manager and reported by agents always compare equal. A nil serial
// gives "".
func SerialHex(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	return serial.Text(16)
}

// NewKeyAndCSR generates a fresh ECDSA P-256 private key and a certificate
// request signed by it whose subject is commonName. keyPEM is the key as a
// PKCS#8 "PRIVATE KEY" PEM block and must stay on the agent; csrDER is the
// DER-encoded request to send to the manager.
func NewKeyAndCSR(commonName string) (keyPEM []byte, csrDER []byte, err error) {
	keyPEM, err = NewKey()
	if err != nil {
		return nil, nil, err
	}
	csrDER, err = CSRForKey(keyPEM, commonName)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, csrDER, nil
}

// NewKey generates a fresh ECDSA P-256 private key, as a PKCS#8
// "PRIVATE KEY" PEM block.
func NewKey() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate agent key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode agent key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CSRForKey returns a DER-encoded certificate request whose subject is
// commonName, signed by keyPEM (a PKCS#8 "PRIVATE KEY" PEM block).
func CSRForKey(keyPEM []byte, commonName string) ([]byte, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("agent key: no PKCS#8 PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("agent key: a %T cannot sign", key)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, signer)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return csrDER, nil
}

// EnrollClientConfig returns the tls.Config for an agent's first connection,
// before it has a certificate of its own. No client certificate is sent. The
// manager is accepted only if the certificates it presents include a CA
// certificate whose pin equals pin and its leaf certificate chains directly
// to that CA with the ServerAuth extended key usage; the host name is not
// checked. On success onCA, if not nil, receives the CA certificate so the
// agent can store it for ClientConfig. onCA may run once per handshake.
func EnrollClientConfig(pin string, onCA func(*x509.Certificate)) (*tls.Config, error) {
	want, err := ParsePin(pin)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The standard verification would check the host name against
		// system roots; VerifyConnection below replaces it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			ca, err := pinnedCA(cs.PeerCertificates, want)
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			if err := verifyServerLeaf(cs.PeerCertificates[0], roots, nil); err != nil {
				return err
			}
			if onCA != nil {
				onCA(ca)
			}
			return nil
		},
	}, nil
}

// pinnedCA returns the CA certificate among certs whose pin is want.
func pinnedCA(certs []*x509.Certificate, want string) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("manager presented no certificate")
	}
	var seen []string
	for _, c := range certs {
		if !c.IsCA || !c.BasicConstraintsValid {
			continue
		}
		p := Pin(c)
		if p == want {
			return c, nil
		}
		if !slices.Contains(seen, p) {
			seen = append(seen, p)
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("manager presented no CA certificate in the TLS handshake, so its CA cannot be checked against pin %s", want)
	}
	return nil, fmt.Errorf("manager CA pin mismatch: expected %s, manager presented %s (wrong manager address, or a stale or mistyped pin)",
		want, strings.Join(seen, ", "))
}

// verifyServerLeaf checks that leaf chains to roots (through intermediates,
// if any) and is meant for a TLS server. The host name is not checked.
func verifyServerLeaf(leaf *x509.Certificate, roots, intermediates *x509.CertPool) error {
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("verify manager certificate %q: %w", leaf.Subject.CommonName, err)
	}
	// x509 treats a certificate without any extended key usage as good for
	// every purpose; a manager certificate must name ServerAuth explicitly.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return fmt.Errorf("verify manager certificate %q: it is not a TLS server certificate (no ServerAuth extended key usage)", leaf.Subject.CommonName)
	}
	return nil
}

// ClientConfig returns the tls.Config of an enrolled agent: it presents the
// client certificate certPEM with private key keyPEM, and accepts the
// manager only if its leaf certificate chains to a CA certificate in caPEM
// with the ServerAuth extended key usage. System roots are not used and the
// host name is not checked.
//
// A resumed session is not checked again: give the config a
// ClientSessionCache only if every config that shares the cache trusts the
// same CA (one cache per agent identity).
func ClientConfig(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load manager CA: %w", err)
	}
	roots := x509.NewCertPool()
	for _, ca := range cas {
		roots.AddCert(ca)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load agent certificate: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always send the certificate, even when the manager's list of
		// acceptable CAs does not name its issuer, so that a mismatch is
		// reported by the manager instead of silently connecting without.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		// The standard verification would check the host name against
		// system roots; VerifyConnection below replaces it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("manager presented no certificate")
			}
			if cs.DidResume {
				// The session was made by a full handshake that this
				// check passed (see ClientConfig), and only the manager
				// that made it can resume it; crypto/tls has checked that
				// the certificate has not expired since.
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			return verifyServerLeaf(cs.PeerCertificates[0], roots, inter)
		},
	}, nil
}

// parseCertificates returns every CERTIFICATE block of pemData; there must
// be at least one. Other block types are skipped.
func parseCertificates(pemData []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := pemData; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block found")
	}
	return certs, nil
}

// LeafInfo reads the first certificate in certPEM, normally the agent's own
// stored certificate, and returns its subject common name, its serial number
// as SerialHex, and its expiry time.
func LeafInfo(certPEM []byte) (cn string, serialHex string, notAfter time.Time, err error) {
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("read certificate: %w", err)
	}
	c := certs[0]
	return c.Subject.CommonName, SerialHex(c.SerialNumber), c.NotAfter, nil
}
