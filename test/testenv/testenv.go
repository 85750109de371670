// Package testenv is test-only support shared by the suites under test/
// (test/integration, test/e2e, test/browser): a real admq-manager run in
// the test process, admq-agent processes, a client for its console API,
// helpers for the resources the suites look at, and small waiting and
// logging aids.
//
// It is a normal package so that several test packages can import it; no
// production code may. What only one suite needs (namespace hosts and sshd
// in test/e2e) stays in that suite.
package testenv

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: one or more writers
// (a logger, a process's output) and readers that check what was written.
// The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// WriteString appends s to the buffer.
func (b *SyncBuffer) WriteString(s string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.WriteString(s)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond every 100ms until it holds or timeout passes,
// failing the test with what it waited for. It returns how long the wait
// took.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CleanEnv is the test process's environment without ADMQ_* settings,
// which admq-agent and admq-manager would read as flag defaults. Use it
// for the processes a test starts.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADMQ_") {
			env = append(env, kv)
		}
	}
	return env
}
