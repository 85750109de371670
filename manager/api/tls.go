package api

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TLSConfig is the console's TLS: TLS 1.3, or TLS 1.2 with ECDHE key
// exchange and AEAD ciphers only, and the certificate and key read from
// certFile and keyFile (PEM). The files are read again when either
// changes (checked at each handshake, at most once a second), so a renewed
// certificate is served without a restart; a pair that does not load is
// logged and the previous one kept.
func TLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	if err := kp.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2 only; TLS 1.3's suites are all AEAD
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"http/1.1"},
		GetCertificate: kp.get,
	}, nil
}

// keyPair is a certificate and key kept in files, reloaded when they
// change.
type keyPair struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string    // the files' sizes and times when cert was read
	checked time.Time // when the files were last looked at
}

// stampOf says, in one string, what the files look like now.
func (k *keyPair) stampOf() (string, error) {
	var s string
	for _, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d@%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (k *keyPair) load() error {
	stamp, err := k.stampOf()
	if err != nil {
		return fmt.Errorf("console TLS: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("console TLS: %s and %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert, k.stamp = &cert, stamp
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Sub(k.checked) < time.Second {
		return k.cert, nil
	}
	k.checked = now
	stamp, err := k.stampOf()
	if err != nil || stamp == k.stamp {
		return k.cert, nil // a file being replaced: the next check sees it
	}
	if err := k.load(); err != nil {
		k.stamp = stamp // logged once per change
		k.log.Warn("console TLS certificate not reloaded; serving the previous one", "err", err)
		return k.cert, nil
	}
	k.log.Info("console TLS certificate reloaded", "cert", k.certFile)
	return k.cert, nil
}
