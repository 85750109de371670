package tunnel_test

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// TestIdleSessionsHoldNoGoroutineOfTheManager: once agents that speak
// short calls are connected and have reported, the manager waits for
// nothing of theirs in goroutines of its own: no accept loop, no wait for
// the session's end, no gRPC transport. (yamux's reader and writer per
// session remain; they run in yamux's code.) After the agents leave,
// their sessions are unregistered all the same.
func TestIdleSessionsHoldNoGoroutineOfTheManager(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	tok := e.token(t, 3)
	var agents []ids.ID
	var stops []func()
	for i := range 3 {
		connected, stop := e.startAgentAt(t, tok, t.TempDir(), fmt.Sprintf("127.0.8.%d", i+1))
		id, _ := ids.Parse(<-connected)
		waitFor(t, "session", func() bool { return e.hub.Online(id) })
		agents, stops = append(agents, id), append(stops, stop)
	}
	// The first reports (the heartbeats) go out on connect; wait for their
	// facts, then for their calls to be over.
	waitFor(t, "every agent's facts", func() bool {
		e.presence.Flush(t.Context())
		for _, id := range agents {
			if srv, err := e.db.Server(t.Context(), id); err != nil || srv.Facts.CPUs == 0 {
				return false
			}
		}
		return true
	})
	perSession := []string{
		"manager/tunnel.(*Hub).handle", "manager/tunnel.(*Hub).acceptStream", "manager/tunnel.(*Hub).serveStream",
		"manager/tunnel.(*Hub).endSession", "grpc/internal/transport.(*http2Server)",
	}
	var held string
	deadline := time.Now().Add(10 * time.Second)
	for {
		held = goroutinesIn(t, perSession)
		if held == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held != "" {
		t.Fatalf("goroutines held for idle sessions:\n%s", held)
	}
	for _, stop := range stops {
		stop()
	}
	waitFor(t, "every session to end", func() bool { return e.hub.Connected() == 0 })
}

// goroutinesIn returns the stacks of goroutines that run any of funcs.
func goroutinesIn(t *testing.T, funcs []string) string {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	var out []string
	for stack := range strings.SplitSeq(b.String(), "\n\n") {
		for _, f := range funcs {
			if strings.Contains(stack, f) {
				out = append(out, stack)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
