package bootstrap_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/bootstrap"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/test/testenv"
)

// fakeAgent stands in for admq-agent on the host: install records its
// join token in the state dir (the "service" is that file), or fails with
// a message when the data dir holds fail-install; uninstall removes the
// record. The integration and browser tests install the real agent; this
// one lets a failing install be provoked.
const fakeAgent = `#!/bin/sh
cmd=$1; shift
state=
while [ $# -gt 0 ]; do
	case "$1" in --state-dir) state=$2; shift ;; esac
	shift
done
case "$cmd" in
install)
	if [ -e "$state/../fail-install" ]; then
		echo "cannot install the service: disk on fire; token $ADMQ_JOIN_TOKEN" >&2
		exit 3
	fi
	echo "$ADMQ_JOIN_TOKEN" > "$state/installed" ;;
uninstall)
	rm -f "$state/installed" ;;
esac
`

// recorded is a fleet.Progress that keeps what it hears, in order.
type recorded struct {
	mu     sync.Mutex
	events []string // "step state detail"
}

func (r *recorded) add(step, state, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, step+" "+state+" "+detail)
}
func (r *recorded) Running(step, detail string) { r.add(step, "running", detail) }
func (r *recorded) Done(step, detail string)    { r.add(step, "done", detail) }
func (r *recorded) Failed(step, detail string)  { r.add(step, "failed", detail) }

// tokens issues join tokens whose secret the test knows.
type tokens struct{ revoked []string }

func (t *tokens) CreateToken(_ context.Context, spec enroll.TokenSpec) (enroll.IssuedToken, error) {
	return enroll.IssuedToken{JoinToken: enroll.JoinToken{ID: "77"}, Secret: "77.join-secret-xyz", JoinString: "pin.77.join-secret-xyz"}, nil
}

func (t *tokens) Revoke(_ context.Context, id string) error {
	t.revoked = append(t.revoked, id)
	return nil
}

// installed says the agent is online once the fake install has run.
type installed struct{ marker string }

func (a installed) Online(ids.ID) bool {
	_, err := os.Stat(a.marker)
	return err == nil
}

