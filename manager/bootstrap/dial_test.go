package bootstrap

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/admq/admq-manager/manager/fleet"
)

// memHostKeys is an in-memory HostKeyStore.
type memHostKeys struct {
	mu   sync.Mutex
	keys map[string]HostKey
}

func (m *memHostKeys) HostKey(_ context.Context, addr string) (HostKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[addr]
	if !ok {
		return HostKey{}, ErrHostKeyNotFound
	}
	return k, nil
}

func (m *memHostKeys) AddHostKey(_ context.Context, k HostKey) (HostKey, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.keys[k.Address]; ok {
		return old, false, nil
	}
	if m.keys == nil {
		m.keys = map[string]HostKey{}
	}
	m.keys[k.Address] = k
	return k, true, nil
}

func (m *memHostKeys) DeleteHostKey(_ context.Context, addr string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[addr]; !ok {
		return ErrHostKeyNotFound
	}
	delete(m.keys, addr)
	return nil
}

// sshServer is an in-process SSH server that accepts one password and
// serves no channels: enough to test dialing.
type sshServer struct {
	ln  net.Listener
	key ssh.Signer
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSSHServer(t *testing.T, ln net.Listener, hostKey ssh.Signer, password string) *sshServer {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if string(pw) == password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		},
	}
	cfg.AddHostKey(hostKey)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "no channels here")
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return &sshServer{ln: ln, key: hostKey}
}

func TestDialTrustOnFirstUse(t *testing.T) {
	ctx := t.Context()
	keys := &memHostKeys{}
	srv := startSSHServer(t, nil, newSigner(t), "right")
	addr := srv.ln.Addr().String()
	var recorded []HostKey
	cfg := func(pw string) dialConfig {
		auth, err := authMethods(fleet.SSHCredentials{Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		return dialConfig{Address: addr, User: "admq", Auth: auth, DialTimeout: time.Second, HandshakeTimeout: 5 * time.Second,
			HostKeys: keys, Now: time.Now, Accepted: func(k HostKey, added bool) {
				if added {
					recorded = append(recorded, k)
				}
			}}
	}

	c, err := dial(ctx, cfg("right"))
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	c.Close()
	want := ssh.FingerprintSHA256(srv.key.PublicKey())
	if len(recorded) != 1 || recorded[0].Fingerprint != want || recorded[0].Type != ssh.KeyAlgoED25519 {
		t.Fatalf("recorded %+v, want one key %s", recorded, want)
	}

	// The same key again: accepted, nothing new recorded.
	c, err = dial(ctx, cfg("right"))
	if err != nil {
		t.Fatalf("second dial: %v", err)
	}
	c.Close()
	if len(recorded) != 1 {
		t.Fatalf("recorded again: %+v", recorded)
	}

	t.Run("wrong password", func(t *testing.T) {
		_, err := dial(ctx, cfg("wrong"))
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("dial = %v, want ErrAuthFailed", err)
		}
	})

	t.Run("host key changed", func(t *testing.T) {
		// The "reinstalled" host: same address, new key.
		srv.ln.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", addr, err)
		}
		other := startSSHServer(t, ln, newSigner(t), "right")
		_, err = dial(ctx, cfg("right"))
		var changed *HostKeyChangedError
		if !errors.As(err, &changed) || !errors.Is(err, ErrHostKeyChanged) {
			t.Fatalf("dial = %v, want a HostKeyChangedError", err)
		}
		if changed.Known != want || changed.Presented != ssh.FingerprintSHA256(other.key.PublicKey()) || changed.Address != addr {
			t.Fatalf("error %+v names the wrong keys", changed)
		}
		d := changed.ErrorData()
		if d["knownFingerprint"] != want || d["presentedFingerprint"] != changed.Presented {
			t.Fatalf("error data %v", d)
		}
		// Forgetting the key lets the next dial trust the new one.
		if err := keys.DeleteHostKey(ctx, addr); err != nil {
			t.Fatal(err)
		}
		c, err := dial(ctx, cfg("right"))
		if err != nil {
			t.Fatalf("dial after forgetting: %v", err)
		}
		c.Close()
		if len(recorded) != 2 || recorded[1].Fingerprint != changed.Presented {
			t.Fatalf("recorded %+v", recorded)
		}
	})

	t.Run("closed port", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		closed := ln.Addr().String()
		ln.Close()
		c := cfg("right")
		c.Address = closed
		if _, err := dial(ctx, c); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dial = %v, want ErrUnreachable", err)
		}
	})

	t.Run("silent peer", func(t *testing.T) {
		// Accepts TCP but never speaks SSH: the handshake timeout ends it.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		quiet := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := ln.Accept()
			if err == nil {
				<-quiet
				c.Close()
			}
		}()
		defer func() { close(quiet); ln.Close(); <-done }()
		c := cfg("right")
		c.Address, c.HandshakeTimeout = ln.Addr().String(), 300*time.Millisecond
		start := time.Now()
		if _, err := dial(ctx, c); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("dial = %v, want ErrUnreachable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("handshake timeout took %v", d)
		}
	})
}

func TestAuthMethods(t *testing.T) {
	if m, err := authMethods(fleet.SSHCredentials{Password: "pw"}); err != nil || len(m) != 2 {
		t.Fatalf("password: %d methods, %v", len(m), err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("open sesame"))
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pemEncode(block))
	if _, err := authMethods(fleet.SSHCredentials{PrivateKey: pemKey}); err == nil || !contains(err.Error(), "passphrase") {
		t.Fatalf("encrypted key without passphrase: %v", err)
	}
	if _, err := authMethods(fleet.SSHCredentials{PrivateKey: pemKey, Passphrase: "wrong"}); err == nil || !contains(err.Error(), "passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if m, err := authMethods(fleet.SSHCredentials{PrivateKey: pemKey, Passphrase: "open sesame"}); err != nil || len(m) != 1 {
		t.Fatalf("right passphrase: %d, %v", len(m), err)
	}
	if _, err := authMethods(fleet.SSHCredentials{PrivateKey: "not a key"}); err == nil || !contains(err.Error(), "privateKey") {
		t.Fatalf("garbage key: %v", err)
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
