// Package integration runs a real admq-manager (in process) against real
// admq-agent processes on 127.0.0.1 and checks what an operator would see:
// the console API, the agents' exit status and their logs.
package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// agentBin is the admq-agent binary built once for the whole package; empty
// under -short, when every test skips.
var agentBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "admq-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(1)
	}
	bin, err := buildAgent(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	agentBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAgent compiles ./cmd/admq-agent from the module root into dir.
func buildAgent(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (go env GOMOD = %q)", mod)
	}
	bin := filepath.Join(dir, "admq-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/admq-agent")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build admq-agent: %w\n%s", err, out)
	}
	return bin, nil
}

// integrationTest skips under -short and otherwise marks t parallel.
func integrationTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds admq-agent and runs a real manager and agent processes; skipped with -short")
	}
	t.Parallel()
}
