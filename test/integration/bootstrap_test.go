package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// Loopback addresses of the SSH bootstrap test's two "servers", and the
// names of the agent services a bootstrap installs for them.
const (
	bootIP1        = "127.0.32.1"
	bootIP2        = "127.0.32.2"
	bootServiceTpl = "admqbp-it-{managerIp}"
)

// bootEvent is a step event of a bootstrap job, with when it arrived.
type bootEvent struct {
	at                  time.Time
	name, state, detail string
	started             string // the step's startTime
	durationMs          int64
}

// followBootstrap follows the job's events to the end and returns the
// step events in order with their arrival times, and every event's text.
func followBootstrap(t *testing.T, c *testenv.Client, jobID string) ([]bootEvent, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var steps []bootEvent
	var text strings.Builder
	events, err := c.JobEvents(ctx, jobID, func(e testenv.Event) {
		text.WriteString(e.Name + " " + e.Data + "\n")
		if e.Name != "step" {
			return
		}
		var s testenv.Step
		if err := json.Unmarshal([]byte(e.Data), &s); err != nil {
			t.Errorf("step event %s: %v", e.Data, err)
		}
		steps = append(steps, bootEvent{time.Now(), s.Name, s.State, s.Detail, s.StartTime, s.DurationMs})
	})
	if err != nil || len(events) == 0 || events[len(events)-1].Name != "done" {
		t.Fatalf("events of job %s: %v; read:\n%s", jobID, err, text.String())
	}
	return steps, text.String()
}

