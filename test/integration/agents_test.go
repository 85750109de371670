package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// Envelope code of a server id that does not exist (manager/api/errors.go).
const codeServerNotExist = 1262

func TestAgentsEnrollAndComeOnline(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 3, 0)

	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	agents := make([]*testenv.Agent, len(ips))
	for i, ip := range ips {
		agents[i] = startAgent(t, tm, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: ip})
	}
	idByIP := map[string]string{}
	for i, a := range agents {
		a.WaitLog(t, "connected to manager", 30*time.Second)
		idByIP[ips[i]] = a.ID(t)
	}

	var list []testenv.Server
	took := testenv.Eventually(t, 30*time.Second, "3 servers online with their facts", func() bool {
		var total int
		total, list = c.Servers(t, "")
		if total != 3 || len(list) != 3 {
			return false
		}
		for _, s := range list {
			if s.AgentStatus != "online" || s.Hostname == "" || s.MemoryTotal == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("3 agents online with facts %v after their sessions came up", took)
	for _, s := range list {
		switch {
		case idByIP[s.ManagerIP] != s.ID:
			t.Errorf("server %s has managerIp %q; the agents advertised %v with ids %v", s.ID, s.ManagerIP, ips, idByIP)
		case s.OS != runtime.GOOS || s.Arch != runtime.GOARCH || s.CPUs != runtime.NumCPU():
			t.Errorf("server %s facts os=%q arch=%q cpus=%d, want %s/%s with %d cpus", s.ID, s.OS, s.Arch, s.CPUs, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
		case s.LastSeen == "" || s.AgentVersion == "":
			t.Errorf("server %s: lastSeen %q, agentVersion %q: want both set", s.ID, s.LastSeen, s.AgentVersion)
		}
	}
	testenv.Eventually(t, 30*time.Second, "GET /server?agentStatus=online to list all 3", func() bool {
		total, list := c.Servers(t, "?agentStatus=online")
		return total == 3 && len(list) == 3
	})

	if got := c.TokenByID(t, tok.ID); got.Uses != 3 || got.Status != "used" {
		t.Errorf("token after 3 enrollments: uses=%d status=%q, want uses=3 status=\"used\"", got.Uses, got.Status)
	}

	// A fourth agent finds the token used up.
	fourth := startAgent(t, tm, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: "127.0.0.14"})
	expectRefused(t, fourth, "join token refused")
	if total, _ := c.Servers(t, ""); total != 3 {
		t.Errorf("after the refused fourth agent the server list has %d servers, want 3", total)
	}
	if got := c.TokenByID(t, tok.ID); got.Uses != 3 {
		t.Errorf("token uses after a refused enrollment = %d, want 3", got.Uses)
	}

	for ip, id := range idByIP {
		var ping struct {
			ID           string  `json:"id"`
			RttMs        float64 `json:"rttMs"`
			AgentVersion string  `json:"agentVersion"`
		}
		c.OK(t, http.MethodGet, "/server/ping?id="+id, nil, &ping)
		if ping.ID != id || ping.RttMs <= 0 || ping.AgentVersion == "" {
			t.Errorf("ping of %s (%s) = %+v: want its id, rttMs > 0 and the agent version", id, ip, ping)
		}
	}
}

func TestAgentOpensNoListeningSocket(t *testing.T) {
	integrationTest(t)
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc: Linux only")
	}
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	a, _ := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token})
	_, portStr, _ := net.SplitHostPort(tm.TunnelAddr())
	tunnelPort, _ := strconv.Atoi(portStr)

	// The enrollment connection may take a moment to be closed; the state we
	// want is one connection, to the tunnel, and nothing else.
	var socks []inetSocket
	ok := false
	deadline := time.Now().Add(30 * time.Second)
	for !ok && time.Now().Before(deadline) {
		var err error
		if socks, err = processSockets(a.PID()); err != nil {
			t.Fatalf("sockets of %s: %v", a.Name, err)
		}
		ok = len(socks) == 1 && strings.HasPrefix(socks[0].proto, "tcp") &&
			socks[0].state == tcpEstablished && socks[0].remotePort == tunnelPort
		if !ok {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, s := range socks {
		switch {
		case strings.HasPrefix(s.proto, "udp"):
			t.Errorf("agent holds a UDP socket: %v", s)
		case s.state == tcpListen:
			t.Errorf("agent listens on a TCP socket: %v", s)
		}
	}
	if !ok {
		t.Errorf("agent sockets %v: want exactly one established TCP connection to the tunnel port %d", socks, tunnelPort)
	}
}

func TestWrongCAPinRefused(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 1, 0)

	sum := sha256.Sum256([]byte("some other manager's CA"))
	otherPin := "sha256:" + hex.EncodeToString(sum[:])
	if otherPin == tok.CACertHash {
		t.Fatal("the made-up pin equals the manager's")
	}
	secret, _, _ := strings.Cut(tok.Token, "::")
	a := startAgent(t, tm, testenv.AgentOptions{Token: secret + "::" + otherPin})
	expectRefused(t, a, "pin mismatch")

	if total, _ := c.Servers(t, ""); total != 0 {
		t.Errorf("server list has %d servers after a pin mismatch, want 0", total)
	}
	if got := c.TokenByID(t, tok.ID); got.Uses != 0 || got.Status != "active" {
		t.Errorf("token after a pin mismatch: uses=%d status=%q, want 0 and active", got.Uses, got.Status)
	}
	if _, err := os.Stat(filepath.Join(a.StateDir, "agent.id")); err == nil {
		t.Error("the refused agent saved an identity")
	}
}

