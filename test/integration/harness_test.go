package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// The manager, its console API and the resource helpers are in test/testenv;
// this file holds what only this suite does with admq-agent processes.

// startAgent starts an admq-agent process against tm's tunnel (see
// testenv.StartAgent).
func startAgent(t testing.TB, tm *testenv.Manager, o testenv.AgentOptions) *testenv.Agent {
	t.Helper()
	return testenv.StartAgent(t, agentBin, tm.TunnelAddr(), o)
}

// enrollOnline starts an agent with o and waits until the API shows its
// server online; it returns the process and the server id.
func enrollOnline(t testing.TB, tm *testenv.Manager, c *testenv.Client, o testenv.AgentOptions) (*testenv.Agent, string) {
	t.Helper()
	a := startAgent(t, tm, o)
	testenv.Eventually(t, 30*time.Second, a.Name+" to connect", func() bool {
		if a.Exited() {
			t.Fatalf("%s exited (%v) before connecting; stderr:\n%s", a.Name, a.WaitErr(), a.Log())
		}
		return strings.Contains(a.Log(), "connected to manager")
	})
	id := a.ID(t)
	c.WaitStatus(t, id, "online", 30*time.Second)
	return a, id
}

// expectRefused checks that the agent exited non-zero with want in its stderr.
func expectRefused(t testing.TB, a *testenv.Agent, want string) {
	t.Helper()
	code := a.WaitExit(t, 30*time.Second)
	if code == 0 {
		t.Errorf("%s exited 0, want a non-zero exit", a.Name)
	}
	if !strings.Contains(a.Log(), want) {
		t.Errorf("%s stderr does not say %q:\n%s", a.Name, want, a.Log())
	}
}

// restartAgent starts the agent again on a's state dir and address (it is
// enrolled already: no token), after a has ended, and waits until the API
// shows its server online again.
func restartAgent(t testing.TB, tm *testenv.Manager, c *testenv.Client, a *testenv.Agent, advertiseIP string) *testenv.Agent {
	t.Helper()
	if !a.Exited() {
		t.Fatalf("restartAgent: %s still runs", a.Name)
	}
	b, _ := enrollOnline(t, tm, c, testenv.AgentOptions{StateDir: a.StateDir, AdvertiseIP: advertiseIP})
	return b
}

// killProcsUnder ends, with SIGKILL to their process groups, the
// processes whose working directory is root or lies under it: the nodes a
// test started there. Nodes run in sessions of their own and outlive a
// killed agent, so a test that fails half-way leaves them behind unless
// this runs in its cleanup. It returns the pids it signalled.
func killProcsUnder(root string) []int {
	if !filepath.IsAbs(root) || filepath.Clean(root) != root || filepath.Dir(root) == root || root == os.TempDir() {
		panic(fmt.Sprintf("killProcsUnder(%q): want a test's own dir", root))
	}
	ents, _ := os.ReadDir("/proc")
	var killed []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != root && !strings.HasPrefix(cwd, root+"/")) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		} else {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		killed = append(killed, pid)
	}
	return killed
}
