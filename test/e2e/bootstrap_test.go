package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// target is where a bootstrap installs on a host.
type target struct {
	h                   *host
	programDir, dataDir string
}

func newTarget(t *testing.T, h *host) target {
	dir := t.TempDir()
	return target{h: h, programDir: filepath.Join(dir, "opt", "admq"), dataDir: filepath.Join(dir, "var", "lib", "admq")}
}

func (tg target) binary() string   { return filepath.Join(tg.programDir, "admq-agent", "admq-agent") }
func (tg target) stateDir() string { return filepath.Join(tg.dataDir, "admq-agent") }
func (tg target) service() string {
	return prefix + "-agent-" + strings.ReplaceAll(tg.h.IP, ".", "-")
}

// request is a seed-style POST /server body.
func (tg target) request(account, password string) map[string]any {
	return map[string]any{
		"room": "默认可用区", "managerIp": tg.h.IP, "sshPort": 22, "account": account, "password": password,
		"programDir": tg.programDir, "dataDir": tg.dataDir, "dataIp": tg.h.IP, "cpuInfo": "e2e host", "cpuType": 1,
	}
}

// cleanupAgent makes sure the agent a bootstrap may install on tg is gone
// when the test ends.
func cleanupAgent(t *testing.T, tg target) {
	t.Cleanup(func() { removeService(t, tg.h, tg.service(), tg.binary(), tg.stateDir()) })
}

// expectError checks an API failure's code and that its message or data
// says want.
func expectError(t *testing.T, env testenv.Envelope, status, wantStatus, wantCode int, want string) {
	t.Helper()
	if env.Code != wantCode || status != wantStatus {
		t.Fatalf("got HTTP %d code %d (%s) %q data %s; want HTTP %d code %d", status, env.Code, env.Msg, env.Message, env.Data, wantStatus, wantCode)
	}
	if want != "" && !strings.Contains(env.Message+string(env.Data), want) {
		t.Fatalf("error %q data %s does not say %q", env.Message, env.Data, want)
	}
	t.Logf("code %d %s: %s data %s", env.Code, env.Msg, env.Message, env.Data)
}

// expectNothingLeft checks that a failed bootstrap left no server row, no
// usable token, no files and no service on the host.
func expectNothingLeft(t *testing.T, c *testenv.Client, tg target) {
	t.Helper()
	if s, ok := c.ServerByIP(t, tg.h.IP); ok {
		t.Errorf("server row left behind: %+v", s)
	}
	for _, tok := range c.Tokens(t) {
		if strings.HasPrefix(tok.Description, "SSH bootstrap") && tok.Status == "active" {
			t.Errorf("bootstrap token left usable: %+v", tok)
		}
	}
	for _, p := range []string{filepath.Join(tg.programDir, "admq-agent"), tg.stateDir()} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left on the host", p)
		}
	}
	if serviceInstalled(tg.service()) {
		t.Errorf("service %s left installed", tg.service())
	}
}

// noSecretIn fails if secret appears in any file of dir or in text.
func noSecretIn(t *testing.T, secret, dir string, texts ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the secret in plain text", p)
			}
		}
		return nil
	})
	for i, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("text %d holds the secret in plain text", i)
		}
	}
}

