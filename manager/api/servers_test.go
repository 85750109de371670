package api

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/sealed"
)

// scriptedBootstrap fails bootstraps of the addresses in fail with the
// given errors and records forgotten host keys.
type scriptedBootstrap struct {
	mu     sync.Mutex
	fail   map[string]error
	forgot []string
}

func (b *scriptedBootstrap) Bootstrap(_ context.Context, srv fleet.Server, _ fleet.SSHCredentials, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fail[srv.ManagerIP]
}

func (b *scriptedBootstrap) ForgetHostKey(_ context.Context, ip string, port int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	addr := fmt.Sprintf("%s:%d", ip, port)
	if addr != "198.18.5.1:22" && addr != "198.18.5.1:2222" {
		return bootstrap.ErrHostKeyNotFound
	}
	b.forgot = append(b.forgot, addr)
	return nil
}

func TestServerBootstrap(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	fb := &scriptedBootstrap{fail: map[string]error{
		"198.18.5.10": &bootstrap.Error{Step: "upload agent binary", Cleanup: "done",
			Err: &bootstrap.CommandError{Step: "upload agent binary", ExitStatus: 1, Stderr: "cat: write error: No space left on device"}},
		"198.18.5.11": &bootstrap.Error{Step: "connect",
			Err: &bootstrap.HostKeyChangedError{Address: "198.18.5.11:22", KeyType: "ssh-ed25519", Known: "SHA256:old", Presented: "SHA256:new"}},
		"198.18.5.12": &bootstrap.Error{Step: "connect", Err: fmt.Errorf("%w: refused", bootstrap.ErrAuthFailed)},
		"198.18.5.13": &bootstrap.Error{Step: "connect", Err: fmt.Errorf("%w: i/o timeout", bootstrap.ErrUnreachable)},
		"198.18.5.14": &bootstrap.Error{Step: "detect platform", Err: fmt.Errorf("%w: OS \"Darwin\"", bootstrap.ErrUnsupportedPlatform)},
		"198.18.5.15": &bootstrap.Error{Step: "detect platform", Err: fmt.Errorf("%w: no file", bootstrap.ErrAgentBinaryMissing)},
		"198.18.5.16": &bootstrap.Error{Step: "inspect host", Err: fmt.Errorf("%w: /etc/init.d/admq-agent", bootstrap.ErrAgentInstalled)},
		"198.18.5.17": &bootstrap.Error{Step: "wait for agent", Cleanup: "uninstall failed", Err: fmt.Errorf("%w within 60s", bootstrap.ErrAgentTimeout)},
	}}
	key, err := sealed.LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, _ := sealed.New(key)
	h.deps(t).Fleet.UseBootstrap(fb, box)

	const pw = "Sup3r-Secret-pw"
	body := func(ip string, kv ...any) map[string]any {
		m := map[string]any{"managerIp": ip, "sshPort": 22, "account": "root", "password": pw, "programDir": "/opt/admq", "dataDir": "/data/admq"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	type view struct{ ID, Password, PrivateKey, AgentStatus string }

	r := h.call("POST", "/server", tok, body("198.18.5.1"))
	want(t, r, 200, 0)
	if v := decodeData[view](t, r); v.Password != "" || v.PrivateKey != "" {
		t.Fatalf("forgotten password shown as %+v", v)
	}
	r = h.call("POST", "/server", tok, body("198.18.5.2", "keepPassword", true))
	want(t, r, 200, 0)
	if v := decodeData[view](t, r); v.Password != "******" || v.PrivateKey != "" {
		t.Fatalf("kept password shown as %+v", v)
	}
	want(t, h.call("POST", "/server", tok, map[string]any{"managerIp": "198.18.5.3", "keepPassword": true}), 400, codeParamInvalid)

	cases := []struct {
		ip           string
		status, code int
		data         []string
	}{
		{"198.18.5.10", 502, codeSSHCommandFailed, []string{`"stderr":"cat: write error: No space left on device"`, `"exitStatus":1`, `"cleanup":"done"`, `"step":"upload agent binary"`}},
		{"198.18.5.11", 502, codeServerCannotConnect, []string{`"knownFingerprint":"SHA256:old"`, `"presentedFingerprint":"SHA256:new"`}},
		{"198.18.5.12", 502, codeServerCannotConnect, []string{`"cleanup":"not needed"`}},
		{"198.18.5.13", 502, codeServerCannotConnect, nil},
		{"198.18.5.14", 400, codePlatformUnsupported, nil},
		{"198.18.5.15", 500, codeAgentBinaryMissing, nil},
		{"198.18.5.16", 409, codeServerExist, nil},
		{"198.18.5.17", 502, codeServerCannotConnect, []string{`"cleanup":"uninstall failed"`}},
	}
	for _, c := range cases {
		t.Run(c.ip, func(t *testing.T) {
			r := h.call("POST", "/server", tok, body(c.ip))
			want(t, r, c.status, c.code)
			for _, d := range c.data {
				if !strings.Contains(string(r.Data), d) {
					t.Errorf("data %s lacks %s", r.Data, d)
				}
			}
		})
	}
	list := decodeData[page[view]](t, h.call("GET", "/server", tok, nil))
	if list.Total != 2 {
		t.Fatalf("failed bootstraps left servers: %+v", list)
	}
	audit := h.call("GET", "/audit?pageSize=500", tok, nil)
	if strings.Contains(string(audit.Data), pw) {
		t.Fatal("the audit log holds the SSH password")
	}
	if !strings.Contains(string(audit.Data), "sshBootstrap=true") {
		t.Fatalf("the audit log does not record the bootstrap: %s", audit.Data)
	}

	t.Run("forget host key", func(t *testing.T) {
		want(t, h.call("DELETE", "/server/hostkey", tok, map[string]any{"managerIp": "198.18.5.1"}), 200, 0)
		want(t, h.call("DELETE", "/server/hostkey?managerIp=198.18.5.1&sshPort=2222", tok, nil), 200, 0)
		want(t, h.call("DELETE", "/server/hostkey", tok, map[string]any{"managerIp": "198.18.5.9", "sshPort": 22}), 404, codeHostKeyNotExist)
		want(t, h.call("DELETE", "/server/hostkey", tok, map[string]any{"managerIp": "not-an-ip"}), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/server/hostkey", tok, map[string]any{"managerIp": "198.18.5.1", "sshPort": 70000}), 400, codeParamInvalid)
		want(t, h.call("DELETE", "/server/hostkey?sshPort=x", tok, nil), 400, codeParamInvalid)
		if len(fb.forgot) != 2 || fb.forgot[0] != "198.18.5.1:22" || fb.forgot[1] != "198.18.5.1:2222" {
			t.Fatalf("forgot %v", fb.forgot)
		}
	})
}
