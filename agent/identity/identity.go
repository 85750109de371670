// Package identity keeps an enrolled agent's credentials in its state dir:
// its private key, its client certificate and the manager's CA.
package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/admq/admq-manager/internal/atomicfile"
)

// File names inside the state dir.
const (
	KeyFile  = "agent.key"
	CertFile = "agent.crt"
	CAFile   = "ca.crt"
	IDFile   = "agent.id"
	// PendingKeyFile holds the key of an enrollment under way: every
	// attempt of that enrollment asks for a certificate for this key, so
	// that the manager can answer a retry whose first answer was lost.
	PendingKeyFile = "agent.key.pending"
)

// ErrNotEnrolled means the state dir holds no complete identity.
var ErrNotEnrolled = errors.New("agent is not enrolled")

// Identity is what an enrolled agent presents to the manager.
type Identity struct {
	AgentID string
	KeyPEM  []byte
	CertPEM []byte
	CAPEM   []byte
}

// Load reads the identity from dir. It returns ErrNotEnrolled when none of
// the files exist, and an error naming the missing file when only some do.
func Load(dir string) (Identity, error) {
	var id Identity
	files := []struct {
		name string
		dst  *[]byte
	}{{KeyFile, &id.KeyPEM}, {CertFile, &id.CertPEM}, {CAFile, &id.CAPEM}}
	var agentID []byte
	all := append(files, struct {
		name string
		dst  *[]byte
	}{IDFile, &agentID})
	missing := 0
	var firstMissing string
	for _, f := range all {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			missing++
			if firstMissing == "" {
				firstMissing = f.name
			}
			continue
		}
		if err != nil {
			return Identity{}, fmt.Errorf("read identity: %w", err)
		}
		*f.dst = b
	}
	switch missing {
	case 0:
		id.AgentID = string(agentID)
		return id, nil
	case len(all):
		return Identity{}, ErrNotEnrolled
	}
	return Identity{}, fmt.Errorf("state dir %s holds a partial identity (%s is missing): remove the dir's agent.* and ca.crt files and enroll again", dir, firstMissing)
}

// Save writes the identity to dir, each file atomically and the key with
// mode 0600. The id file is written last: its presence marks completion.
// Then the pending enrollment key, if any, is removed.
func Save(dir string, id Identity) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyFile, id.KeyPEM, 0o600},
		{CertFile, id.CertPEM, 0o644},
		{CAFile, id.CAPEM, 0o644},
		{IDFile, []byte(id.AgentID), 0o644},
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	return DropPendingKey(dir)
}

// PendingKey returns the key of the enrollment under way in dir. When dir
// holds none it makes one with newKey and saves it (mode 0600) before
// returning it, so that every retry of the enrollment uses the same key.
func PendingKey(dir string, newKey func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(dir, PendingKeyFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read pending enrollment key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	b, err = newKey()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("save pending enrollment key: %w", err)
	}
	return b, nil
}

// DropPendingKey removes the pending enrollment key from dir, if any.
func DropPendingKey(dir string) error {
	err := os.Remove(filepath.Join(dir, PendingKeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pending enrollment key: %w", err)
	}
	return nil
}