// TestSSHBootstrap adds a server the seed's way, with an account that may
// sudo without a password: the manager installs the agent over SSH, the
// agent comes online, port 22 is then closed and the server stays
// controllable through the tunnel alone.
func TestSSHBootstrap(t *testing.T) {
	needHosts(t)
	t.Parallel()
	tm := startManager(t)
	c := tm.Client(t, bootstrapWait)
	h := newHost(t)
	startSSHD(t, h)
	const password = "Boot-Str4p-pw!"
	user := newUser(t, password, sudoNoPassword)
	tg := newTarget(t, h)
	cleanupAgent(t, tg)

	start := time.Now()
	var srv testenv.Server
	c.OK(t, http.MethodPost, "/server", tg.request(user, password), &srv)
	took := time.Since(start)
	t.Logf("bootstrap of one server over SSH (connect, detect, upload %s, install, enroll, online) took %v", agentSize(t), took.Round(time.Millisecond))

	if srv.AgentStatus != "online" || srv.ManagerIP != h.IP || srv.Account != user || srv.ProgramDir != tg.programDir || srv.DataDir != tg.dataDir {
		t.Fatalf("bootstrapped server %+v", srv)
	}
	if srv.Password != "" || srv.PrivateKey != "" {
		t.Fatalf("password %q / key %q shown; want them forgotten", srv.Password, srv.PrivateKey)
	}

	// On the host: the binary, a private state dir, a service.
	if fi, err := os.Stat(tg.binary()); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("agent binary: %v %v", fi, err)
	}
	if fi, err := os.Stat(tg.stateDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi, err)
	}
	if !serviceInstalled(tg.service()) {
		t.Fatalf("service %s is not installed", tg.service())
	}

	// The secret is nowhere: not in the data dir, the audit log or the log.
	if fi, err := os.Stat(filepath.Join(tm.Config().DataDir, "secret.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v %v", fi, err)
	}
	noSecretIn(t, password, tm.Config().DataDir, c.AuditDetails(t), tm.Log())

	// The same address again is refused before any SSH.
	env, status := c.Do(t, http.MethodPost, "/server", tg.request(user, password))
	expectError(t, env, status, http.StatusConflict, 1251, "")
	if s := c.MustServer(t, srv.ID); s.AgentStatus != "online" {
		t.Fatalf("server after the refused duplicate: %+v", s)
	}

	// Close every inbound port; the agent's own connection carries on.
	h.closeInbound(t)
	if h.reachable(22, time.Second) {
		t.Fatal("port 22 still reachable after closing inbound connections")
	}
	var ping struct {
		RttMs float64 `json:"rttMs"`
	}
	c.OK(t, http.MethodGet, "/server/ping?id="+srv.ID, nil, &ping)
	t.Logf("ping through the tunnel with port 22 closed: %.2f ms", ping.RttMs)

	// A restarted manager gets its agent back: the agent dials out.
	tm.Restart()
	c = tm.Client(t, bootstrapWait)
	testenv.Eventually(t, 90*time.Second, "agent to reconnect after the manager restarted", func() bool {
		return c.MustServer(t, srv.ID).AgentStatus == "online"
	})
	c.OK(t, http.MethodGet, "/server/ping?id="+srv.ID, nil, &ping)
}

// TestSSHBootstrapKeyAndSudoPassword logs in with an encrypted private
// key, becomes root with sudo and the account's password (sudo -S), and
// keeps the credentials, sealed, as asked.
func TestSSHBootstrapKeyAndSudoPassword(t *testing.T) {
	needHosts(t)
	t.Parallel()
	tm := startManager(t)
	c := tm.Client(t, bootstrapWait)
	h := newHost(t)
	sd := startSSHD(t, h)
	const password, passphrase = "sudo-Pass-42", "key-Phrase-42"
	user := newUser(t, password, sudoPassword)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	sd.authorize(t, user, string(ssh.MarshalAuthorizedKey(sshPub)))
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "e2e", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(block))
	tg := newTarget(t, h)
	cleanupAgent(t, tg)

	req := tg.request(user, password)
	req["privateKey"], req["passphrase"], req["keepPassword"] = keyPEM, passphrase, true
	start := time.Now()
	var srv testenv.Server
	c.OK(t, http.MethodPost, "/server", req, &srv)
	t.Logf("bootstrap with key login and sudo -S took %v", time.Since(start).Round(time.Millisecond))
	if srv.AgentStatus != "online" {
		t.Fatalf("server %+v", srv)
	}
	if srv.Password != "******" || srv.PrivateKey != "******" {
		t.Fatalf("kept credentials shown as %q / %q, want masks", srv.Password, srv.PrivateKey)
	}
	if _, l := c.Servers(t, ""); len(l) != 1 || l[0].Password != "******" {
		t.Fatalf("list: %+v", l)
	}
	// Kept means sealed: no plain text anywhere.
	for _, secret := range []string{password, passphrase, strings.Split(keyPEM, "\n")[1]} {
		noSecretIn(t, secret, tm.Config().DataDir, c.AuditDetails(t), tm.Log())
	}
}

