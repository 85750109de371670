package fleet

import (
	"context"
	"errors"

	"github.com/admq/admq-manager/internal/ids"
)

// DirectoryStore is what a Directory reads; the store implements it.
type DirectoryStore interface {
	Area(ctx context.Context, id ids.ID) (Area, error)
	AreaByCode(ctx context.Context, code string) (Area, error)
	Server(ctx context.Context, id ids.ID) (Server, error)
	// CertSerial returns the serial of the server's current agent
	// certificate ("" before enrollment), or ErrServerNotFound: what every
	// agent handshake checks, without reading the whole server.
	CertSerial(ctx context.Context, id ids.ID) (string, error)
}

// Directory answers what the tunnel and enrollment ask of the fleet while
// agents connect — an area, the default area, a server as stored, whether
// an agent's certificate is still its server's — from the store alone. It
// needs no live agents, so the tunnel is built on it before the Service
// that reaches agents through the tunnel.
type Directory struct{ store DirectoryStore }

// NewDirectory returns a Directory on store.
func NewDirectory(store DirectoryStore) Directory { return Directory{store: store} }

// Area returns the area with id.
func (d Directory) Area(ctx context.Context, id ids.ID) (Area, error) { return d.store.Area(ctx, id) }

// DefaultArea returns the area with DefaultAreaCode.
func (d Directory) DefaultArea(ctx context.Context) (Area, error) {
	return d.store.AreaByCode(ctx, DefaultAreaCode)
}

// Server returns the server as stored: its agent status and last-seen
// time are the ones last flushed (Service.Server gives the live ones).
func (d Directory) Server(ctx context.Context, id ids.ID) (Server, error) {
	return d.store.Server(ctx, id)
}

// CheckAgentCert accepts an agent certificate only while its server exists
// and the serial is the one issued last.
func (d Directory) CheckAgentCert(ctx context.Context, id ids.ID, serial string) error {
	current, err := d.store.CertSerial(ctx, id)
	if err != nil {
		return err
	}
	if current == "" || current != serial {
		return errors.New("certificate was revoked or replaced")
	}
	return nil
}
