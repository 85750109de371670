package sealed

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newBox(t *testing.T) *Box {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := newBox(t)
	for _, plain := range [][]byte{[]byte("x"), []byte("1qazXSW@"), bytes.Repeat([]byte{0, 255}, 4096)} {
		s, err := b.Seal(plain, "server/1/ssh-password")
		if err != nil {
			t.Fatal(err)
		}
		// A one-byte plaintext turns up in random bytes by chance; longer
		// ones must not.
		if len(plain) >= 8 && bytes.Contains(s, plain) {
			t.Fatalf("sealed value contains the plaintext")
		}
		got, err := b.Open(s, "server/1/ssh-password")
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, %v; want %q", got, err, plain)
		}
		again, _ := b.Seal(plain, "server/1/ssh-password")
		if bytes.Equal(again, s) {
			t.Fatal("two seals of one value are equal: nonce reused")
		}
	}
	if s, err := b.Seal(nil, "c"); s != nil || err != nil {
		t.Fatalf("Seal(nil) = %x, %v; want nil, nil", s, err)
	}
	if p, err := b.Open(nil, "c"); p != nil || err != nil {
		t.Fatalf("Open(nil) = %x, %v; want nil, nil", p, err)
	}
}

func TestTamper(t *testing.T) {
	b := newBox(t)
	s, err := b.Seal([]byte("hunter22"), "server/1/ssh-password")
	if err != nil {
		t.Fatal(err)
	}
	other := newBox(t)
	cases := map[string]func() ([]byte, error){
		"flipped ciphertext bit": func() ([]byte, error) {
			c := bytes.Clone(s)
			c[len(c)-1] ^= 1
			return b.Open(c, "server/1/ssh-password")
		},
		"flipped nonce bit": func() ([]byte, error) {
			c := bytes.Clone(s)
			c[2] ^= 0x80
			return b.Open(c, "server/1/ssh-password")
		},
		"unknown version": func() ([]byte, error) {
			c := bytes.Clone(s)
			c[0] = 9
			return b.Open(c, "server/1/ssh-password")
		},
		"truncated":     func() ([]byte, error) { return b.Open(s[:10], "server/1/ssh-password") },
		"other context": func() ([]byte, error) { return b.Open(s, "server/2/ssh-password") },
		"other key":     func() ([]byte, error) { return other.Open(s, "server/1/ssh-password") },
	}
	for name, open := range cases {
		t.Run(name, func(t *testing.T) {
			if p, err := open(); !errors.Is(err, ErrOpen) || p != nil {
				t.Fatalf("Open = %q, %v; want ErrOpen", p, err)
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load = %x, %v; want the same key", k2, err)
	}
	if err := os.WriteFile(path, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("damaged key file loaded")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("New accepted a 16-byte key")
	}
}
