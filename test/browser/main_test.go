// Package browser drives the web console in a real headless Chromium
// (Debian's chromium package, through chromedp) against a real manager
// with real admq-agent processes, and checks what an operator sees: every
// job done through the UI only, no console errors or failed requests, an
// accessibility pass (axe-core) on every page, and screenshots of each
// page saved under test/browser/artifacts (git-ignored).
//
// The tests skip, saying why, where no chromium is installed; test/setup.sh
// installs it. Chromium runs without network features (no QUIC, no
// component updates, no sync) and with a fresh profile each time.
//
// The suite holds the lock of the suites that make network namespaces
// (hosts.Lock) while it runs: Chromium aborts every request in flight with
// ERR_NETWORK_CHANGED when links and addresses come and go on the
// machine, which test/e2e and test/chaos do all the time.
package browser

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/admq/admq-manager/test/hosts"
)

var (
	// agentBin is the admq-agent binary built once for the package.
	agentBin string
	// chromium is the browser's path; empty when none is installed.
	chromium string
	// skipWhy says why every test skips, when it does.
	skipWhy string
)

func TestMain(m *testing.M) {
	flag.Parse()
	switch {
	case testing.Short():
		skipWhy = "browser tests run a manager, agents and Chromium; skipped with -short"
	default:
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
		if chromium == "" {
			skipWhy = "no chromium on PATH: install Debian's chromium package (test/setup.sh does, as root) to run the browser tests"
		}
	}
	if skipWhy != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "admq-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
	agentBin, err = buildAgent(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	unlock, err := hosts.Lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	unlock()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleRoot is the directory of go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

func buildAgent(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "admq-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/admq-agent")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build admq-agent: %w\n%s", err, out)
	}
	return bin, nil
}

// needBrowser skips t when the browser tests cannot run here.
func needBrowser(t testing.TB) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}
