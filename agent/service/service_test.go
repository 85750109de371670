package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/internal/dirlock"
	"github.com/admq/admq-manager/internal/nodedir"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testPin = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func agentConfig(manager, stateDir string) agent.Config {
	return agent.Config{ManagerAddr: manager, StateDir: stateDir}
}

func TestArguments(t *testing.T) {
	c := Config{Name: "svc", Agent: agent.Config{ManagerAddr: "m:1", StateDir: "/s", AdvertiseIP: "10.0.0.2", JoinToken: "id.secret::" + testPin}}
	got := strings.Join(c.Arguments(), " ")
	want := "run --manager m:1 --state-dir /s --advertise-ip 10.0.0.2 --log-format json --service-name svc"
	if got != want {
		t.Errorf("Arguments = %q; want %q", got, want)
	}
	if strings.Contains(got, "secret") {
		t.Error("the join token is on the command line")
	}
}

// TestInstallRefuses covers the checks Install makes before it touches
// anything: none of these may leave a state dir or token behind.
func TestInstallRefuses(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"no manager", Config{Agent: agent.Config{JoinToken: "a.b::" + testPin}}, "--manager is required"},
		{"bad manager", Config{Agent: agent.Config{ManagerAddr: "nohost", JoinToken: "a.b::" + testPin}}, "want host:port"},
		{"no token", Config{Agent: agent.Config{ManagerAddr: "m:1"}}, "--token is required"},
		{"no pin", Config{Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b"}}, "--ca-cert-hash"},
		{"pins differ", Config{Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::" + testPin, CACertHash: "sha256:" + strings.Repeat("b", 64)}}, "differ"},
		{"bad pin", Config{Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::sha256:12"}}, "ca pin"},
		{"bad advertise ip", Config{Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::" + testPin, AdvertiseIP: "host"}}, "--advertise-ip"},
		{"bad name", Config{Name: "a/b", Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::" + testPin}}, "service name"},
		{"missing executable", Config{Executable: "/nonexistent/admq-agent", Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::" + testPin}}, "not an executable"},
		{"directory as executable", Config{Executable: filepath.Dir(exe), Agent: agent.Config{ManagerAddr: "m:1", JoinToken: "a.b::" + testPin}}, "not an executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			tc.c.Agent.StateDir = dir
			_, err := Install(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Install left %s behind (%v)", dir, err)
			}
		})
	}
}

func TestPurge(t *testing.T) {
	t.Run("identity only", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"agent.key", "agent.crt", "ca.crt", "agent.id", "agent.key.pending", TokenFile, nodedir.AgentLockName} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := purge(dir, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("empty state dir not removed: %v", err)
		}
	})
	t.Run("keeps other files", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{"agent.key", "nodes.db"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := purge(dir, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "nodes.db")); err != nil {
			t.Errorf("purge removed a file that is not the identity's: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "agent.key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("agent.key survived: %v", err)
		}
	})
	t.Run("agent still running", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "agent.key"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		running, err := dirlock.Acquire(filepath.Join(dir, nodedir.AgentLockName))
		if err != nil {
			t.Fatal(err)
		}
		defer running.Release()
		if err := purge(dir, 0); err == nil || !strings.Contains(err.Error(), "an agent still runs on") {
			t.Fatalf("purge under a running agent: %v, want refused", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "agent.key")); err != nil {
			t.Errorf("purge refused yet removed the running agent's key: %v", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if err := purge(filepath.Join(t.TempDir(), "none"), 0); err != nil {
			t.Error(err)
		}
	})
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{StateRunning: "running", StateStopped: "stopped", StateNotInstalled: "not-installed"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q; want %q", st, st, want)
		}
	}
}

func TestStatusOfUnknownService(t *testing.T) {
	st, err := Status("admq-agent-test-does-not-exist")
	if err != nil || st != StateNotInstalled {
		t.Errorf("Status = %v, %v; want not-installed", st, err)
	}
	if err := Start("admq-agent-test-does-not-exist"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("Start = %v; want ErrNotInstalled", err)
	}
}
