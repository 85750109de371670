package testenv

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/admq/admq-manager/manager"
)

// AdminPassword is the admin password StartManager gives the manager
// unless an option sets another; Manager.Client logs in with whichever the
// manager has.
const AdminPassword = "testenv-admin-secret-1"

// Manager is a real manager running in the test process, on a data dir of
// its own, that can be stopped and started again on the same data dir and
// ports.
type Manager struct {
	t   testing.TB
	cfg manager.Config
	log *SyncBuffer

	// Fixed after the first start.
	httpAddr, tunnelAddr, pin string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// StartManager opens and runs a manager on a new data dir under
// t.TempDir(), with the console and the tunnel on free ports of
// 127.0.0.1, the admin password AdminPassword, the cheapest bcrypt cost and
// a 5s shutdown grace. opts, applied in order, may adjust the config before
// the first start (to listen elsewhere, for example).
//
// The manager logs at info level to a buffer (see Log). It is stopped in
// t.Cleanup, and its log is printed there if the test failed.
func StartManager(t testing.TB, opts ...func(*manager.Config)) *Manager {
	t.Helper()
	cfg := manager.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.TunnelAddr = "127.0.0.1:0"
	cfg.AdminPassword = AdminPassword
	cfg.BcryptCost = bcrypt.MinCost
	cfg.ShutdownGrace = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	m := &Manager{t: t, cfg: cfg, log: &SyncBuffer{}}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("manager log:\n%s", m.log.String())
		}
	})
	m.Start()
	// From now on restarts reuse the bound ports.
	m.cfg.HTTPAddr, m.cfg.TunnelAddr = m.httpAddr, m.tunnelAddr
	return m
}

// Start opens the manager and runs it in the background. StartManager
// starts it the first time; call Start again only after Stop. On a restart
// the CA pin must not change: the test fails if it does.
func (m *Manager) Start() {
	m.t.Helper()
	log := slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var (
		mgr *manager.Manager
		err error
	)
	// On a restart the port may, rarely, be taken for a moment by another
	// test's outgoing connection; retry the listen for a while.
	deadline := time.Now().Add(15 * time.Second)
	for {
		mgr, err = manager.Open(context.Background(), m.cfg, log, prometheus.NewRegistry())
		if err == nil || !addrInUse(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatalf("open manager: %v", err)
	}
	if m.pin == "" {
		m.httpAddr, m.tunnelAddr, m.pin = mgr.HTTPAddr(), mgr.TunnelAddr(), mgr.CAPin
	} else if mgr.CAPin != m.pin {
		m.t.Errorf("CA pin changed across restart: %s, was %s", mgr.CAPin, m.pin)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Run(ctx) }()
	m.mu.Lock()
	m.cancel, m.done = cancel, done
	m.mu.Unlock()
}

// addrInUse reports whether err says a listen address is taken.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// Stop shuts the manager down gracefully and waits up to 30s for Run to
// return; the test fails if Run fails or does not return. Stopping a
// stopped manager does nothing.
func (m *Manager) Stop() {
	m.t.Helper()
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.cancel, m.done = nil, nil
	m.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			m.t.Errorf("manager Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		m.t.Errorf("manager did not stop within 30s of its context being cancelled")
	}
}

// Restart stops the manager and starts it again on the same data dir and
// ports.
func (m *Manager) Restart() {
	m.t.Helper()
	m.Stop()
	m.Start()
}

// HTTPAddr is the console's host:port.
func (m *Manager) HTTPAddr() string { return m.httpAddr }

// TunnelAddr is the agent tunnel's host:port, as bound (an unspecified
// address if the tunnel listens on every address).
func (m *Manager) TunnelAddr() string { return m.tunnelAddr }

// CAPin is the pin agents need to trust this manager; it stays the same
// across restarts.
func (m *Manager) CAPin() string { return m.pin }

// Config is the manager's config, with the addresses it bound.
func (m *Manager) Config() manager.Config { return m.cfg }

// Log is what the manager has logged so far, across restarts.
func (m *Manager) Log() string { return m.log.String() }
