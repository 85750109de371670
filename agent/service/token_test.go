package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/agent/identity"
)

func TestJoinTokenFile(t *testing.T) {
	dir := t.TempDir()
	if tok, err := ReadJoinToken(dir); tok != "" || err != nil {
		t.Fatalf("no file: ReadJoinToken = %q, %v; want empty, nil", tok, err)
	}
	if err := WriteJoinToken(dir, "id.secret::"+testPin); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(TokenPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
	if tok, err := ReadJoinToken(dir); tok != "id.secret::"+testPin || err != nil {
		t.Errorf("ReadJoinToken = %q, %v", tok, err)
	}
	// What an operator types: echo TOKEN > join-token, with spaces and all.
	if err := os.WriteFile(TokenPath(dir), []byte("  id.other::"+testPin+" \r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if tok, err := ReadJoinToken(dir); tok != "id.other::"+testPin || err != nil {
		t.Errorf("ReadJoinToken = %q, %v", tok, err)
	}
	if err := os.WriteFile(TokenPath(dir), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadJoinToken(dir); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: err = %v; want one saying so", err)
	}
	for i, want := range []bool{true, false} {
		if removed, err := RemoveJoinToken(dir); removed != want || err != nil {
			t.Errorf("RemoveJoinToken #%d = %v, %v; want %v", i+1, removed, err, want)
		}
	}
}

// fakeEnroll writes an identity as the tunnel does after enrolling. Its
// PEM is junk: the tunnel then fails to connect and retries until stopped,
// which is all these tests need.
func fakeEnroll(t testing.TB, dir string) {
	t.Helper()
	if err := identity.Save(dir, identity.Identity{AgentID: "1", KeyPEM: []byte("k"), CertPEM: []byte("c"), CAPEM: []byte("ca")}); err != nil {
		t.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runAgentFor runs RunAgent against a manager address that refuses
// connections, until stop is closed or RunAgent returns by itself.
func runAgentFor(t *testing.T, cfg agent.Config, stop <-chan struct{}) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return RunAgent(ctx, cfg, discard())
}

func TestRunAgentJoinToken(t *testing.T) {
	old := enrollPoll
	enrollPoll = 5 * time.Millisecond
	t.Cleanup(func() { enrollPoll = old })
	manager := "127.0.0.1:1" // nothing listens: every dial fails at once

	t.Run("no token anywhere", func(t *testing.T) {
		dir := t.TempDir()
		err := runAgentFor(t, agentConfig(manager, dir), nil)
		if err == nil || !strings.Contains(err.Error(), TokenPath(dir)) {
			t.Errorf("err = %v; want it to point at %s", err, TokenPath(dir))
		}
	})

	t.Run("token from the file, removed once enrolled", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteJoinToken(dir, "id.secret::"+testPin); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() { done <- runAgentFor(t, agentConfig(manager, dir), stop) }()
		// It is retrying the enrollment with the file's token (without one it
		// would have returned at once), and keeps the file meanwhile.
		time.Sleep(50 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("RunAgent returned %v; want it to retry with the file's token", err)
		default:
		}
		if _, err := os.Stat(TokenPath(dir)); err != nil {
			t.Fatalf("token file gone before enrollment: %v", err)
		}
		fakeEnroll(t, dir)
		waitFor(t, func() bool { _, err := os.Stat(TokenPath(dir)); return errors.Is(err, os.ErrNotExist) })
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("RunAgent = %v", err)
		}
	})

	t.Run("leftover file of an enrolled agent", func(t *testing.T) {
		dir := t.TempDir()
		fakeEnroll(t, dir)
		if err := WriteJoinToken(dir, "id.secret::"+testPin); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		close(stop)
		if err := runAgentFor(t, agentConfig(manager, dir), stop); err != nil {
			t.Errorf("RunAgent = %v", err)
		}
		if _, err := os.Stat(TokenPath(dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("token file not removed: %v", err)
		}
	})

	t.Run("flag wins over the file", func(t *testing.T) {
		dir := t.TempDir()
		if err := WriteJoinToken(dir, "id.secret"); err != nil { // no pin: unusable
			t.Fatal(err)
		}
		cfg := agentConfig(manager, dir)
		cfg.JoinToken = "id.secret::" + testPin
		stop := make(chan struct{})
		time.AfterFunc(50*time.Millisecond, func() { close(stop) })
		if err := runAgentFor(t, cfg, stop); err != nil {
			t.Errorf("RunAgent = %v; want the flag's token used", err)
		}
	})

	t.Run("empty file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(TokenPath(dir), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := runAgentFor(t, agentConfig(manager, dir), nil); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("err = %v; want one about the empty file", err)
		}
	})

	t.Run("partial identity", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, identity.KeyFile), []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := runAgentFor(t, agentConfig(manager, dir), nil); err == nil || !strings.Contains(err.Error(), "partial identity") {
			t.Errorf("err = %v; want the partial identity reported", err)
		}
	})
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
