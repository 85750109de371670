package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// AgentOptions adjust StartAgent.
type AgentOptions struct {
	Token       string // join string; empty: none
	AdvertiseIP string
	StateDir    string // empty: a new temp dir
	Extra       []string
}

// Agent is an admq-agent process a test runs, as an operator would on a
// server.
type Agent struct {
	t testing.TB
	// Name names the process in messages ("agent pid 1234").
	Name string
	// StateDir is the agent's --state-dir.
	StateDir string
	cmd      *exec.Cmd
	log      *SyncBuffer
	done     chan struct{}
	waitErr  error
}

// StartAgent starts the admq-agent binary bin against the manager's
// tunnel at tunnelAddr; it is killed in t.Cleanup, and its output is
// logged there if the test failed.
func StartAgent(t testing.TB, bin, tunnelAddr string, o AgentOptions) *Agent {
	t.Helper()
	if o.StateDir == "" {
		o.StateDir = filepath.Join(t.TempDir(), "agent-state")
	}
	args := []string{"run", "--manager", tunnelAddr, "--state-dir", o.StateDir}
	if o.Token != "" {
		args = append(args, "--token", o.Token)
	}
	if o.AdvertiseIP != "" {
		args = append(args, "--advertise-ip", o.AdvertiseIP)
	}
	args = append(args, o.Extra...)
	a := &Agent{t: t, StateDir: o.StateDir, log: &SyncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Env = CleanEnv()
	a.cmd.Stderr = a.log
	a.cmd.Stdout = a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	a.Name = fmt.Sprintf("agent pid %d", a.cmd.Process.Pid)
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", a.Name, strings.Join(args, " "), a.log.String())
		}
	})
	return a
}

// PID is the process's id.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Log is everything the agent wrote so far.
func (a *Agent) Log() string { return a.log.String() }

// Exited reports whether the process has ended.
func (a *Agent) Exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// WaitErr is how the process ended; call it only once Exited says so.
func (a *Agent) WaitErr() error { return a.waitErr }

// WaitExit waits for the process to end on its own and returns its exit code.
func (a *Agent) WaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %v; stderr:\n%s", a.Name, timeout, a.log.String())
	}
	return a.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process.
func (a *Agent) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, a.Name, err)
	}
}

// Kill ends the process with SIGKILL, if it runs, and waits for it.
func (a *Agent) Kill() {
	if !a.Exited() {
		_ = a.cmd.Process.Kill()
	}
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		a.t.Errorf("%s did not end within 30s of SIGKILL", a.Name)
	}
}

// WaitLog waits until the agent's output contains s.
func (a *Agent) WaitLog(t testing.TB, s string, timeout time.Duration) time.Duration {
	t.Helper()
	return Eventually(t, timeout, fmt.Sprintf("%s to log %q", a.Name, s), func() bool {
		return strings.Contains(a.log.String(), s)
	})
}

// ID reads the server id the agent saved at enrollment.
func (a *Agent) ID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.StateDir, "agent.id"))
	if err != nil {
		t.Fatalf("read %s's agent.id: %v", a.Name, err)
	}
	return strings.TrimSpace(string(b))
}
