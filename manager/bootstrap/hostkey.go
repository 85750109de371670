package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostKey is the SSH host key recorded for an address on first use.
type HostKey struct {
	Address     string // ip:port, as net.JoinHostPort writes it
	Type        string // e.g. ssh-ed25519
	Key         []byte // SSH wire format
	Fingerprint string // SHA256:<base64>
	CreatedAt   time.Time
}

// HostKeyStore keeps recorded host keys.
type HostKeyStore interface {
	// HostKey returns the key recorded for address, or ErrHostKeyNotFound.
	HostKey(ctx context.Context, address string) (HostKey, error)
	// AddHostKey records k unless a key is recorded for its address already,
	// and returns the key recorded now (k, or the earlier one) and whether
	// it was k that got recorded.
	AddHostKey(ctx context.Context, k HostKey) (stored HostKey, added bool, err error)
	// DeleteHostKey forgets the key of address, or returns
	// ErrHostKeyNotFound.
	DeleteHostKey(ctx context.Context, address string) error
}

// hostKeyOf describes a presented key.
func hostKeyOf(address string, key ssh.PublicKey, now time.Time) HostKey {
	return HostKey{
		Address:     address,
		Type:        key.Type(),
		Key:         key.Marshal(),
		Fingerprint: ssh.FingerprintSHA256(key),
		CreatedAt:   now,
	}
}

// trustOnFirstUse returns a host key callback that accepts the key recorded
// for address, records the first key it sees when none is, and refuses any
// other key with a *HostKeyChangedError; accepted hears of the key it
// accepts. known is the key looked up before dialing (nil: none).
func trustOnFirstUse(ctx context.Context, store HostKeyStore, address string, known *HostKey, now func() time.Time, accepted func(HostKey, bool)) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		presented := hostKeyOf(address, key, now())
		if known == nil {
			stored, added, err := store.AddHostKey(ctx, presented)
			if err != nil {
				return fmt.Errorf("record host key of %s: %w", address, err)
			}
			if added {
				accepted(stored, true)
				return nil
			}
			known = &stored // recorded meanwhile by a concurrent bootstrap
		}
		if bytes.Equal(known.Key, presented.Key) {
			accepted(*known, false)
			return nil
		}
		return &HostKeyChangedError{Address: address, KeyType: presented.Type, Known: known.Fingerprint, Presented: presented.Fingerprint}
	}
}

// lookupHostKey returns the key recorded for address, or nil.
func lookupHostKey(ctx context.Context, store HostKeyStore, address string) (*HostKey, error) {
	k, err := store.HostKey(ctx, address)
	if errors.Is(err, ErrHostKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up host key of %s: %w", address, err)
	}
	return &k, nil
}

// hostKeyAlgorithms asks the host for the type of key recorded for it, so a
// host with several keys presents the one we know.
func hostKeyAlgorithms(known *HostKey) []string {
	if known == nil {
		return nil
	}
	if known.Type == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{known.Type}
}