// TestSSHBootstrapBadInput checks that each way a bootstrap can fail gives
// the seed's code and a clear message and leaves nothing behind.
func TestSSHBootstrapBadInput(t *testing.T) {
	needHosts(t)
	t.Parallel()
	tm := startManager(t)
	c := tm.Client(t, bootstrapWait)
	h := newHost(t)
	sd := startSSHD(t, h)
	const password = "Bad-Input-pw1"
	sudoer := newUser(t, password, sudoNoPassword)
	plain := newUser(t, password, noSudo)
	tg := newTarget(t, h)
	cleanupAgent(t, tg)

	post := func(t *testing.T, body map[string]any) (testenv.Envelope, int) {
		t.Helper()
		start := time.Now()
		env, status := c.Do(t, http.MethodPost, "/server", body)
		t.Logf("answered in %v", time.Since(start).Round(time.Millisecond))
		return env, status
	}
	with := func(body map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range body {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	good := tg.request(sudoer, password)

	t.Run("wrong password", func(t *testing.T) {
		env, status := post(t, with(good, "password", "not-the-password"))
		expectError(t, env, status, http.StatusBadGateway, 1253, "authentication failed")
		expectNothingLeft(t, c, tg)
	})
	t.Run("wrong port", func(t *testing.T) {
		env, status := post(t, with(good, "sshPort", 2222))
		expectError(t, env, status, http.StatusBadGateway, 1253, "connection refused")
		expectNothingLeft(t, c, tg)
	})
	t.Run("unreachable host", func(t *testing.T) {
		env, status := post(t, with(good, "managerIp", h.FreeIP, "dataIp", h.FreeIP))
		expectError(t, env, status, http.StatusBadGateway, 1253, h.FreeIP)
		if _, ok := c.ServerByIP(t, h.FreeIP); ok {
			t.Fatal("server row left behind")
		}
	})
	t.Run("nested dirs", func(t *testing.T) {
		env, status := post(t, with(good, "dataDir", filepath.Join(tg.programDir, "data")))
		expectError(t, env, status, http.StatusBadRequest, 1250, "")
		expectNothingLeft(t, c, tg)
	})
	t.Run("unknown area", func(t *testing.T) {
		env, status := post(t, with(good, "room", "no-such-area"))
		expectError(t, env, status, http.StatusNotFound, 1264, "no-such-area")
		expectNothingLeft(t, c, tg)
	})
	t.Run("bad private key", func(t *testing.T) {
		env, status := post(t, with(good, "privateKey", "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"))
		expectError(t, env, status, http.StatusBadRequest, 2, "privateKey")
		expectNothingLeft(t, c, tg)
	})
	t.Run("existing managerIp", func(t *testing.T) {
		var other testenv.Server
		c.OK(t, http.MethodPost, "/server", map[string]any{"managerIp": h.FreeIP}, &other) // waits for a hand-installed agent
		env, status := post(t, with(good, "managerIp", h.FreeIP))
		expectError(t, env, status, http.StatusConflict, 1251, "")
		if s := c.MustServer(t, other.ID); s.AgentStatus != "pending" {
			t.Fatalf("existing server changed: %+v", s)
		}
		c.OK(t, http.MethodDelete, "/server", map[string]string{"id": other.ID}, nil)
	})
	t.Run("account without sudo", func(t *testing.T) {
		env, status := post(t, with(good, "account", plain))
		expectError(t, env, status, http.StatusBadGateway, 15, "sudo")
		expectNothingLeft(t, c, tg)
	})
	t.Run("program dir on a full disk", func(t *testing.T) {
		full := mountTmpfs(t, "size=1m")
		ftg := tg
		ftg.programDir = filepath.Join(full, "admq")
		env, status := post(t, with(good, "programDir", ftg.programDir))
		expectError(t, env, status, http.StatusBadGateway, 15, "No space left on device")
		expectNothingLeft(t, c, ftg)
		if ents, _ := os.ReadDir(ftg.programDir); len(ents) != 0 {
			t.Fatalf("left in the program dir: %v", ents)
		}
	})
	t.Run("read-only program dir", func(t *testing.T) {
		ro := mountTmpfs(t, "size=1m,ro")
		rtg := tg
		rtg.programDir = filepath.Join(ro, "admq")
		env, status := post(t, with(good, "programDir", rtg.programDir))
		expectError(t, env, status, http.StatusBadGateway, 15, "Read-only file system")
		expectNothingLeft(t, c, rtg)
	})
	t.Run("agent service already installed", func(t *testing.T) {
		// Someone else's service of that name: refused, and left alone.
		def := "/etc/init.d/" + tg.service()
		if err := os.WriteFile(def, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(def)
		env, status := post(t, good)
		expectError(t, env, status, http.StatusConflict, 1251, "already installed")
		if _, err := os.Stat(def); err != nil {
			t.Fatalf("the existing service definition was touched: %v", err)
		}
		if s, ok := c.ServerByIP(t, h.IP); ok {
			t.Fatalf("server row left behind: %+v", s)
		}
		if _, err := os.Stat(filepath.Join(tg.programDir, "admq-agent")); err == nil {
			t.Fatal("agent uploaded although the service exists")
		}
	})
	t.Run("no agent for the platform", func(t *testing.T) {
		empty := startManager(t, func(cfg *manager.Config) { cfg.AgentDir = t.TempDir() })
		ec := empty.Client(t, bootstrapWait)
		env, status := ec.Do(t, http.MethodPost, "/server", good)
		expectError(t, env, status, http.StatusInternalServerError, 1255, "admq-agent-linux-amd64")
		expectNothingLeft(t, ec, tg)
	})
	t.Run("agent never comes online", func(t *testing.T) {
		// Agents are told a tunnel address nobody answers on: the install
		// succeeds, the wait fails, and the service must be removed again.
		lost := startManager(t, func(cfg *manager.Config) {
			cfg.AdvertiseTunnelAddr = h.PeerIP + ":1"
			cfg.AgentOnlineTimeout = 5 * time.Second
		})
		lc := lost.Client(t, bootstrapWait)
		env, status := lc.Do(t, http.MethodPost, "/server", good)
		expectError(t, env, status, http.StatusBadGateway, 1253, "did not come online")
		var data map[string]any
		json.Unmarshal(env.Data, &data)
		if data["cleanup"] != "done" {
			t.Fatalf("cleanup %v, want done", data["cleanup"])
		}
		expectNothingLeft(t, lc, tg)
	})
	t.Run("host key changed", func(t *testing.T) {
		// The earlier attempts recorded the host's key; a reinstalled host
		// presents another.
		sd.restartWithNewKeys(t)
		env, status := post(t, good)
		expectError(t, env, status, http.StatusBadGateway, 1253, "host key")
		var data struct {
			Known     string `json:"knownFingerprint"`
			Presented string `json:"presentedFingerprint"`
		}
		testenv.Decode(t, env.Data, &data)
		if data.Known == "" || data.Presented == "" || data.Known == data.Presented {
			t.Fatalf("fingerprints in the error: %+v", data)
		}
		expectNothingLeft(t, c, tg)

		// The operator forgets the old key; the next attempt gets past the
		// host key (and fails only on the password it was given).
		c.OK(t, http.MethodDelete, "/server/hostkey", map[string]any{"managerIp": h.IP, "sshPort": 22}, nil)
		env, status = c.Do(t, http.MethodDelete, "/server/hostkey", map[string]any{"managerIp": h.IP, "sshPort": 22})
		expectError(t, env, status, http.StatusNotFound, 1256, "")
		env, status = post(t, with(good, "password", "still-wrong"))
		expectError(t, env, status, http.StatusBadGateway, 1253, "authentication failed")
	})
	noSecretIn(t, password, tm.Config().DataDir, c.AuditDetails(t), tm.Log())
}

func agentSize(t *testing.T) string {
	fi, err := os.Stat(filepath.Join(agentDir, "admq-agent-linux-amd64"))
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
}
