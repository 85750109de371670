package workloads

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/joinstring"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/tunnel"
)

// Hub is an in-process tunnel hub (the manager's side of the agents'
// tunnels) on a store of its own, for tests that drive agents through
// tunnel.Hub's node calls directly.
type Hub struct {
	*tunnel.Hub
	Addr   string
	enroll *enroll.Service
}

// StartHub runs a hub on a free port of 127.0.0.1 until the test ends.
func StartHub(t testing.TB) *Hub {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, filepath.Join(dir, "admq.db"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Open(filepath.Join(dir, "pki"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	presence := fleet.NewPresenceTracker(db, time.Now, time.Hour, log)
	directory := fleet.NewDirectory(db)
	en := enroll.NewService(db, directory, ca, gen, time.Now, time.Hour, log)
	tc, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	fm := fleetmetrics.New(fleetmetrics.Config{}, directory, prometheus.NewRegistry())
	hub := tunnel.New(tunnel.Config{}, tc, tunnel.Deps{Enroller: en, Presence: presence, Certs: directory, Metrics: fm, AgentID: pki.AgentID}, log, prometheus.NewRegistry())
	fl := fleet.NewService(db, presence, hub, gen, time.Now)
	fl.ForgetOnDelete(fm)
	if err := fl.EnsureDefaultArea(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hub.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub.Serve: %v", err)
		}
		db.Close()
	})
	return &Hub{Hub: hub, Addr: ln.Addr().String(), enroll: en}
}

// Agent is a real agent tunnel client, with its node supervisor, running
// in the test process on a state dir of its own.
type Agent struct {
	ID       ids.ID
	StateDir string
	h        *Hub
	advIP    string

	mu   sync.Mutex
	stop func()
}

// StartAgent enrolls a new agent on stateDir, advertising advertiseIP,
// and waits until its session is up. It is stopped when the test ends
// (its nodes keep running, as they would when a real agent exits).
func (h *Hub) StartAgent(t testing.TB, stateDir, advertiseIP string) *Agent {
	t.Helper()
	tok, err := h.enroll.CreateToken(t.Context(), enroll.TokenSpec{MaxUses: 1, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{StateDir: stateDir, h: h, advIP: advertiseIP}
	a.run(t, tok.JoinString)
	t.Cleanup(a.Stop)
	return a
}

func (a *Agent) run(t testing.TB, token string) {
	t.Helper()
	secret, pin := joinstring.Parse(token)
	ctx, cancel := context.WithCancel(context.Background())
	c := agenttunnel.New(agenttunnel.Config{
		ManagerAddr: a.h.Addr, Token: secret, CAPin: pin, StateDir: a.StateDir, AdvertiseIP: a.advIP,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	connected := make(chan string, 16)
	c.Connected = func(id string) {
		select {
		case connected <- id:
		default:
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	a.mu.Lock()
	a.stop = func() { once.Do(func() { cancel(); <-done }) }
	a.mu.Unlock()
	var idStr string
	select {
	case idStr = <-connected:
	case err := <-done:
		t.Fatalf("agent on %s ended before connecting: %v", a.StateDir, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("agent on %s did not connect within 30s", a.StateDir)
	}
	id, err := ids.Parse(idStr)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != 0 && id != a.ID {
		t.Fatalf("agent on %s came back as %s, was %s", a.StateDir, id, a.ID)
	}
	a.ID = id
	deadline := time.Now().Add(20 * time.Second)
	for !a.h.Online(id) {
		if time.Now().After(deadline) {
			t.Fatalf("hub has no session of agent %s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends the agent's tunnel client; its nodes keep running.
func (a *Agent) Stop() {
	a.mu.Lock()
	stop := a.stop
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart stops the agent and starts a new client on the same state dir,
// as an agent process restart would, and waits for its session.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for a.h.Online(a.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("hub still holds the session of stopped agent %s", a.ID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.run(t, "")
}
