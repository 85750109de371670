package service

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/agent/identity"
	"github.com/admq/admq-manager/agent/tunnel"
)

// TokenFile is the file in the state dir that hands a join token to
// `admq-agent run`, so that the token never appears in a unit file, a
// process list or a log. `admq-agent install` writes it; an operator of a
// packaged agent may too (echo TOKEN > /var/lib/admq-agent/join-token).
// The agent removes it once it has enrolled.
const TokenFile = "join-token"

// TokenPath is the join-token file of stateDir.
func TokenPath(stateDir string) string { return filepath.Join(stateDir, TokenFile) }

// WriteJoinToken writes token to stateDir's join-token file, mode 0600,
// atomically.
func WriteJoinToken(stateDir, token string) error {
	if err := atomicfile.WriteFile(TokenPath(stateDir), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write join token: %w", err)
	}
	return nil
}

// ReadJoinToken returns the token in stateDir's join-token file, or "" when
// there is no such file.
func ReadJoinToken(stateDir string) (string, error) {
	b, err := os.ReadFile(TokenPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read join token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("join token file %s is empty", TokenPath(stateDir))
	}
	return token, nil
}

// RemoveJoinToken removes stateDir's join-token file and reports whether
// there was one.
func RemoveJoinToken(stateDir string) (bool, error) {
	err := os.Remove(TokenPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove join token: %w", err)
	}
	return true, nil
}

// Enrolled reports whether stateDir holds a complete identity.
func Enrolled(stateDir string) (bool, error) {
	_, err := identity.Load(stateDir)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, identity.ErrNotEnrolled):
		return false, nil
	}
	return false, err
}

// enrollPoll is how often RunAgent looks for a completed enrollment while a
// join-token file waits to be removed.
var enrollPoll = 2 * time.Second

// RunAgent runs the agent as `admq-agent run` does. Before connecting it
// settles the join-token file: an enrolled agent removes a leftover one; an
// agent that is not enrolled and was given no token takes the file's. While
// the agent is not enrolled and the file exists, it polls the state dir and
// removes the file as soon as the identity is complete. Polling the files
// the tunnel writes (agent.id last) needs nothing from agent/tunnel, and
// the check at every start also covers a crash between the two steps.
func RunAgent(ctx context.Context, cfg agent.Config, log *slog.Logger) error {
	enrolled, err := Enrolled(cfg.StateDir)
	if err != nil {
		return err
	}
	if enrolled {
		removeTokenFile(cfg.StateDir, log)
	} else {
		if cfg.JoinToken == "" {
			if cfg.JoinToken, err = ReadJoinToken(cfg.StateDir); err != nil {
				return err
			}
			if cfg.JoinToken != "" {
				log.Info("using the join token file", "path", TokenPath(cfg.StateDir))
			}
		}
		if _, err := os.Stat(TokenPath(cfg.StateDir)); err == nil {
			wctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Go(func() { removeTokenWhenEnrolled(wctx, cfg.StateDir, log) })
			defer wg.Wait()
			defer cancel()
		}
	}
	err = agent.Run(ctx, cfg, log)
	if errors.Is(err, tunnel.ErrNoCredentials) {
		return fmt.Errorf("%w, or write it to %s", err, TokenPath(cfg.StateDir))
	}
	return err
}

func removeTokenWhenEnrolled(ctx context.Context, stateDir string, log *slog.Logger) {
	t := time.NewTicker(enrollPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, _ := Enrolled(stateDir); ok {
			removeTokenFile(stateDir, log)
			return
		}
	}
}

func removeTokenFile(stateDir string, log *slog.Logger) {
	removed, err := RemoveJoinToken(stateDir)
	switch {
	case err != nil:
		log.Warn("the agent is enrolled but its join token file remains", "err", err)
	case removed:
		log.Info("the agent is enrolled; removed the join token file", "path", TokenPath(stateDir))
	}
}