func TestBadTokensRefused(t *testing.T) {
	integrationTest(t)
	// Each case gets its own manager; setup returns the join string the
	// agent is given and the id of a token whose uses must not change.
	cases := []struct {
		name  string
		setup func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (join, tokenID string)
		want  string
	}{
		{"unknown token id", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 1, 0)
			other := "zzzzzz"
			if tok.ID == other {
				other = "yyyyyy"
			}
			return other + strings.TrimPrefix(tok.Token, tok.ID), tok.ID
		}, "join token refused"},
		{"wrong secret", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 1, 0)
			_, rest, _ := strings.Cut(tok.Token, ".")
			secret, pin, _ := strings.Cut(rest, "::")
			wrong := strings.Repeat("a", len(secret))
			if wrong == secret {
				wrong = strings.Repeat("b", len(secret))
			}
			return tok.ID + "." + wrong + "::" + pin, tok.ID
		}, "join token refused"},
		{"expired token", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 1, 1)
			took := testenv.Eventually(t, 30*time.Second, "the token to be listed as expired", func() bool {
				return c.TokenByID(t, tok.ID).Status == "expired"
			})
			t.Logf("token listed as expired after %v", took)
			return tok.Token, tok.ID
		}, "join token refused"},
		{"revoked token", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 0, 0)
			c.OK(t, http.MethodDelete, "/agent/token", map[string]string{"id": tok.ID}, nil)
			if got := c.TokenByID(t, tok.ID); got.Status != "revoked" {
				t.Fatalf("token status after DELETE /agent/token = %q, want revoked", got.Status)
			}
			return tok.Token, tok.ID
		}, "join token refused"},
		{"reused single-use token", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 1, 0)
			enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token})
			return tok.Token, tok.ID
		}, "join token refused"},
		{"malformed: garbage", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			return "garbage", ""
		}, "has no join token with a CA pin"},
		{"malformed: garbage with the right pin", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			return "garbage::" + tm.CAPin(), ""
		}, "join token refused"},
		{"malformed: bad pin", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			tok := c.CreateToken(t, 1, 0)
			secret, _, _ := strings.Cut(tok.Token, "::")
			return secret + "::sha256:not-hex", tok.ID
		}, "ca pin"},
		{"no token and not enrolled", func(t *testing.T, tm *testenv.Manager, c *testenv.Client) (string, string) {
			return "", ""
		}, "not enrolled"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tm := testenv.StartManager(t)
			c := tm.Client(t)
			join, tokenID := tc.setup(t, tm, c)
			before, _ := c.Servers(t, "")
			uses := -1
			if tokenID != "" {
				uses = c.TokenByID(t, tokenID).Uses
			}

			a := startAgent(t, tm, testenv.AgentOptions{Token: join})
			expectRefused(t, a, tc.want)

			if after, _ := c.Servers(t, ""); after != before {
				t.Errorf("server total went from %d to %d after a refused agent", before, after)
			}
			if tokenID != "" {
				if got := c.TokenByID(t, tokenID).Uses; got != uses {
					t.Errorf("token uses went from %d to %d after a refused agent", uses, got)
				}
			}
			if _, err := os.Stat(filepath.Join(a.StateDir, "agent.id")); err == nil {
				t.Error("the refused agent saved an identity")
			}
		})
	}
}

