package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds admq-agent and admq-manager built for the tests that run
// them as the service manager (or an operator) would.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "admq-agent-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// buildBin builds ./cmd/<name> once per test binary run.
func buildBin(t testing.TB, name string) string {
	t.Helper()
	out := filepath.Join(binDir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, "github.com/admq/admq-manager/cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the error or on stderr
	}{
		{"no command", nil, exitUsage, "no command given"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", []string{"run", "--frob"}, exitUsage, "flag provided but not defined: -frob"},
		{"stray argument", []string{"status", "extra"}, exitUsage, "unexpected arguments"},
		{"bad log format", []string{"run", "--manager", "m:1", "--log-format", "xml"}, exitUsage, "xml"},
		{"run without manager", []string{"run", "--state-dir", "/nonexistent"}, exitConfig, "--manager is required"},
		{"run without token", []string{"run", "--manager", "127.0.0.1:1", "--state-dir", "/nonexistent/state"}, exitConfig, "/nonexistent/state/join-token"},
		{"bad service name", []string{"status", "--service-name", "../etc/passwd"}, 1, "service name"},
		{"install without token", []string{"install", "--manager", "m:1", "--state-dir", "/nonexistent/state"}, 1, "--token is required"},
		{"help", []string{"help"}, 0, ""},
		{"command help", []string{"install", "-h"}, 0, "-service-name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			if errors.Is(err, flag.ErrHelp) {
				err = nil
			}
			if got := exitCode(err); got != tc.code {
				t.Errorf("exit code %d; want %d (err %v)", got, tc.code, err)
			}
			msg := stderr.String()
			if err != nil {
				msg += err.Error()
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("output %q and error do not mention %q", msg, tc.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run([]string{"version"}, &stdout, io.Discard); err != nil || strings.TrimSpace(stdout.String()) == "" {
		t.Errorf("version: %q, %v", stdout.String(), err)
	}
}
