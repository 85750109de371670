package pki

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/admq/admq-manager/internal/atomicfile"
)

// TicketSecretFile holds the secret the tunnel derives its TLS session
// ticket keys from, so that agents resume their sessions across a restart
// of the manager. It is as sensitive as the CA key beside it: whoever has
// it can forge a resumable session for any agent.
const TicketSecretFile = "tunnel-ticket.key"

// ticketSecretSize is the secret's length in bytes.
const ticketSecretSize = 32

// TicketSecret returns the ticket secret kept in dir, creating it (mode
// 0600) on first use. A file of the wrong size is an error: it is not
// replaced, since that would only hide a damaged data dir.
func TicketSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, TicketSecretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(b) != ticketSecretSize {
			return nil, fmt.Errorf("tunnel ticket secret %s: %d bytes, want %d (remove it to make a new one; agents then do one full handshake each)", path, len(b), ticketSecretSize)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("tunnel ticket secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tunnel ticket secret: %w", err)
	}
	b = make([]byte, ticketSecretSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("tunnel ticket secret: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("tunnel ticket secret: %w", err)
	}
	return b, nil
}
