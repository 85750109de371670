package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the command package pkg (such as "./cmd/admq-manager")
// of the module the test runs in, without cgo, to the file out; env adds
// to the build's environment (GOOS=linux, say).
func Build(out, pkg string, env ...string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return fmt.Errorf("not inside a Go module (go env GOMOD = %q)", mod)
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// ManagerProcess is the admq-manager binary run as a child process on a
// data dir of its own, so that a test can kill it with SIGKILL, as a
// crash or the OOM killer would, and start it again on the same data dir
// and ports.
type ManagerProcess struct {
	t   testing.TB
	bin string
	// DataDir is the manager's --data-dir.
	DataDir  string
	httpAddr string
	tunnel   string
	extra    []string
	log      *SyncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// ManagerProcessOptions adjust StartManagerProcess.
type ManagerProcessOptions struct {
	// DataDir is the data dir; empty: a new one under t.TempDir().
	DataDir string
	// TunnelHost is the address the tunnel listens on (default 127.0.0.1;
	// 0.0.0.0 for agents on namespace hosts).
	TunnelHost string
	// Args are more flags, such as --metrics-interval 1s.
	Args []string
}

// StartManagerProcess starts bin with the console on a free port of
// 127.0.0.1, the tunnel on a free port of o.TunnelHost, the admin password
// AdminPassword and JSON logs, and waits until it answers /health. It is
// killed in cleanup; its log is printed there if the test failed.
func StartManagerProcess(t testing.TB, bin string, o ManagerProcessOptions) *ManagerProcess {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if o.TunnelHost == "" {
		o.TunnelHost = "127.0.0.1"
	}
	m := &ManagerProcess{t: t, bin: bin, DataDir: o.DataDir, extra: o.Args, log: &SyncBuffer{}}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			t.Logf("admq-manager log:\n%s", m.log.String())
		}
	})
	for attempt := 0; ; attempt++ {
		m.httpAddr, m.tunnel = freeAddr(t, "127.0.0.1"), freeAddr(t, o.TunnelHost)
		err := m.start()
		if err == nil {
			return m
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("start admq-manager: %v", err)
		}
	}
}

// freeAddr returns host:port for a port of host that was free a moment ago.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start starts the manager again after Kill or Stop, on the same data dir
// and ports; the test fails if it does not come up.
func (m *ManagerProcess) Start() {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := m.start()
		if err == nil {
			return
		}
		// The port may, rarely, be held for a moment by another test's
		// outgoing connection.
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			m.t.Fatalf("start admq-manager again: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (m *ManagerProcess) start() error {
	cmd := exec.Command(m.bin, append([]string{
		"--data-dir", m.DataDir, "--http-addr", m.httpAddr, "--tunnel-addr", m.tunnel,
		"--admin-password", AdminPassword, "--log-format", "json",
	}, m.extra...)...)
	cmd.Env = CleanEnv()
	before := len(m.log.String())
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.err = cmd, done, nil
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get("http://" + m.httpAddr + "/admq-manager/health")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("admq-manager exited (%v): %s", m.exitErr(), m.log.String()[before:])
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Kill()
			return fmt.Errorf("admq-manager did not answer /health within 60s: %s", m.log.String()[before:])
		}
	}
}

func (m *ManagerProcess) exitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Kill ends the manager with SIGKILL, if it runs, and waits for it.
func (m *ManagerProcess) Kill() { m.signal(syscall.SIGKILL) }

// Stop ends the manager with SIGTERM (a graceful shutdown) and waits.
func (m *ManagerProcess) Stop() { m.signal(syscall.SIGTERM) }

func (m *ManagerProcess) signal(sig syscall.Signal) {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		m.t.Errorf("admq-manager did not end within 60s of %v", sig)
	}
	m.log.WriteString(fmt.Sprintf("---- %v by the test ----\n", sig))
}

// Running reports whether the process runs.
func (m *ManagerProcess) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// PID is the running process's id, or 0.
func (m *ManagerProcess) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Client is a console client logged in as the admin.
func (m *ManagerProcess) Client(t testing.TB, opts ...ClientOption) *Client {
	t.Helper()
	return NewClient(t, m.httpAddr, AdminPassword, opts...)
}

// HTTPAddr is the console's host:port.
func (m *ManagerProcess) HTTPAddr() string { return m.httpAddr }

// TunnelAddr is the tunnel's host:port as given to --tunnel-addr.
func (m *ManagerProcess) TunnelAddr() string { return m.tunnel }

// DBPath is the manager's SQLite file.
func (m *ManagerProcess) DBPath() string { return filepath.Join(m.DataDir, "admq.db") }

// Log is everything the manager wrote, across restarts.
func (m *ManagerProcess) Log() string { return m.log.String() }

// Metric returns the value of an unlabelled sample of the manager's
// /metrics, such as go_goroutines.
func (m *ManagerProcess) Metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.httpAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				return 0, fmt.Errorf("metric %s: %q: %w", name, v, err)
			}
			return f, nil
		}
	}
	return 0, errors.New("metric " + name + " not served")
}
