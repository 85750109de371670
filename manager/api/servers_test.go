package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/deploy"
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

func (b *scriptedBootstrap) CheckCredentials(c fleet.SSHCredentials) error {
	if c.PrivateKey != "" && !strings.HasPrefix(c.PrivateKey, "-----BEGIN ") {
		return invalid.Field("privateKey", "not a usable PEM private key")
	}
	return nil
}

func (b *scriptedBootstrap) Bootstrap(_ context.Context, srv fleet.Server, _ fleet.SSHCredentials, _ string, p fleet.Progress) error {
	b.mu.Lock()
	err := b.fail[srv.ManagerIP]
	b.mu.Unlock()
	for _, step := range fleet.BootstrapSteps {
		p.Running(step, "")
		if err != nil {
			p.Failed(step, err.Error())
			return err
		}
		p.Done(step, step+" done")
	}
	return nil
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
	h.deps(t).Fleet.UseBootstrap(fb, box, nil)

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

// TestServerBootstrapAsync adds servers with async: the answer is the
// pending server and its job at once; the job's events and detail show
// the steps to the end, and a failed job the code, data and step the
// synchronous call would have answered, with the server removed. What is
// refused before SSH is refused at once. The password is nowhere.
func TestServerBootstrapAsync(t *testing.T) {
	h := newHarness(t)
	gen, _ := ids.NewGenerator(7)
	eng := deploy.New(deploy.Deps{Store: h.db, IDs: gen, ErrorCode: JobError})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	fb := &scriptedBootstrap{fail: map[string]error{
		"198.18.6.10": &bootstrap.Error{Step: "upload agent binary", Cleanup: "done",
			Err: &bootstrap.CommandError{Step: "upload agent binary", ExitStatus: 1, Stderr: "cat: write error: No space left on device"}},
		"198.18.6.12": &bootstrap.Error{Step: "connect", Err: fmt.Errorf("%w: refused", bootstrap.ErrAuthFailed)},
		"198.18.6.16": &bootstrap.Error{Step: "inspect host", Err: fmt.Errorf("%w: /etc/init.d/admq-agent", bootstrap.ErrAgentInstalled)},
	}}
	key, err := sealed.LoadOrCreateKey(filepath.Join(t.TempDir(), "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, _ := sealed.New(key)
	h.deps(t).Fleet.UseBootstrap(fb, box, eng)
	deps := h.deps
	h.deps = func(t testing.TB) Deps {
		d := deps(t)
		d.Deploy = eng
		return d
	}
	h.srv.Close()
	h.srv = httptest.NewServer(New(h.deps(t)))
	t.Cleanup(h.srv.Close)
	tok := h.login("admin", adminPassword)

	const pw = "Async-Secret-pw-9"
	body := func(ip string, kv ...any) map[string]any {
		m := map[string]any{"managerIp": ip, "account": "root", "password": pw, "async": true, "programDir": "/opt/admq", "dataDir": "/data/admq"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	type created struct{ ID, AgentStatus, JobID, Password string }
	type detail struct {
		ID, Type, ServerID, State, Reason string
		ClusterID                         *string
		Code                              int
		ErrorData                         map[string]any
		Nodes                             []struct {
			NodeID *string
			Steps  []struct{ Name, State, Detail string }
		}
	}
	var texts []string
	follow := func(jobID string) detail {
		t.Helper()
		ev := h.events(tok, jobID)
		texts = append(texts, ev)
		if !strings.Contains(ev, "event: done") {
			t.Fatalf("events of job %s end without done:\n%s", jobID, ev)
		}
		r := h.call("GET", "/job/detail?id="+jobID, tok, nil)
		want(t, r, 200, 0)
		texts = append(texts, string(r.Data))
		return decodeData[detail](t, r)
	}

	r := h.call("POST", "/server", tok, body("198.18.6.1", "keepPassword", true))
	want(t, r, 200, 0)
	c := decodeData[created](t, r)
	if c.AgentStatus != "pending" || c.JobID == "" || c.Password != "" {
		t.Fatalf("async answer %s: want a pending server with its jobId, no password yet", r.Data)
	}
	d := follow(c.JobID)
	if d.State != "succeeded" || d.Type != "server_bootstrap" || d.ServerID != c.ID || d.ClusterID != nil || d.Code != 0 ||
		len(d.Nodes) != 1 || d.Nodes[0].NodeID != nil || len(d.Nodes[0].Steps) != 5 {
		t.Fatalf("job %+v", d)
	}
	for i, s := range d.Nodes[0].Steps {
		if s.Name != fleet.BootstrapSteps[i] || s.State != "succeeded" {
			t.Errorf("step %d: %+v", i, s)
		}
	}
	list := decodeData[page[created]](t, h.call("GET", "/server?id="+c.ID, tok, nil))
	if list.Total != 1 || list.List[0].Password != "******" {
		t.Fatalf("the bootstrapped server: %+v", list)
	}

	for _, f := range []struct {
		ip       string
		code     int
		step     string
		data     []string
		stepText string
	}{
		{"198.18.6.10", codeSSHCommandFailed, "connect", []string{`"stderr":"cat: write error: No space left on device"`, `"exitStatus":1`, `"cleanup":"done"`,
			`"step":"upload agent binary"`}, "No space left on device"},
		{"198.18.6.12", codeServerCannotConnect, "connect", []string{`"cleanup":"not needed"`}, "SSH authentication failed"},
		{"198.18.6.16", codeServerExist, "connect", nil, "/etc/init.d/admq-agent"},
	} {
		t.Run(f.ip, func(t *testing.T) {
			r := h.call("POST", "/server", tok, body(f.ip))
			want(t, r, 200, 0)
			c := decodeData[created](t, r)
			d := follow(c.JobID)
			if d.State != "failed" || d.Code != f.code || d.Reason == "" {
				t.Fatalf("job %+v: want failed with code %d", d, f.code)
			}
			data, _ := json.Marshal(d.ErrorData)
			for _, want := range f.data {
				if !strings.Contains(string(data), want) {
					t.Errorf("errorData %s lacks %s", data, want)
				}
			}
			steps := d.Nodes[0].Steps
			if steps[0].Name != f.step || steps[0].State != "failed" || !strings.Contains(steps[0].Detail, f.stepText) {
				t.Errorf("failed step %+v", steps[0])
			}
			for _, s := range steps[1:] {
				if s.State != "cancelled" {
					t.Errorf("step after the failure %+v, want cancelled", s)
				}
			}
			if l := decodeData[page[created]](t, h.call("GET", "/server?id="+c.ID, tok, nil)); l.Total != 0 {
				t.Errorf("the failed bootstrap's server is still listed: %+v", l)
			}
		})
	}

	_, before := h.jobCount(tok)
	for _, c := range []struct {
		name         string
		body         map[string]any
		status, code int
	}{
		{"registered ip", body("198.18.6.1"), 409, codeServerExist},
		{"nested dirs", body("198.18.6.20", "dataDir", "/opt/admq/data"), 400, codeServerDirIllegal},
		{"unknown area", body("198.18.6.21", "room", "mars"), 404, codeAreaNotExist},
		{"no credentials", body("198.18.6.22", "password", ""), 400, codeParamInvalid},
		{"unusable key", body("198.18.6.23", "password", "", "privateKey", "not a key"), 400, codeParamInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			want(t, h.call("POST", "/server", tok, c.body), c.status, c.code)
		})
	}
	jobs, after := h.jobCount(tok)
	if after != before {
		t.Errorf("refused requests made %d jobs", after-before)
	}
	audit := h.call("GET", "/audit?pageSize=500", tok, nil)
	texts = append(texts, jobs, string(audit.Data))
	for _, s := range texts {
		if strings.Contains(s, pw) {
			t.Fatalf("the password shows in:\n%s", s)
		}
	}
	if !strings.Contains(string(audit.Data), "async=true") || !strings.Contains(string(audit.Data), "job="+c.JobID) {
		t.Errorf("the audit log does not record the async bootstrap and its job: %s", audit.Data)
	}
}

// jobCount returns the job list as text and its total.
func (h *harness) jobCount(tok string) (string, int) {
	h.t.Helper()
	r := h.call("GET", "/job?pageSize=100", tok, nil)
	want(h.t, r, 200, 0)
	return string(r.Data), decodeData[page[struct{ ID string }]](h.t, r).Total
}
