package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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

const adminPassword = "integration-secret-1"

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds or timeout passes, failing the test
// with what it waited for. It returns how long the wait took.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The manager, in process.

// testManager is a real manager on 127.0.0.1 that can be stopped and started
// again on the same data dir and ports.
type testManager struct {
	t   testing.TB
	cfg manager.Config
	log *syncBuffer

	// Fixed after the first start.
	httpAddr, tunnelAddr, pin string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// startManager opens and runs a manager on a new data dir; opts may adjust
// the config before the first start. It is stopped in t.Cleanup.
func startManager(t testing.TB, opts ...func(*manager.Config)) *testManager {
	t.Helper()
	cfg := manager.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.TunnelAddr = "127.0.0.1:0"
	cfg.AdminPassword = adminPassword
	cfg.BcryptCost = bcrypt.MinCost
	cfg.ShutdownGrace = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	tm := &testManager{t: t, cfg: cfg, log: &syncBuffer{}}
	t.Cleanup(func() {
		tm.stop()
		if t.Failed() {
			t.Logf("manager log:\n%s", tm.log.String())
		}
	})
	tm.start()
	// From now on restarts reuse the bound ports.
	tm.cfg.HTTPAddr, tm.cfg.TunnelAddr = tm.httpAddr, tm.tunnelAddr
	return tm
}

func (tm *testManager) start() {
	tm.t.Helper()
	log := slog.New(slog.NewTextHandler(tm.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var (
		m   *manager.Manager
		err error
	)
	// On a restart the port may, rarely, be taken for a moment by another
	// test's outgoing connection; retry the listen for a while.
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err = manager.Open(context.Background(), tm.cfg, log, prometheus.NewRegistry())
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		tm.t.Fatalf("open manager: %v", err)
	}
	if tm.pin == "" {
		tm.httpAddr, tm.tunnelAddr, tm.pin = m.HTTPAddr(), m.TunnelAddr(), m.CAPin
	} else if m.CAPin != tm.pin {
		tm.t.Errorf("CA pin changed across restart: %s, was %s", m.CAPin, tm.pin)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tm.mu.Lock()
	tm.cancel, tm.done = cancel, done
	tm.mu.Unlock()
}

// stop shuts the manager down gracefully and waits for Run to return.
func (tm *testManager) stop() {
	tm.t.Helper()
	tm.mu.Lock()
	cancel, done := tm.cancel, tm.done
	tm.cancel, tm.done = nil, nil
	tm.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			tm.t.Errorf("manager Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		tm.t.Errorf("manager did not stop within 30s of its context being cancelled")
	}
}

// restart stops the manager and starts it again on the same data dir and ports.
func (tm *testManager) restart() {
	tm.t.Helper()
	tm.stop()
	tm.start()
}

// ---------------------------------------------------------------------------
// The console API.

type envelope struct {
	Code    int             `json:"code"`
	Msg     string          `json:"msg"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

// client returns an API client logged in as the admin.
func (tm *testManager) client(t testing.TB) *apiClient {
	t.Helper()
	c := &apiClient{base: "http://" + tm.httpAddr + "/admq-manager", hc: &http.Client{Timeout: 30 * time.Second}}
	env, status := c.do(t, http.MethodPost, "/login", map[string]string{"username": "admin", "password": adminPassword})
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("login: HTTP %d code %d %s", status, env.Code, env.Message)
	}
	var d struct {
		Token string `json:"token"`
	}
	mustDecode(t, env.Data, &d)
	if d.Token == "" {
		t.Fatal("login returned no token")
	}
	c.token = d.Token
	return c
}

// try makes one request; body, if not nil, is sent as JSON.
func (c *apiClient) try(method, path string, body any) (envelope, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return envelope{}, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return envelope{}, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return envelope{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return envelope{}, resp.StatusCode, err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return envelope{}, resp.StatusCode, fmt.Errorf("%s %s: HTTP %d, body is not an envelope: %v: %q", method, path, resp.StatusCode, err, raw)
	}
	return env, resp.StatusCode, nil
}

// do makes one request and fails the test if it cannot be made.
func (c *apiClient) do(t testing.TB, method, path string, body any) (envelope, int) {
	t.Helper()
	env, status, err := c.try(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return env, status
}

// ok makes a request that must succeed and decodes its data into out, if
// out is not nil.
func (c *apiClient) ok(t testing.TB, method, path string, body, out any) {
	t.Helper()
	env, status := c.do(t, method, path, body)
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("%s %s: HTTP %d code %d (%s) %s", method, path, status, env.Code, env.Msg, env.Message)
	}
	if out != nil {
		mustDecode(t, env.Data, out)
	}
}

func mustDecode(t testing.TB, raw json.RawMessage, out any) {
	t.Helper()
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

type token struct {
	ID         string `json:"id"`
	MaxUses    int    `json:"maxUses"`
	Uses       int    `json:"uses"`
	Status     string `json:"status"`
	Token      string `json:"token"` // only when created
	CACertHash string `json:"caCertHash"`
}

// createToken makes a join token; ttlSeconds 0 means the API default.
func (c *apiClient) createToken(t testing.TB, maxUses int, ttlSeconds int64) token {
	t.Helper()
	req := map[string]any{"maxUses": maxUses, "description": t.Name()}
	if ttlSeconds > 0 {
		req["ttlSeconds"] = ttlSeconds
	}
	var tok token
	c.ok(t, http.MethodPost, "/agent/token", req, &tok)
	if tok.ID == "" || !strings.HasPrefix(tok.Token, tok.ID+".") || !strings.Contains(tok.Token, "::sha256:") {
		t.Fatalf("created token %+v: want a join string <id>.<secret>::sha256:<hex>", tok)
	}
	return tok
}

// tokenByID finds a token in the token list.
func (c *apiClient) tokenByID(t testing.TB, id string) token {
	t.Helper()
	var page struct {
		List []token `json:"list"`
	}
	c.ok(t, http.MethodGet, "/agent/token?pageSize=500", nil, &page)
	for _, tok := range page.List {
		if tok.ID == id {
			return tok
		}
	}
	t.Fatalf("token %s is not in the token list", id)
	return token{}
}

type server struct {
	ID           string `json:"id"`
	ManagerIP    string `json:"managerIp"`
	AgentStatus  string `json:"agentStatus"`
	LastSeen     string `json:"lastSeen"`
	AgentVersion string `json:"agentVersion"`
	Hostname     string `json:"hostname"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	CPUs         int    `json:"cpus"`
	MemoryTotal  uint64 `json:"memoryTotal"`
}

// servers lists servers; query is "" or "?..." .
func (c *apiClient) servers(t testing.TB, query string) (total int, list []server) {
	t.Helper()
	var page struct {
		Total int      `json:"total"`
		List  []server `json:"list"`
	}
	if query == "" {
		query = "?pageSize=500"
	} else {
		query += "&pageSize=500"
	}
	c.ok(t, http.MethodGet, "/server"+query, nil, &page)
	return page.Total, page.List
}

// server returns one server by id; ok is false if there is none.
func (c *apiClient) server(t testing.TB, id string) (server, bool) {
	t.Helper()
	total, list := c.servers(t, "?id="+url.QueryEscape(id))
	if total == 0 || len(list) == 0 {
		return server{}, false
	}
	return list[0], true
}

// waitStatus waits until the server's agent has status and returns how long it took.
func (c *apiClient) waitStatus(t testing.TB, id, status string, timeout time.Duration) time.Duration {
	t.Helper()
	return eventually(t, timeout, fmt.Sprintf("server %s to be %s", id, status), func() bool {
		s, ok := c.server(t, id)
		return ok && s.AgentStatus == status
	})
}

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
	stderr   *syncBuffer
	done     chan struct{}
	waitErr  error
}

// startAgent starts an admq-agent process against tm's tunnel; it is killed
// in t.Cleanup, and its stderr is logged if the test failed.
func startAgent(t testing.TB, tm *testManager, o agentOpts) *agentProc {
	t.Helper()
	if o.StateDir == "" {
		o.StateDir = filepath.Join(t.TempDir(), "agent-state")
	}
	args := []string{"run", "--manager", tm.tunnelAddr, "--state-dir", o.StateDir}
	if o.Token != "" {
		args = append(args, "--token", o.Token)
	}
	if o.AdvertiseIP != "" {
		args = append(args, "--advertise-ip", o.AdvertiseIP)
	}
	args = append(args, o.Extra...)
	a := &agentProc{t: t, stateDir: o.StateDir, stderr: &syncBuffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(agentBin, args...)
	a.cmd.Env = cleanEnv()
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

// cleanEnv is the test's environment without ADMQ_* settings, which the
// agent would read as flag defaults.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADMQ_") {
			env = append(env, kv)
		}
	}
	return env
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
	return eventually(t, timeout, fmt.Sprintf("%s to log %q", a.name, s), func() bool {
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
func enrollOnline(t testing.TB, tm *testManager, c *apiClient, o agentOpts) (*agentProc, string) {
	t.Helper()
	a := startAgent(t, tm, o)
	eventually(t, 30*time.Second, a.name+" to connect", func() bool {
		if a.exited() {
			t.Fatalf("%s exited (%v) before connecting; stderr:\n%s", a.name, a.waitErr, a.stderr.String())
		}
		return strings.Contains(a.stderr.String(), "connected to manager")
	})
	id := a.agentID(t)
	c.waitStatus(t, id, "online", 30*time.Second)
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
