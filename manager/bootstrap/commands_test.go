package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sh runs script with the local /bin/sh, as the host would.
func sh(t *testing.T, script, stdin string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func TestQuote(t *testing.T) {
	for _, s := range []string{
		"", "plain", "with space", "it's", "''", `"double"`, "$(touch /tmp/pwned)", "`id`",
		"a\\b", "semi;colon && rm -rf /", "new\nline", "tab\there", "*?[glob]", "~user", "-n", "'; echo x; '",
	} {
		t.Run(s, func(t *testing.T) {
			out, _, err := sh(t, "printf %s "+quote(s), "")
			if err != nil || out != s {
				t.Fatalf("sh printed %q (%v), want %q", out, err, s)
			}
			// Nested, as runRoot does: sh -c '<script with quoted args>'.
			out, _, err = sh(t, "sh -c "+quote("printf %s "+quote(s)), "")
			if err != nil || out != s {
				t.Fatalf("nested sh printed %q (%v), want %q", out, err, s)
			}
		})
	}
}

func TestParseUname(t *testing.T) {
	cases := []struct {
		in      string
		want    platform
		wantErr bool
	}{
		{"Linux x86_64", platform{"linux", "amd64"}, false},
		{"Linux x86_64\n", platform{"linux", "amd64"}, false},
		{"Linux aarch64", platform{"linux", "arm64"}, false},
		{"Linux arm64", platform{"linux", "arm64"}, false},
		{"Linux armv7l", platform{}, true},
		{"Linux i686", platform{}, true},
		{"Darwin arm64", platform{}, true},
		{"FreeBSD amd64", platform{}, true},
		{"", platform{}, true},
		{"Linux", platform{}, true},
		{"Linux x86_64 extra", platform{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseUname(c.in)
			if c.wantErr {
				if !errors.Is(err, ErrUnsupportedPlatform) {
					t.Fatalf("parseUname(%q) = %v, %v; want ErrUnsupportedPlatform", c.in, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("parseUname(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
	p, root, err := parseDetect("Linux x86_64\n0\n")
	if err != nil || !root || p != (platform{"linux", "amd64"}) {
		t.Fatalf("parseDetect root = %v %v %v", p, root, err)
	}
	if _, root, err := parseDetect("Linux aarch64\n1001\n"); err != nil || root {
		t.Fatalf("parseDetect user = %v %v", root, err)
	}
	if _, _, err := parseDetect("Linux x86_64\n"); err == nil {
		t.Fatal("parseDetect accepted output without a uid")
	}
	if got := agentFile(platform{"linux", "arm64"}); got != "admq-agent-linux-arm64" {
		t.Fatalf("agentFile = %q", got)
	}
}

func TestExpandServiceName(t *testing.T) {
	cases := []struct {
		template, ip, want string
	}{
		{"admq-agent", "198.18.1.2", "admq-agent"},
		{"admq-agent-{managerIp}", "198.18.1.2", "admq-agent-198-18-1-2"},
		{"agent@{managerIp}", "2001:db8::1", "agent@2001-db8--1"},
		{"bad name", "198.18.1.2", ""},
		{"-leading", "198.18.1.2", ""},
		{"x/../../etc/passwd", "198.18.1.2", ""},
		{"", "198.18.1.2", ""},
		{strings.Repeat("a", 65), "198.18.1.2", ""},
	}
	for _, c := range cases {
		got, err := expandServiceName(c.template, c.ip)
		if c.want == "" {
			if err == nil {
				t.Errorf("expandServiceName(%q) = %q, want an error", c.template, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("expandServiceName(%q, %q) = %q, %v; want %q", c.template, c.ip, got, err, c.want)
		}
	}
}

func TestRedactAndBounds(t *testing.T) {
	if got := redact("sudo: pw hunter2 wrong; token ab12cd.secret", "hunter2", "ab12cd.secret", ""); got != "sudo: pw ****** wrong; token ******" {
		t.Fatalf("redact = %q", got)
	}
	if got := tail("ééé", 3); got != "…é" {
		t.Fatalf("tail = %q", got)
	}
	if got := truncate("ééé", 3); got != "é…" {
		t.Fatalf("truncate = %q", got)
	}
	c := &capped{max: 4, keepTail: true}
	c.Write([]byte("abc"))
	c.Write([]byte("defg"))
	if c.String() != "defg" {
		t.Fatalf("tail buffer = %q", c.String())
	}
	h := &capped{max: 4}
	h.Write([]byte("abc"))
	h.Write([]byte("defg"))
	if h.String() != "abcd" {
		t.Fatalf("head buffer = %q", h.String())
	}
}

// TestScripts runs the remote scripts with the local shell on a temp dir:
// the same commands the host runs, minus SSH.
func TestScripts(t *testing.T) {
	root := filepath.Join(t.TempDir(), "it's a \"dir\"")
	l := newLayout(filepath.Join(root, "prog"), filepath.Join(root, "data"), "admq-agent-test")
	payload := strings.Repeat("agent binary\n", 1000)
	sum := sha256.Sum256([]byte(payload))
	good := hex.EncodeToString(sum[:])

	out, _, err := sh(t, probeScript(l), "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseProbe(out)
	if err != nil || p.AgentDirExisted || p.StateDirExisted || len(p.ServiceFiles) != 0 {
		t.Fatalf("probe of an empty host = %+v, %v (output %q)", p, err, out)
	}

	// A damaged upload leaves nothing.
	_, stderr, err := sh(t, uploadScript(l, strings.Repeat("0", 64)), payload)
	if err == nil || !strings.Contains(stderr, "damaged") {
		t.Fatalf("upload with a wrong sum: err %v, stderr %q", err, stderr)
	}
	if entries, _ := os.ReadDir(l.AgentDir); len(entries) != 0 {
		t.Fatalf("failed upload left %v", entries)
	}

	if _, stderr, err := sh(t, uploadScript(l, good), payload); err != nil {
		t.Fatalf("upload: %v: %s", err, stderr)
	}
	got, err := os.ReadFile(l.Binary)
	if err != nil || string(got) != payload {
		t.Fatalf("uploaded binary: %v", err)
	}
	if fi, _ := os.Stat(l.Binary); fi.Mode().Perm() != 0o755 {
		t.Fatalf("binary mode %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(l.AgentDir); len(entries) != 1 {
		t.Fatalf("agent dir holds %v, want only the binary", entries)
	}
	if _, stderr, err := sh(t, stateDirScript(l), ""); err != nil {
		t.Fatalf("state dir: %v: %s", err, stderr)
	}
	if fi, err := os.Stat(l.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v, %v", fi, err)
	}

	out, _, _ = sh(t, probeScript(l), "")
	if p, err := parseProbe(out); err != nil || !p.AgentDirExisted || !p.StateDirExisted {
		t.Fatalf("probe after install = %+v, %v", p, err)
	}

	// Removal takes the directories the bootstrap made...
	if _, stderr, err := sh(t, removeScript(l, probeResult{}), ""); err != nil {
		t.Fatalf("remove: %v: %s", err, stderr)
	}
	for _, d := range []string{l.AgentDir, l.StateDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s survived removal: %v", d, err)
		}
	}
	// ...but only its files in directories that were there before.
	os.MkdirAll(l.AgentDir, 0o755)
	os.MkdirAll(l.StateDir, 0o700)
	os.WriteFile(filepath.Join(l.AgentDir, "keep"), nil, 0o644)
	os.WriteFile(l.Binary, nil, 0o755)
	os.WriteFile(filepath.Join(l.StateDir, "agent.id"), nil, 0o600)
	if _, stderr, err := sh(t, removeScript(l, probeResult{AgentDirExisted: true, StateDirExisted: true}), ""); err != nil {
		t.Fatalf("remove: %v: %s", err, stderr)
	}
	if _, err := os.Stat(l.Binary); !os.IsNotExist(err) {
		t.Fatal("binary survived removal")
	}
	for _, f := range []string{filepath.Join(l.AgentDir, "keep"), filepath.Join(l.StateDir, "agent.id")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("removal took %s, which was there before: %v", f, err)
		}
	}
}

func TestOutputThroughFile(t *testing.T) {
	_, stderr, err := sh(t, outputThroughFile("sh -c "+quote("echo out; echo err >&2; exit 3")), "")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(stderr, "out") || !strings.Contains(stderr, "err") {
		t.Fatalf("stderr %q lacks the command's output", stderr)
	}
	// A background child that keeps the output open must not hold us.
	done := make(chan error, 1)
	go func() {
		_, _, err := sh(t, outputThroughFile("sh -c "+quote("sleep 3 & echo started")), "")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a daemonised child held the command open")
	}
}

// TestInstallScriptTakesTokenFromStdin checks that the join token reaches
// admq-agent install through its environment, never its command line.
func TestInstallScriptTakesTokenFromStdin(t *testing.T) {
	dir := t.TempDir()
	l := newLayout(filepath.Join(dir, "prog"), filepath.Join(dir, "data"), "svc")
	os.MkdirAll(l.AgentDir, 0o755)
	seen := filepath.Join(dir, "seen")
	fake := "#!/bin/sh\nprintf 'token=%s\\nargs=%s\\n' \"$ADMQ_JOIN_TOKEN\" \"$*\" > " + quote(seen) + "\necho installed\n"
	if err := os.WriteFile(l.Binary, []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	const tok = "abc123.0123456789abcdef::sha256:ff"
	script := installScript(l, installArgs{Manager: "198.18.0.1:12306", AdvertiseIP: "198.18.0.2"})
	if strings.Contains(script, tok) {
		t.Fatal("the script holds the token")
	}
	_, stderr, err := sh(t, script, tok+"\n")
	if err != nil || !strings.Contains(stderr, "installed") {
		t.Fatalf("install: %v: %s", err, stderr)
	}
	b, _ := os.ReadFile(seen)
	want := "token=" + tok + "\nargs=install --manager 198.18.0.1:12306 --state-dir " + l.StateDir + " --service-name svc --advertise-ip 198.18.0.2\n"
	if string(b) != want {
		t.Fatalf("agent saw:\n%s\nwant:\n%s", b, want)
	}
	if _, stderr, err := sh(t, script, ""); err == nil || !strings.Contains(stderr, "no join token") {
		t.Fatalf("without a token: %v %s", err, stderr)
	}
}