// TestSSHBootstrapJob adds servers over SSH with async, as the console
// does, to a real sshd on loopback that lets root in with a key: the
// manager uploads the real admq-agent, which installs itself as a
// service and comes online, and the job's events show every step on the
// way with the upload's bytes. Failures end the job with the code and
// data the synchronous call answers, at the step they happened in, with
// nothing left behind; the synchronous call still answers as before.
// Credentials appear in no job, event, audit entry, log or file of the
// manager.
func TestSSHBootstrapJob(t *testing.T) {
	integrationTest(t)
	testenv.NeedRoot(t, "installing an agent service over SSH")
	root := t.TempDir()
	testenv.RemoveAgentServices(t, "admqbp-it-", root)
	sd1 := testenv.StartSSHD(t, bootIP1)
	sd2 := testenv.StartSSHD(t, bootIP2)
	const passphrase, password = "Key-Phrase-it-7", "Wrong-Pass-it-7"
	key, pub := testenv.NewSSHKey(t, passphrase)
	sd1.Authorize(t, "root", pub)
	sd2.Authorize(t, "root", pub)
	m := testenv.StartManager(t, func(c *manager.Config) {
		c.AgentDir = testenv.AgentDir(t, agentBin)
		c.AgentServiceName = bootServiceTpl
	})
	c := m.Client(t, testenv.WithTimeout(2*time.Minute))
	request := func(sd *testenv.SSHD, kv ...any) map[string]any {
		r := map[string]any{"room": "default", "managerIp": sd.IP, "sshPort": sd.Port, "account": "root", "privateKey": key,
			"passphrase": passphrase, "programDir": filepath.Join(root, sd.IP, "opt"), "dataDir": filepath.Join(root, sd.IP, "data"), "async": true}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(r, kv[i].(string))
			} else {
				r[kv[i].(string)] = kv[i+1]
			}
		}
		return r
	}
	type created struct {
		ID          string `json:"id"`
		AgentStatus string `json:"agentStatus"`
		JobID       string `json:"jobId"`
	}
	var texts []string // everything a client saw, to look for secrets in

	// The key: the steps reach online.
	start := time.Now()
	var srv created
	c.OK(t, http.MethodPost, "/server", request(sd1), &srv)
	answered := time.Since(start)
	if srv.AgentStatus != "pending" || srv.JobID == "" {
		t.Fatalf("async answer %+v: want a pending server and its job", srv)
	}
	steps, text := followBootstrap(t, c, srv.JobID)
	texts = append(texts, text)
	job := c.Job(t, srv.JobID)
	if job.State != "succeeded" || job.Type != "server_bootstrap" || job.ServerID != srv.ID || job.Code != 0 {
		t.Fatalf("bootstrap job:\n%s", job)
	}
	// Every step ran and succeeded, in order, and said what it did.
	want := map[string]string{
		"connect": `^logged in as root to 127\.0\.32\.1:\d+; host key \S+ SHA256:\S+ recorded on first use$`,
		"detect":  `^linux/\w+, logged in as root; no agent service "admqbp-it-127-0-32-1" installed yet$`,
		"upload":  `^sent admq-agent-linux-\w+ \(\d+ bytes\) to \S+/admq-agent/admq-agent in \S+, [\d.]+ MB/s; sha256 checked on the server$`,
		"install": `^service admqbp-it-127-0-32-1 installed and started, state dir \S+; its agent dials 127\.0\.0\.1:\d+$`,
		"online":  `^online \S+ after the service started \(bootstrap took \S+\)$`,
	}
	for i, name := range []string{"connect", "detect", "upload", "install", "online"} {
		s := job.Steps("")[i]
		if s.Name != name || s.State != "succeeded" || !matches(want[name], s.Detail) {
			t.Errorf("step %d: %+v; want %s succeeded with a detail matching %s", i, s, name, want[name])
		}
	}
	// The events showed each step running before it succeeded, the upload
	// with its bytes, and timed them. The stream sends a step's state as it
	// finds it at each change, so a step that ran and finished between two
	// reads (online can take a few ms) shows up succeeded at once, with the
	// time it started and how long it took.
	began := map[string]time.Time{}
	var figures []string
	sawBytes := false
	for _, e := range steps {
		switch e.state {
		case "running":
			if _, ok := began[e.name]; !ok {
				began[e.name] = e.at
			}
			if e.name == "upload" && matches(`^sending admq-agent-linux-\w+: [\d.]+ of [\d.]+ MB \(\d+%\)`, e.detail) {
				sawBytes = true
			}
		case "succeeded":
			switch b, ok := began[e.name]; {
			case ok:
				figures = append(figures, fmt.Sprintf("%s %v", e.name, e.at.Sub(b).Round(time.Millisecond)))
			case e.started != "" && e.durationMs >= 0:
				figures = append(figures, fmt.Sprintf("%s %dms (not seen running)", e.name, e.durationMs))
			default:
				t.Errorf("step %s succeeded without having been seen running or saying when it started: %+v", e.name, e)
			}
		}
	}
	if !sawBytes {
		t.Errorf("no running upload step said how many bytes it had sent: %+v", steps)
	}
	t.Logf("async bootstrap on loopback: answered in %v; steps as the event stream showed them: %s; agent %s",
		answered.Round(time.Millisecond), strings.Join(figures, ", "), agentSizeOf(t))
	if s := c.MustServer(t, srv.ID); s.AgentStatus != "online" {
		t.Fatalf("server after its job succeeded: %+v", s)
	}
	c.OK(t, http.MethodGet, "/server/ping?id="+srv.ID, nil, nil)

	// failed checks a failed async bootstrap: the job's code and data,
	// the step it failed at, and no server left.
	failed := func(name string, body map[string]any, code int, step, detail string, data ...string) {
		t.Helper()
		var srv created
		c.OK(t, http.MethodPost, "/server", body, &srv)
		_, text := followBootstrap(t, c, srv.JobID)
		job := c.Job(t, srv.JobID)
		texts = append(texts, text, job.String())
		raw, _ := json.Marshal(job.ErrorData)
		if job.State != "failed" || job.Code != code {
			t.Errorf("%s: job ended %s with code %d, want failed with %d:\n%s", name, job.State, job.Code, code, job)
		}
		for _, d := range data {
			if !strings.Contains(string(raw), d) {
				t.Errorf("%s: errorData %s lacks %s", name, raw, d)
			}
		}
		var at testenv.Step
		for _, s := range job.Nodes[0].Steps {
			if s.State == "failed" {
				at = s
			}
		}
		if at.Name != step || !strings.Contains(at.Detail, detail) {
			t.Errorf("%s: failed at %q (%q), want %s saying %q:\n%s", name, at.Name, at.Detail, step, detail, job)
		}
		if _, ok := c.Server(t, srv.ID); ok {
			t.Errorf("%s: the server of the failed bootstrap is still there", name)
		}
	}
	// A wrong password: refused at connect, 1253, as the synchronous call
	// answers at once.
	wrongPW := request(sd2, "privateKey", nil, "passphrase", nil, "password", password)
	failed("wrong password", wrongPW, 1253, "connect", "SSH authentication failed", `"step":"connect"`, `"cleanup":"not needed"`)
	wrongPW["async"] = false
	env, status := c.Do(t, http.MethodPost, "/server", wrongPW)
	if status != http.StatusBadGateway || env.Code != 1253 || !strings.Contains(env.Message, "SSH authentication failed") {
		t.Errorf("synchronous wrong password: HTTP %d %+v", status, env)
	}
	texts = append(texts, env.Message, string(env.Data))
	// A program dir under a regular file: the upload's command fails, 15
	// with its stderr, and what it made is removed.
	blocker := filepath.Join(root, "a-file")
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	failed("program dir under a file", request(sd2, "programDir", filepath.Join(blocker, "opt")), 15, "upload", "Not a directory",
		`"exitStatus":1`, `"stderr":"mkdir: cannot create directory`, `"cleanup":"done"`)
	// The first server deleted, its agent still installed: a new bootstrap
	// finds the service at detect, 1251.
	c.OK(t, http.MethodDelete, "/server", map[string]string{"id": srv.ID}, nil)
	failed("agent installed already", request(sd1), 1251, "detect", "/etc/init.d/admqbp-it-127-0-32-1")

	// Refused before SSH: at once, with no job.
	before := jobTotal(t, c)
	for _, r := range []struct {
		name string
		body map[string]any
		code int
	}{
		{"unknown area", request(sd2, "room", "mars"), 1264},
		{"nested dirs", request(sd2, "dataDir", filepath.Join(root, "nest"), "programDir", filepath.Join(root, "nest", "opt")), 1250},
		{"wrong passphrase", request(sd2, "passphrase", "nope"), 2},
	} {
		env, _ := c.Do(t, http.MethodPost, "/server", r.body)
		if env.Code != r.code {
			t.Errorf("%s: code %d (%s), want %d", r.name, env.Code, env.Message, r.code)
		}
	}
	if after := jobTotal(t, c); after != before {
		t.Errorf("requests refused before SSH made %d jobs", after-before)
	}

	// The credentials are nowhere.
	var jobs json.RawMessage
	c.OK(t, http.MethodGet, "/job?pageSize=100", nil, &jobs)
	texts = append(texts, string(jobs), c.AuditDetails(t), m.Log())
	keyBody := strings.Join(strings.Split(key, "\n")[1:3], "")
	for _, secret := range []string{password, passphrase, keyBody} {
		for i, s := range texts {
			if strings.Contains(s, secret) {
				t.Errorf("text %d holds a credential:\n%s", i, s)
			}
		}
		_ = filepath.WalkDir(m.Config().DataDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), secret) {
					t.Errorf("%s holds a credential", p)
				}
			}
			return nil
		})
	}
}

func matches(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

func jobTotal(t *testing.T, c *testenv.Client) int {
	t.Helper()
	var p struct {
		Total int `json:"total"`
	}
	c.OK(t, http.MethodGet, "/job?pageSize=1", nil, &p)
	return p.Total
}

func agentSizeOf(t *testing.T) string {
	fi, err := os.Stat(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}