// TestBootstrapProgress runs bootstraps against a real sshd on loopback
// (root by key) and checks what the progress hears: each step running
// then done, in order, with the facts found; the upload's bytes; and a
// failing install reported at its step with the host's stderr (the join
// token masked) and the host cleaned.
func TestBootstrapProgress(t *testing.T) {
	sd := testenv.StartSSHD(t, "127.0.32.20")
	key, pub := testenv.NewSSHKey(t, "")
	sd.Authorize(t, "root", pub)
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "admq.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	agentDir := t.TempDir()
	bin := filepath.Join(agentDir, "admq-agent-linux-"+runtime.GOARCH)
	// Big enough to be uploaded in several reads: 4 MB of comment.
	if err := os.WriteFile(bin, []byte(fakeAgent+"# "+strings.Repeat("x", 4<<20)+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	srv := fleet.Server{ID: 5, ManagerIP: sd.IP, SSHPort: sd.Port, Account: "root",
		ProgramDir: filepath.Join(root, "opt"), DataDir: filepath.Join(root, "data")}
	tok := &tokens{}
	b, err := bootstrap.New(bootstrap.Config{AgentDir: agentDir, ServiceName: "admqbp-unit-{managerIp}", TunnelAddr: "127.0.0.1:1",
		OnlineTimeout: 10 * time.Second}, bootstrap.Deps{
		Tokens: tok, Agents: installed{filepath.Join(srv.DataDir, "admq-agent", "installed")}, HostKeys: db,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	creds := fleet.SSHCredentials{PrivateKey: key}

	p := &recorded{}
	if err := b.Bootstrap(t.Context(), srv, creds, "op", p); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, strings.Join(p.events, "\n"))
	}
	size := fmt.Sprint(len(fakeAgent) + 4<<20 + 3)
	want := []string{
		`connect running logging in as root to 127\.0\.32\.20:\d+`,
		`connect done logged in as root to 127\.0\.32\.20:\d+; host key \S+ SHA256:\S+ recorded on first use`,
		`detect running `,
		`detect done linux/\w+, logged in as root; no agent service "admqbp-unit-127-0-32-20" installed yet`,
		`upload running sending admq-agent-linux-\w+: 0\.0 of 4\.2 MB \(0%\)`,
		// How many reports come between depends on the upload's speed.
		`* upload running sending admq-agent-linux-\w+: [\d.]+ of 4\.2 MB \(\d+%\), [\d.]+ MB/s`,
		`upload done sent admq-agent-linux-\w+ \(` + size + ` bytes\) to \S+/opt/admq-agent/admq-agent in \S+, [\d.]+ MB/s; sha256 checked on the server`,
		`install running `,
		`install done service admqbp-unit-127-0-32-20 installed and started, state dir \S+/data/admq-agent; its agent dials 127\.0\.0\.1:1`,
		`online running waiting up to 10s for the agent's session at 127\.0\.0\.1:1`,
		`online done online \S+ after the service started \(bootstrap took \S+\)`,
	}
	checkEvents(t, p.events, want)
	if b, err := os.ReadFile(filepath.Join(srv.DataDir, "admq-agent", "installed")); err != nil || string(b) != "pin.77.join-secret-xyz\n" {
		t.Fatalf("the agent got the join token %q (%v)", b, err)
	}

	// The second time the host key is the recorded one; a failing install
	// is reported at its step and undone.
	srv.ID, srv.ProgramDir, srv.DataDir = 6, filepath.Join(root, "opt2"), filepath.Join(root, "data2")
	if err := os.MkdirAll(srv.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.DataDir, "fail-install"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p = &recorded{}
	err = b.Bootstrap(t.Context(), srv, creds, "op", p)
	var ce *bootstrap.CommandError
	if !errors.As(err, &ce) || ce.ExitStatus != 3 {
		t.Fatalf("bootstrap with a failing install = %v, want a CommandError", err)
	}
	last := p.events[len(p.events)-1]
	if !regexp.MustCompile(`^install failed SSH command failed: install agent service \(exit status 3\): ` +
		`cannot install the service: disk on fire; token pin\.\*{6}; what the bootstrap had changed on the server was undone$`).MatchString(last) {
		t.Errorf("last progress %q: want the install failed with its stderr, the token masked, and the undo", last)
	}
	if !regexp.MustCompile(`^connect done .*host key \S+ SHA256:\S+ matches the one recorded on `).MatchString(p.events[1]) {
		t.Errorf("second connect %q: want the recorded host key matched", p.events[1])
	}
	for _, e := range p.events {
		if strings.HasPrefix(e, "online") {
			t.Errorf("the failed bootstrap went on to %q", e)
		}
	}
	if _, err := os.Stat(filepath.Join(srv.ProgramDir, "admq-agent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed bootstrap left %s/admq-agent (%v)", srv.ProgramDir, err)
	}
	if len(tok.revoked) != 1 {
		t.Errorf("tokens revoked %v, want the failed bootstrap's", tok.revoked)
	}
}

// checkEvents matches events against want in order; a want that starts
// with "* " matches any number of events in a row, none included.
func checkEvents(t *testing.T, events, want []string) {
	t.Helper()
	i := 0
	for _, w := range want {
		many := strings.HasPrefix(w, "* ")
		re := regexp.MustCompile("^" + strings.TrimPrefix(w, "* ") + "$")
		if many {
			for i < len(events) && re.MatchString(events[i]) {
				i++
			}
			continue
		}
		if i >= len(events) || !re.MatchString(events[i]) {
			t.Fatalf("progress event %d: %q, want %s; all:\n%s", i, at(events, i), w, strings.Join(events, "\n"))
		}
		i++
	}
	if i != len(events) {
		t.Fatalf("progress events after the last expected: %q", events[i:])
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}
