package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/admq/admq-manager/manager"
)

const adminPassword = "e2e-admin-secret-1"

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("gave up after %v waiting for: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testManager is a real manager running in the test process: the console
// on 127.0.0.1, the tunnel on every address so namespace hosts reach it.
type testManager struct {
	t   testing.TB
	cfg manager.Config
	log *syncBuffer

	httpAddr, tunnelAddr string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

func startManager(t testing.TB, opts ...func(*manager.Config)) *testManager {
	t.Helper()
	cfg := manager.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.TunnelAddr = "0.0.0.0:0"
	cfg.AdminPassword = adminPassword
	cfg.BcryptCost = bcrypt.MinCost
	cfg.ShutdownGrace = 5 * time.Second
	cfg.AgentDir = agentDir
	// All hosts share one /etc: one service name per host address.
	cfg.AgentServiceName = prefix + "-agent-{managerIp}"
	cfg.SSHDialTimeout = 2 * time.Second
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
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		m, err = manager.Open(context.Background(), tm.cfg, log, prometheus.NewRegistry())
		if err == nil || !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		tm.t.Fatalf("open manager: %v", err)
	}
	tm.httpAddr, tm.tunnelAddr = m.HTTPAddr(), m.TunnelAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	tm.mu.Lock()
	tm.cancel, tm.done = cancel, done
	tm.mu.Unlock()
}

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
		tm.t.Errorf("manager did not stop within 30s")
	}
}

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
	base, token string
	hc          *http.Client
}

func (tm *testManager) client(t testing.TB) *apiClient {
	t.Helper()
	// A bootstrap answers once the agent is online: allow for it.
	c := &apiClient{base: "http://" + tm.httpAddr + "/admq-manager", hc: &http.Client{Timeout: 3 * time.Minute}}
	var d struct {
		Token string `json:"token"`
	}
	c.ok(t, http.MethodPost, "/login", map[string]string{"username": "admin", "password": adminPassword}, &d)
	c.token = d.Token
	return c
}

func (c *apiClient) do(t testing.TB, method, path string, body any) (envelope, int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: HTTP %d, not an envelope: %q", method, path, resp.StatusCode, raw)
	}
	return env, resp.StatusCode
}

func (c *apiClient) ok(t testing.TB, method, path string, body, out any) {
	t.Helper()
	env, status := c.do(t, method, path, body)
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("%s %s: HTTP %d code %d (%s) %s %s", method, path, status, env.Code, env.Msg, env.Message, env.Data)
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

type server struct {
	ID          string `json:"id"`
	ManagerIP   string `json:"managerIp"`
	SSHPort     int    `json:"sshPort"`
	Account     string `json:"account"`
	Password    string `json:"password"`
	PrivateKey  string `json:"privateKey"`
	ProgramDir  string `json:"programDir"`
	DataDir     string `json:"dataDir"`
	AgentStatus string `json:"agentStatus"`
	Hostname    string `json:"hostname"`
	Arch        string `json:"arch"`
}

func (c *apiClient) servers(t testing.TB) []server {
	t.Helper()
	var page struct {
		List []server `json:"list"`
	}
	c.ok(t, http.MethodGet, "/server?pageSize=500", nil, &page)
	return page.List
}

func (c *apiClient) serverByIP(t testing.TB, ip string) (server, bool) {
	t.Helper()
	for _, s := range c.servers(t) {
		if s.ManagerIP == ip {
			return s, true
		}
	}
	return server{}, false
}

func (c *apiClient) server(t testing.TB, id string) server {
	t.Helper()
	var page struct {
		List []server `json:"list"`
	}
	c.ok(t, http.MethodGet, "/server?id="+url.QueryEscape(id), nil, &page)
	if len(page.List) != 1 {
		t.Fatalf("server %s not found", id)
	}
	return page.List[0]
}

type token struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	ServerID    string `json:"serverId"`
	Status      string `json:"status"`
}

func (c *apiClient) tokens(t testing.TB) []token {
	t.Helper()
	var page struct {
		List []token `json:"list"`
	}
	c.ok(t, http.MethodGet, "/agent/token?pageSize=500", nil, &page)
	return page.List
}

func (c *apiClient) auditDetails(t testing.TB) string {
	t.Helper()
	var page struct {
		List []struct {
			Path   string `json:"path"`
			Detail string `json:"detail"`
		} `json:"list"`
	}
	c.ok(t, http.MethodGet, "/audit?pageSize=500", nil, &page)
	var b strings.Builder
	for _, e := range page.List {
		fmt.Fprintf(&b, "%s %s\n", e.Path, e.Detail)
	}
	return b.String()
}
