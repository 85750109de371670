// Package integration runs a real admq-manager (in process) against real
// admq-agent processes on 127.0.0.1 and checks what an operator would see:
// the console API, the agents' exit status and their logs.
package integration

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/admq/admq-manager/test/testenv"
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

// buildAgent compiles ./cmd/admq-agent into dir.
func buildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "admq-agent")
	return bin, testenv.Build(bin, "./cmd/admq-agent")
}

// integrationTest skips under -short and otherwise marks t parallel.
func integrationTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds admq-agent and runs a real manager and agent processes; skipped with -short")
	}
	t.Parallel()
}