func TestDeletedServerIsRefused(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token})

	c.OK(t, http.MethodDelete, "/server", map[string]string{"id": id}, nil)

	gone := func() bool {
		total, _ := c.Servers(t, "")
		_, found := c.Server(t, id)
		var h struct {
			AgentsConnected int `json:"agentsConnected"`
		}
		c.OK(t, http.MethodGet, "/health", nil, &h)
		return total == 0 && !found && h.AgentsConnected == 0
	}
	testenv.Eventually(t, 30*time.Second, "the deleted server to leave the list and its session to close", gone)
	took := a.WaitLog(t, "refused this agent", 30*time.Second)
	t.Logf("agent logged that it was refused %v after the server left the list", took)

	// It keeps retrying; the server must not come back.
	time.Sleep(5 * time.Second)
	if !gone() {
		t.Errorf("the deleted server came back or its agent is connected again")
	}
	env, status := c.Do(t, http.MethodGet, "/server/ping?id="+id, nil)
	if env.Code != codeServerNotExist || status != http.StatusNotFound {
		t.Errorf("ping of the deleted server: HTTP %d code %d, want 404 and %d", status, env.Code, codeServerNotExist)
	}
	if n := strings.Count(a.Log(), "connected to manager"); n != 1 {
		t.Errorf("agent logged %d connections, want only the one before the deletion", n)
	}
	if a.Exited() {
		t.Logf("note: agent exited after its server was deleted (%v)", a.WaitErr())
	}
}

func TestOfflineAndBackOnline(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token})

	a.Signal(t, syscall.SIGKILL)
	a.Kill() // reap
	took := c.WaitStatus(t, id, "offline", 60*time.Second)
	t.Logf("server offline %v after kill -9 of its agent", took)
	testenv.Eventually(t, 30*time.Second, "GET /server?agentStatus=offline to list it", func() bool {
		_, list := c.Servers(t, "?agentStatus=offline")
		return len(list) == 1 && list[0].ID == id
	})
	// lastSeen is written with the next presence flush.
	testenv.Eventually(t, 30*time.Second, "the offline server to show a lastSeen time", func() bool {
		s, _ := c.Server(t, id)
		return s.LastSeen != ""
	})

	b := startAgent(t, tm, testenv.AgentOptions{StateDir: a.StateDir})
	took = c.WaitStatus(t, id, "online", 60*time.Second)
	t.Logf("server online again %v after restarting its agent without a token", took)
	if got := b.ID(t); got != id {
		t.Errorf("restarted agent has id %s, want %s", got, id)
	}
	if total, _ := c.Servers(t, ""); total != 1 {
		t.Errorf("server total = %d after the agent came back, want 1", total)
	}
}

func TestSilentLossDetected(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token})

	// A stopped process keeps its socket open (the kernel still acks) but
	// sends no heartbeat: a silent loss.
	a.Signal(t, syscall.SIGSTOP)
	took := c.WaitStatus(t, id, "offline", 60*time.Second)
	t.Logf("server offline %v after SIGSTOP of its agent", took)

	a.Signal(t, syscall.SIGCONT)
	took = c.WaitStatus(t, id, "online", 60*time.Second)
	t.Logf("server online again %v after SIGCONT", took)
	if a.Exited() {
		t.Errorf("agent exited after SIGCONT: %v", a.WaitErr())
	}
}

func TestManagerRestart(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 3, 0)
	var ids []string
	var agents []*testenv.Agent
	// One server per address: each agent advertises its own.
	for _, ip := range []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"} {
		a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: ip})
		ids = append(ids, id)
		agents = append(agents, a)
	}
	slices.Sort(ids)

	tm.Stop()
	for _, a := range agents {
		a.WaitLog(t, "manager connection lost", 30*time.Second)
		if a.Exited() {
			t.Fatalf("%s exited when the manager stopped: %v", a.Name, a.WaitErr())
		}
	}
	start := time.Now()
	tm.Restart()

	// The login from before the restart still holds: the JWT secret is kept.
	if env, status := c.Do(t, http.MethodGet, "/user/info", nil); env.Code != 0 {
		t.Errorf("login from before the restart: HTTP %d code %d %s", status, env.Code, env.Message)
		c = tm.Client(t)
	}
	testenv.Eventually(t, 90*time.Second, "all 3 servers online again", func() bool {
		total, list := c.Servers(t, "?agentStatus=online")
		return total == 3 && len(list) == 3
	})
	t.Logf("all 3 agents online %v after the manager restarted", time.Since(start))

	total, list := c.Servers(t, "")
	var got []string
	for _, s := range list {
		got = append(got, s.ID)
		if s.AgentStatus != "online" {
			t.Errorf("server %s is %s", s.ID, s.AgentStatus)
		}
	}
	slices.Sort(got)
	if total != 3 || !slices.Equal(got, ids) {
		t.Errorf("servers after restart: total %d ids %v, want 3 with ids %v", total, got, ids)
	}
	if got := c.TokenByID(t, tok.ID); got.Uses != 3 {
		t.Errorf("token uses after restart = %d, want 3 (reconnecting is not enrolling)", got.Uses)
	}
}

