package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/agent/service"
)

const testToken = "abcdef.0123456789abcdef::sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// agentCmd runs the built admq-agent and returns its stdout and exit code.
func agentCmd(t testing.TB, bin string, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("admq-agent %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return strings.TrimSpace(out.String()), code
}

// TestInstallRoundTrip installs, controls and removes a real service with
// whatever service manager kardianos/service finds on this machine
// (System V init where PID 1 is not systemd). It changes /etc, so it runs
// only as root and under a name of its own, and cleans up after itself.
func TestInstallRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a system service needs root")
	}
	bin := buildBin(t, "admq-agent")
	name := "admq-agent-test-" + randomHex(t, 4)
	stateDir := filepath.Join(t.TempDir(), "state")
	t.Cleanup(func() {
		// Whatever happened above: no service, init links or logs left.
		exec.Command(bin, "uninstall", "--service-name", name).Run()
		for _, p := range []string{"/etc/init.d/" + name, "/etc/systemd/system/" + name + ".service",
			"/var/log/" + name + ".log", "/var/log/" + name + ".err", "/var/run/" + name + ".pid"} {
			os.Remove(p)
		}
		links, _ := filepath.Glob("/etc/rc[0-6].d/[SK][0-9][0-9]" + name)
		for _, l := range links {
			os.Remove(l)
		}
	})
	svc := []string{"--service-name", name}

	if out, code := agentCmd(t, bin, append([]string{"status"}, svc...)...); out != "not-installed" || code != exitNotInstalled {
		t.Fatalf("status before install: %q, exit %d", out, code)
	}
	// 127.0.0.1:1 refuses at once: the agent keeps retrying, i.e. runs.
	install := append([]string{"install", "--manager", "127.0.0.1:1", "--token", testToken, "--state-dir", stateDir, "--start=false"}, svc...)
	if _, code := agentCmd(t, bin, install...); code != 0 {
		t.Fatalf("install: exit %d", code)
	}

	script := installedFile(t, name)
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "0123456789abcdef") {
		t.Errorf("%s holds the join token's secret:\n%s", script, b)
	}
	for _, want := range []string{bin, "run", "--manager", "127.0.0.1:1", stateDir, "--log-format", "json", name} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not mention %q", script, want)
		}
	}
	fi, err := os.Stat(stateDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	tokenFile := service.TokenPath(stateDir)
	fi, err = os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v; want mode 0600", err)
	}
	if got, _ := os.ReadFile(tokenFile); strings.TrimSpace(string(got)) != testToken {
		t.Errorf("token file holds %q", got)
	}

	if out, code := agentCmd(t, bin, append([]string{"status"}, svc...)...); out != "stopped" || code != exitStopped {
		t.Errorf("status after install --start=false: %q, exit %d", out, code)
	}
	if out, code := agentCmd(t, bin, install...); code != 1 {
		t.Errorf("second install: exit %d, %q; want a failure", code, out)
	}
	if _, code := agentCmd(t, bin, append([]string{"start"}, svc...)...); code != 0 {
		t.Fatalf("start: exit %d", code)
	}
	waitFor(t, func() bool {
		out, _ := agentCmd(t, bin, append([]string{"status"}, svc...)...)
		return out == "running"
	})
	if ps, _ := exec.Command("ps", "-eo", "args").Output(); strings.Contains(string(ps), "0123456789abcdef") {
		t.Error("the join token's secret is in the process list")
	}
	if _, code := agentCmd(t, bin, append([]string{"stop"}, svc...)...); code != 0 {
		t.Errorf("stop: exit %d", code)
	}
	if out, code := agentCmd(t, bin, append([]string{"status"}, svc...)...); out != "stopped" || code != exitStopped {
		t.Errorf("status after stop: %q, exit %d", out, code)
	}
	// The agent never enrolled: the token file is still there for next time.
	if _, err := os.Stat(tokenFile); err != nil {
		t.Errorf("token file: %v", err)
	}

	if _, code := agentCmd(t, bin, append([]string{"uninstall", "--purge", "--state-dir", stateDir}, svc...)...); code != 0 {
		t.Fatalf("uninstall: exit %d", code)
	}
	for _, p := range []string{script, tokenFile, stateDir} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived uninstall --purge: %v", p, err)
		}
	}
	if links, _ := filepath.Glob("/etc/rc[0-6].d/*" + name); len(links) > 0 {
		t.Errorf("init links survived uninstall: %v", links)
	}
	if out, code := agentCmd(t, bin, append([]string{"status"}, svc...)...); out != "not-installed" || code != exitNotInstalled {
		t.Errorf("status after uninstall: %q, exit %d", out, code)
	}
	if out, code := agentCmd(t, bin, append([]string{"uninstall"}, svc...)...); code != 0 || !strings.Contains(out, "not installed") {
		t.Errorf("second uninstall: %q, exit %d; want a note and success", out, code)
	}
}

