package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// Keepalive timings of these tests: the manager pings an agent without
// heartbeats after keepAlive of quiet and closes any session quiet for
// idle; agents with heartbeats write one after beat of quiet, longer than
// keepAlive, so that a manager that pinged them anyway would. Agents
// report no metrics and ping the manager only once an hour, so that
// heartbeats (or pongs) are all they send once connected.
const (
	keepAlive = 300 * time.Millisecond
	idle      = 2 * time.Second
	beat      = 500 * time.Millisecond
)

func keepaliveEnv(t *testing.T) *env {
	return newEnv(t, tunnel.Config{KeepAliveInterval: keepAlive, IdleTimeout: idle})
}

func quietAgent(beats bool) func(*agenttunnel.Config) {
	return func(cfg *agenttunnel.Config) {
		cfg.MetricsInterval = -1
		cfg.HeartbeatInterval = time.Hour
		cfg.KeepAliveInterval = time.Hour
		cfg.BeatInterval = beat
		if !beats {
			cfg.BeatInterval = -1
		}
	}
}

// staysConnected checks that the agent's first session is still the one
// it has, and is online, after several idle timeouts.
func staysConnected(t *testing.T, e *env, connected chan string) ids.ID {
	t.Helper()
	id, err := ids.Parse(<-connected)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session", func() bool { return e.hub.Online(id) })
	time.Sleep(3 * idle)
	if !e.hub.Online(id) {
		t.Fatalf("agent offline after %v", 3*idle)
	}
	select {
	case <-connected:
		t.Fatalf("agent connected again within %v: its first session was closed", 3*idle)
	default:
	}
	if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_silent_sessions_closed_total", "")); got != 0 {
		t.Fatalf("%v sessions closed as silent", got)
	}
	return id
}

// TestAgentWithHeartbeatsIsNotPinged: an agent that sends heartbeats and
// nothing else stays connected past the idle timeout, and the manager
// sends it no ping.
func TestAgentWithHeartbeatsIsNotPinged(t *testing.T) {
	t.Parallel()
	e := keepaliveEnv(t)
	connected, _ := e.runAgent(t, e.token(t, 1), t.TempDir(), quietAgent(true))
	staysConnected(t, e, connected)
	if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_keepalive_pings_total", "")); got != 0 {
		t.Fatalf("manager sent %v pings to an agent that sends heartbeats", got)
	}
}

// TestAgentWithoutHeartbeatsIsPinged: an agent from before heartbeats,
// quiet but answering pings, is pinged and kept.
func TestAgentWithoutHeartbeatsIsPinged(t *testing.T) {
	t.Parallel()
	e := keepaliveEnv(t)
	connected, _ := e.runAgent(t, e.token(t, 1), t.TempDir(), quietAgent(false))
	staysConnected(t, e, connected)
	if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_keepalive_pings_total", "")); got == 0 {
		t.Fatal("manager sent no ping to a quiet agent without heartbeats")
	}
}

// TestSilentAgentIsClosed: an agent whose link stops carrying anything
// (its host hung, the socket stays open) is closed after the idle
// timeout, whether it sent heartbeats or not.
func TestSilentAgentIsClosed(t *testing.T) {
	for _, beats := range []bool{true, false} {
		t.Run(fmt.Sprintf("heartbeats=%v", beats), func(t *testing.T) {
			t.Parallel()
			e := keepaliveEnv(t)
			var link freezableDial
			connected, _ := e.runAgent(t, e.token(t, 1), t.TempDir(), func(cfg *agenttunnel.Config) {
				quietAgent(beats)(cfg)
				cfg.Dial = link.dial
			})
			id, _ := ids.Parse(<-connected)
			waitFor(t, "session", func() bool { return e.hub.Online(id) })
			link.freeze()
			waitFor(t, "the silent agent's session to close", func() bool { return !e.hub.Online(id) })
			if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_silent_sessions_closed_total", "")); got != 1 {
				t.Fatalf("admq_tunnel_silent_sessions_closed_total = %v, want 1", got)
			}
			// The sweeps saw its silence grow towards the idle timeout.
			if longest := longestSilenceSeen(t, e); longest <= idle.Seconds()/2 {
				t.Fatalf("admq_tunnel_longest_silence_seconds saw at most %vs of silence, want more than %v", longest, idle/2)
			}
		})
	}
}

// longestSilenceSeen is the upper bound of the highest bucket of
// admq_tunnel_longest_silence_seconds with an observation in it.
func longestSilenceSeen(t *testing.T, e *env) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "admq_tunnel_longest_silence_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		below := uint64(0)
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() == h.GetSampleCount() {
				if b.GetCumulativeCount() == below {
					return 0
				}
				return b.GetUpperBound()
			}
			below = b.GetCumulativeCount()
		}
		return math.Inf(1)
	}
	t.Fatal("no admq_tunnel_longest_silence_seconds")
	return 0
}

// freezableDial dials TCP connections that freeze on demand: what the
// agent writes is swallowed and no new connection can be made, as if its
// host hung.
type freezableDial struct {
	frozen atomic.Bool
}

func (d *freezableDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.frozen.Load() {
		return nil, errors.New("frozen")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &freezableConn{Conn: c, frozen: &d.frozen}, nil
}

func (d *freezableDial) freeze() { d.frozen.Store(true) }

type freezableConn struct {
	net.Conn
	frozen *atomic.Bool
}

func (c *freezableConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}
