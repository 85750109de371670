package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// The manager, its console API and the resource helpers are in test/testenv;
// this file holds what only this suite does: run admq-agent processes.

// ---------------------------------------------------------------------------
// Agent processes.

type agentOpts struct {
	Token       string // join string; empty: none
	AdvertiseIP string
	StateDir    string // empty: a new temp dir
	Extra       []string
}

type agentProc struct {
	t        testing.TB
	name     string
	stateDir string
	cmd      *exec.Cmd
	stderr   *testenv.SyncBuffer
	done     chan struct{}
	waitErr  error
}

// startAgent starts an admq-agent process against tm's tunnel; it is killed
// in t.Cleanup, and its stderr is logged if the test failed.
func startAgent(t testing.TB, tm *testenv.Manager, o agentOpts) *agentProc {
	t.Helper()
	if o.StateDir == "" {
		o.StateDir = filepath.Join(t.TempDir(), "agent-state")
	}
	args := []string{"run", "--manager", tm.TunnelAddr(), "--state-dir", o.StateDir}
	if o.Token != "" {
		args = append(args, "--token", o.Token)
	}
	if o.AdvertiseIP != "" {
		args = append(args, "--advertise-ip", o.AdvertiseIP)
	}
	args = append(args, o.Extra...)
	a := &agentProc{t: t, stateDir: o.StateDir, stderr: &testenv.SyncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(agentBin, args...)
	a.cmd.Env = testenv.CleanEnv()
	a.cmd.Stderr = a.stderr
	a.cmd.Stdout = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	a.name = fmt.Sprintf("agent pid %d", a.cmd.Process.Pid)
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", a.name, strings.Join(args, " "), a.stderr.String())
		}
	})
	return a
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

func (a *agentProc) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to end on its own and returns its exit code.
func (a *agentProc) waitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v; stderr:\n%s", a.name, timeout, a.stderr.String())
	}
	return a.cmd.ProcessState.ExitCode()
}

// signal sends sig to the process.
func (a *agentProc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, a.name, err)
	}
}

// kill ends the process with SIGKILL, if it runs, and waits for it.
func (a *agentProc) kill() {
	if !a.exited() {
		_ = a.cmd.Process.Kill()
	}
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		a.t.Errorf("%s did not end within 30s of SIGKILL", a.name)
	}
}

// waitLog waits until the agent's stderr contains s.
func (a *agentProc) waitLog(t testing.TB, s string, timeout time.Duration) time.Duration {
	t.Helper()
	return testenv.Eventually(t, timeout, fmt.Sprintf("%s to log %q", a.name, s), func() bool {
		return strings.Contains(a.stderr.String(), s)
	})
}

// agentID reads the server id the agent saved at enrollment.
func (a *agentProc) agentID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.stateDir, "agent.id"))
	if err != nil {
		t.Fatalf("read %s's agent.id: %v", a.name, err)
	}
	return strings.TrimSpace(string(b))
}

// enrollOnline starts an agent with o and waits until the API shows its
// server online; it returns the process and the server id.
func enrollOnline(t testing.TB, tm *testenv.Manager, c *testenv.Client, o agentOpts) (*agentProc, string) {
	t.Helper()
	a := startAgent(t, tm, o)
	testenv.Eventually(t, 30*time.Second, a.name+" to connect", func() bool {
		if a.exited() {
			t.Fatalf("%s exited (%v) before connecting; stderr:\n%s", a.name, a.waitErr, a.stderr.String())
		}
		return strings.Contains(a.stderr.String(), "connected to manager")
	})
	id := a.agentID(t)
	c.WaitStatus(t, id, "online", 30*time.Second)
	return a, id
}

// expectRefused checks that the agent exited non-zero with want in its stderr.
func expectRefused(t testing.TB, a *agentProc, want string) {
	t.Helper()
	code := a.waitExit(t, 30*time.Second)
	if code == 0 {
		t.Errorf("%s exited 0, want a non-zero exit", a.name)
	}
	if !strings.Contains(a.stderr.String(), want) {
		t.Errorf("%s stderr does not say %q:\n%s", a.name, want, a.stderr.String())
	}
}

// restartAgent starts the agent again on a's state dir and address (it is
// enrolled already: no token), after a has ended, and waits until the API
// shows its server online again.
func restartAgent(t testing.TB, tm *testenv.Manager, c *testenv.Client, a *agentProc, advertiseIP string) *agentProc {
	t.Helper()
	if !a.exited() {
		t.Fatalf("restartAgent: %s still runs", a.name)
	}
	b, _ := enrollOnline(t, tm, c, agentOpts{StateDir: a.stateDir, AdvertiseIP: advertiseIP})
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