func TestStatePersistsEnrollmentOnce(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 1, 0)
	a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token})

	for _, f := range []struct {
		name string
		mode os.FileMode // 0: any
	}{{"agent.key", 0o600}, {"agent.crt", 0}, {"ca.crt", 0}, {"agent.id", 0}} {
		fi, err := os.Stat(filepath.Join(a.StateDir, f.name))
		switch {
		case err != nil:
			t.Errorf("state dir: %v", err)
		case fi.Size() == 0:
			t.Errorf("state dir: %s is empty", f.name)
		case f.mode != 0 && fi.Mode().Perm() != f.mode:
			t.Errorf("state dir: %s has mode %v, want %v", f.name, fi.Mode().Perm(), f.mode)
		}
	}
	if got := a.ID(t); got != id {
		t.Errorf("agent.id = %s, the server list says %s", got, id)
	}

	// A second agent on the same state dir is refused, naming the first.
	twin := startAgent(t, tm, testenv.AgentOptions{StateDir: a.StateDir})
	if code := twin.WaitExit(t, 30*time.Second); code == 0 || !strings.Contains(twin.Log(), "in use by another admq-agent (pid") {
		t.Errorf("second agent on a state dir in use: exit %d, stderr:\n%s", code, twin.Log())
	}
	if s, _ := c.Server(t, id); s.AgentStatus != "online" {
		t.Errorf("first agent's server is %s after the second was refused, want online", s.AgentStatus)
	}

	// SIGTERM is a clean stop.
	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, 30*time.Second); code != 0 {
		t.Errorf("agent exit code after SIGTERM = %d, want 0", code)
	}
	c.WaitStatus(t, id, "offline", 60*time.Second)

	// Without the token: the saved identity is enough.
	b := startAgent(t, tm, testenv.AgentOptions{StateDir: a.StateDir})
	c.WaitStatus(t, id, "online", 60*time.Second)
	b.Signal(t, syscall.SIGTERM)
	b.WaitExit(t, 30*time.Second)
	c.WaitStatus(t, id, "offline", 60*time.Second)

	// With the now used-up token again: it must not enroll a second time.
	d := startAgent(t, tm, testenv.AgentOptions{StateDir: a.StateDir, Token: tok.Token})
	c.WaitStatus(t, id, "online", 60*time.Second)
	if strings.Contains(d.Log(), "enrolled with manager") {
		t.Errorf("an enrolled agent enrolled again")
	}
	if total, _ := c.Servers(t, ""); total != 1 {
		t.Errorf("server total = %d, want 1", total)
	}
	if got := c.TokenByID(t, tok.ID); got.Uses != 1 || got.Status != "used" {
		t.Errorf("token: uses=%d status=%q, want 1 and used", got.Uses, got.Status)
	}
}

// TestStatusFilterAgreesWithListedStatus checks that GET /server?agentStatus=
// filters by the status the list shows. The list overlays the live status on
// what was last written; a long presence flush interval stands for the time
// between two flushes, so the check does not depend on timing.
func TestStatusFilterAgreesWithListedStatus(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t, func(cfg *manager.Config) { cfg.PresenceFlush = 10 * time.Minute })
	c := tm.Client(t)
	a, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token})

	// check: with the one server listed as live, each filter lists it
	// exactly when it asks for live.
	check := func(live string) {
		t.Helper()
		for _, st := range []string{"online", "offline", "pending"} {
			total, list := c.Servers(t, "?agentStatus="+st)
			for _, s := range list {
				if s.AgentStatus != st {
					t.Errorf("GET /server?agentStatus=%s lists server %s with agentStatus %q", st, s.ID, s.AgentStatus)
				}
			}
			want := 0
			if st == live {
				want = 1
			}
			if total != want {
				t.Errorf("GET /server?agentStatus=%s: total %d, want %d (GET /server?id=%s says %s)", st, total, want, id, live)
			}
		}
	}
	if s, _ := c.Server(t, id); s.AgentStatus != "online" {
		t.Fatalf("server is %s, want online", s.AgentStatus)
	}
	check("online")

	a.Signal(t, syscall.SIGKILL)
	a.Kill()
	c.WaitStatus(t, id, "offline", 60*time.Second)
	check("offline")
}
