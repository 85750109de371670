package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/dirlock"
	"github.com/admq/admq-manager/internal/nodedir"
)

// A second agent on a state dir in use is refused at once, naming the
// holder, and a state dir is free again once its agent has stopped.
func TestOneAgentPerStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := agent.Config{ManagerAddr: "127.0.0.1:1", StateDir: dir}

	held, err := dirlock.Acquire(filepath.Join(mkdir(t, dir), nodedir.AgentLockName))
	if err != nil {
		t.Fatal(err)
	}
	err = agent.Run(context.Background(), cfg, log)
	want := "in use by another admq-agent (pid " + strconv.Itoa(os.Getpid()) + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second agent on %s: got %v, want an error saying %q", dir, err, want)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}

	// Free: the agent gets past the lock (and stops for want of a join
	// token), and leaves the dir free behind it.
	if err := agent.Run(context.Background(), cfg, log); !errors.Is(err, tunnel.ErrNoCredentials) {
		t.Fatalf("agent on a free state dir: got %v, want ErrNoCredentials", err)
	}
	again, err := dirlock.Acquire(filepath.Join(dir, nodedir.AgentLockName))
	if err != nil {
		t.Fatalf("state dir still locked after the agent stopped: %v", err)
	}
	again.Release()
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
