// Package sealed encrypts small secrets at rest (SSH passwords and keys of
// managed servers) with AES-256-GCM under one key kept in the manager's data
// directory.
//
// A sealed value is bound to a context string (for example
// "server/1995325829847502849/ssh-password") given as GCM's additional data,
// so a ciphertext copied to another row or field does not open there.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the length of the key: AES-256.
const KeySize = 32

// version is the first byte of every sealed value, so the format can change.
const version byte = 1

// ErrOpen is returned for a sealed value that is damaged, was sealed under
// another key or for another context.
var ErrOpen = errors.New("sealed: cannot open: damaged, wrong key or wrong context")

// Box seals and opens values under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealed: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext for context. The result is
// version || nonce || ciphertext+tag; an empty plaintext seals to nil, so
// that "no secret" stays distinguishable without decrypting.
func (b *Box) Seal(plaintext []byte, context string) ([]byte, error) {
	if len(plaintext) == 0 {
		return nil, nil
	}
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+b.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, fmt.Errorf("sealed: nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:1+ns], plaintext, []byte(context)), nil
}

// Open decrypts a value Seal made for the same context; nil opens to nil.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// LoadOrCreateKey returns the key stored hex-encoded in path, creating the
// file (mode 0600, never wider) with a new random key on first use.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) != KeySize {
			return nil, fmt.Errorf("sealed: key file %s is damaged; secrets sealed under it cannot be opened (restore it from a backup)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sealed: read key: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("sealed: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sealed: write key: %w", err)
	}
	if _, err := io.WriteString(f, hex.EncodeToString(key)+"\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sealed: write key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sealed: write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sealed: write key: %w", err)
	}
	return key, nil
}