// installedFile is the unit or init script of service name.
func installedFile(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{"/etc/systemd/system/" + name + ".service", "/etc/init.d/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no unit or init script for %s", name)
	return ""
}

// TestRunEnrollsFromTokenFile starts a real manager, puts a fresh join
// token in a state dir's join-token file as install does, and checks that
// `admq-agent run` enrolls with it, removes the file, and stops cleanly on
// SIGTERM.
func TestRunEnrollsFromTokenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts admq-manager")
	}
	mgr, tunnel, pin := startManager(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	join := mgr.joinToken(t)
	if !strings.HasSuffix(join, "::"+pin) {
		t.Fatalf("join token %q does not carry the CA pin %s", join, pin)
	}
	if err := service.WriteJoinToken(stateDir, join); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	agent := exec.Command(buildBin(t, "admq-agent"), "run", "--manager", tunnel, "--state-dir", stateDir, "--log-format", "json")
	agent.Stdout, agent.Stderr = &logs, &logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = agent.Wait(); close(exited) }()
	t.Cleanup(func() {
		agent.Process.Kill()
		<-exited
	})
	waitFor(t, func() bool {
		_, idErr := os.Stat(filepath.Join(stateDir, "agent.id"))
		_, tokErr := os.Stat(service.TokenPath(stateDir))
		return idErr == nil && errors.Is(tokErr, os.ErrNotExist)
	})
	agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("agent after SIGTERM: %v\n%s", waitErr, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM\n%s", logs.String())
	}
	if strings.Contains(logs.String(), strings.TrimSuffix(join, "::"+pin)) {
		t.Errorf("the join token is in the agent's log:\n%s", logs.String())
	}
}

type testManager struct {
	url, password string
}

// startManager runs admq-manager on loopback ports and returns it with
// its tunnel address and CA pin, as it prints them.
func startManager(t *testing.T) (*testManager, string, string) {
	t.Helper()
	password := randomHex(t, 12)
	cmd := exec.Command(buildBin(t, "admq-manager"), "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "ADMQ_ADMIN_PASSWORD="+password)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	banner := regexp.MustCompile(`console (http://\S+)\s+tunnel (\S+)\s+CA pin (sha256:[0-9a-f]+)`)
	lines := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := banner.FindStringSubmatch(sc.Text()); m != nil {
				lines <- m
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case m := <-lines:
		return &testManager{url: m[1], password: password}, m[2], m[3]
	case <-time.After(60 * time.Second):
		t.Fatalf("admq-manager did not start\n%s", logs.String())
	}
	return nil, "", ""
}

// joinToken logs in as admin and creates a single-use join token.
func (m *testManager) joinToken(t *testing.T) string {
	t.Helper()
	var login struct{ Data struct{ Token string } }
	m.call(t, "", "/login", map[string]string{"username": "admin", "password": m.password}, &login)
	var tok struct{ Data struct{ Token string } }
	m.call(t, login.Data.Token, "/agent/token", map[string]any{"description": "admq-agent test", "maxUses": 1, "ttlSeconds": 600}, &tok)
	if tok.Data.Token == "" {
		t.Fatal("no join token in the manager's answer")
	}
	return tok.Data.Token
}

func (m *testManager) call(t *testing.T, bearer, path string, body, into any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), "POST", m.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s\n%s", path, resp.Status, rb)
	}
	if err := json.Unmarshal(rb, into); err != nil {
		t.Fatalf("POST %s: %v\n%s", path, err, rb)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
