package service

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kservice "github.com/kardianos/service"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestSystemdUnitGolden(t *testing.T) {
	c := Config{Name: DefaultName}
	c.Agent.ManagerAddr = "manager.example:12306"
	c.Agent.StateDir = "/var/lib/admq-agent"
	c.Agent.AdvertiseIP = "198.18.0.7"
	got, err := SystemdUnit(Unit{Name: c.Name, Executable: "/usr/local/bin/admq-agent", Arguments: c.Arguments()})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "admq-agent.service")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("unit differs from %s (go test -run %s -update rewrites it):\n%s", golden, t.Name(), got)
	}
}

// TestSystemdUnitVerifies renders units as install and the package do and
// has systemd check them. systemd-analyze verify needs no running systemd,
// but it does check that ExecStart's binary exists: each case gets one.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, tc := range []struct {
		name, exe string
		args      []string
	}{
		{"admq-agent", "admq-agent", []string{"run", "--log-format", "json"}},
		{"admq-agent-test", "admq-agent", Config{Name: "admq-agent-test", Agent: agentConfig("10.0.0.1:12306", "/var/lib/admq-agent")}.Arguments()},
		{"admq-agent@10-0-0-1", "admq-agent", []string{"run"}},
		{"odd_name.2", "dir with space/admq agent", []string{"run", "--state-dir", `/srv/a "b" 100% $HOME\x`, "--manager", "[::1]:12306"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			exe := filepath.Join(dir, tc.exe)
			if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			unit, err := SystemdUnit(Unit{Name: tc.name, Executable: exe, Arguments: tc.args})
			if err != nil {
				t.Fatal(err)
			}
			checkUnit(t, analyze, filepath.Join(dir, tc.name+".service"), unit)
		})
	}
}

// systemdAnalyze returns the path of systemd-analyze, or skips the test.
func systemdAnalyze(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): unit files not verified")
	}
	return p
}

// checkUnit writes unit to path and fails unless systemd-analyze verify
// accepts it without a word: unknown keys are only warnings to it.
func checkUnit(t testing.TB, analyze, path, unit string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(analyze, "verify", "--man=no", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s\nunit:\n%s", path, err, out.String(), unit)
	}
}

func TestExecWord(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"run", "run"},
		{"--manager", "--manager"},
		{"10.0.0.1:12306", "10.0.0.1:12306"},
		{"/var/lib/admq-agent", "/var/lib/admq-agent"},
		{"", `""`},
		{"a b", `"a b"`},
		{"100%", `"100%%"`},
		{"$HOME", `"$$HOME"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"semi;colon", `"semi;colon"`},
	} {
		got, err := execWord(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("execWord(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSystemdUnitRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		u    Unit
		want string
	}{
		{"relative executable", Unit{Name: "a", Executable: "admq-agent"}, "absolute path"},
		{"empty name", Unit{Executable: "/x"}, "service name"},
		{"slash in name", Unit{Name: "../x", Executable: "/x"}, "service name"},
		{"leading dash", Unit{Name: "-x", Executable: "/x"}, "service name"},
		{"leading dot", Unit{Name: ".x", Executable: "/x"}, "service name"},
		{"template unit", Unit{Name: "x@", Executable: "/x"}, "service name"},
		{"too long", Unit{Name: strings.Repeat("x", 65), Executable: "/x"}, "service name"},
		{"newline", Unit{Name: "a", Executable: "/x", Arguments: []string{"a\nb"}}, "control characters"},
		{"template braces", Unit{Name: "a", Executable: "/x", Arguments: []string{"{{.Name}}"}}, `"{{"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SystemdUnit(tc.u)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestKardianosWritesUnitVerbatim installs through kardianos/service's
// systemd backend, whatever init this machine runs, and checks that the
// unit file it writes is SystemdUnit's text unchanged: kardianos reads a
// custom SystemdScript as a template of its own. Where systemd is not
// running, its systemctl calls fail after the file is written.
func TestKardianosWritesUnitVerbatim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("writes to /etc/systemd/system: needs root")
	}
	if _, err := os.Stat("/etc/systemd/system"); err != nil {
		t.Skip("no /etc/systemd/system")
	}
	var sys kservice.System
	for _, s := range kservice.AvailableSystems() {
		if s.String() == "linux-systemd" {
			sys = s
		}
	}
	if sys == nil {
		t.Skip("kardianos/service has no systemd backend here")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("admq-agent-test-%d", os.Getpid())
	c := Config{Name: name, Agent: agentConfig("10.0.0.1:12306", "/var/lib/"+name)}
	unit, err := SystemdUnit(Unit{Name: name, Executable: exe, Arguments: c.Arguments()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sys.New(nopProgram{}, &kservice.Config{Name: name, Executable: exe, Arguments: c.Arguments(),
		Option: kservice.KeyValue{"SystemdScript": unit}})
	if err != nil {
		t.Fatal(err)
	}
	path := "/etc/systemd/system/" + name + ".service"
	t.Cleanup(func() {
		removeDefinition(s, name)
		os.Remove(path)
	})
	err = s.Install()
	t.Logf("kardianos Install: %v", err)
	got, rerr := os.ReadFile(path)
	if rerr != nil {
		t.Fatalf("no unit written: %v (Install: %v)", rerr, err)
	}
	if string(got) != unit {
		t.Errorf("kardianos wrote\n%s\nwant\n%s", got, unit)
	}
}
