// Package agent wires the parts of admq-agent together: its identity, its
// tunnel to the manager and the services it offers over it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/dirlock"
	"github.com/admq/admq-manager/internal/joinstring"
	"github.com/admq/admq-manager/internal/nodedir"
	"github.com/admq/admq-manager/internal/tlsutil"
)

// Config is the agent's whole configuration.
type Config struct {
	// ManagerAddr is the manager's tunnel address, host:port (required).
	ManagerAddr string
	// JoinToken is "<id>.<secret>::sha256:<hex>" as the manager prints it,
	// or a bare "<id>.<secret>" with CACertHash set. Used only to enroll.
	JoinToken string
	// CACertHash pins the manager's CA when JoinToken carries no pin.
	CACertHash string
	// StateDir holds the agent's identity (default /var/lib/admq-agent).
	StateDir string
	// AdvertiseIP is the address the manager records for this server
	// (default: the local address of the tunnel connection).
	AdvertiseIP string
}

// DefaultConfig returns the defaults for a system install.
func DefaultConfig() Config {
	return Config{StateDir: "/var/lib/admq-agent"}
}

// Validate checks the configuration and splits the join token.
func (c Config) Validate() (token, pin string, err error) {
	if c.ManagerAddr == "" {
		return "", "", errors.New("--manager is required (host:port of the manager's tunnel)")
	}
	if _, _, err := net.SplitHostPort(c.ManagerAddr); err != nil {
		return "", "", fmt.Errorf("--manager %q: want host:port: %w", c.ManagerAddr, err)
	}
	if c.StateDir == "" {
		return "", "", errors.New("--state-dir is required")
	}
	if c.AdvertiseIP != "" {
		if _, err := netip.ParseAddr(c.AdvertiseIP); err != nil {
			return "", "", fmt.Errorf("--advertise-ip %q: %w", c.AdvertiseIP, err)
		}
	}
	token, pin = joinstring.Parse(c.JoinToken)
	if c.CACertHash != "" {
		if pin != "" && pin != c.CACertHash {
			return "", "", errors.New("the join token's CA pin and --ca-cert-hash differ")
		}
		pin = c.CACertHash
	}
	if pin != "" {
		if pin, err = tlsutil.ParsePin(pin); err != nil {
			return "", "", err
		}
	}
	return token, pin, nil
}

// Run runs the agent until ctx is done or a permanent error occurs.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	token, pin, err := cfg.Validate()
	if err != nil {
		return err
	}
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	c := tunnel.New(tunnel.Config{
		ManagerAddr: cfg.ManagerAddr,
		Token:       token,
		CAPin:       pin,
		StateDir:    cfg.StateDir,
		AdvertiseIP: cfg.AdvertiseIP,
	}, log)
	if err := c.Run(ctx); err != nil {
		if errors.Is(err, tunnel.ErrNoCredentials) {
			return fmt.Errorf("%w: pass --token as printed by POST /admq-manager/agent/token", err)
		}
		return err
	}
	return nil
}

// lockStateDir makes the agent the only one using dir: two agents on one
// state dir would share an identity (the manager would see one agent
// flapping between two hosts' sessions) and each would act on the other's
// nodes. The lock goes with the process, so a crash leaves none behind.
func lockStateDir(dir string) (*dirlock.Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	l, err := dirlock.Acquire(filepath.Join(dir, nodedir.AgentLockName))
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("state dir %s is in use by another admq-agent (%s): each agent needs a state dir of its own (--state-dir)", dir, held.Holder())
	}
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return l, nil
}
