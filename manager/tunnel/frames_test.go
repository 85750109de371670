package tunnel_test

import (
	"crypto/tls"
	"io"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/muxframe"
	"github.com/admq/admq-manager/internal/shortcall"
	"github.com/admq/admq-manager/manager/tunnel"
)

const reportCalls = "/admq.agent.v1.ManagerService/ReportMetrics"

func (e *env) frames(t *testing.T, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_report_frames_total", result))
}

func (e *env) reportCalls(t *testing.T) float64 {
	t.Helper()
	return testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_rpc_duration_seconds", reportCalls))
}

// TestReportsGoAsFrames: an agent and a manager that both take
// out-of-band frames agree on them; after two calls (the first report,
// and one more whose answer agrees on the reconnect spread) the reports
// come as frames at the manager's interval, and each one is the server's
// latest in the fleet scrape.
func TestReportsGoAsFrames(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: time.Second})
	connected, _ := e.startAgent(t, e.token(t, 1), t.TempDir())
	id, _ := ids.Parse(<-connected)
	waitFor(t, "three reports as frames", func() bool { return e.frames(t, "ok") >= 3 })
	if !e.metrics.Reporting(id) {
		t.Fatal("the server does not count as reporting")
	}
	before := testutil.ToFloat64(mustGaugeFrom(t, e, "admq_node_last_report_timestamp_seconds"))
	n := e.frames(t, "ok")
	waitFor(t, "a later frame", func() bool { return e.frames(t, "ok") > n })
	waitFor(t, "the frame's report in the scrape", func() bool {
		return testutil.ToFloat64(mustGaugeFrom(t, e, "admq_node_last_report_timestamp_seconds")) > before
	})
	for _, r := range []string{"invalid", "unknown_server", "broken"} {
		if v := e.frames(t, r); v != 0 {
			t.Errorf("%v frames %s", v, r)
		}
	}
	// A session that a starved machine let time out starts over with
	// calls; none broke on a frame (broken is 0).
	sessions := 1 + len(connected)
	if calls := e.reportCalls(t); calls < 2 || calls > float64(2*sessions) {
		t.Errorf("%v reports went as calls in %d sessions, want 2 a session (the first, and one whose answer agrees)", calls, sessions)
	}
}

// TestAgentWithoutFramesKeepsCalling: an agent from before out-of-band
// frames (it offers short calls only) keeps reporting with calls to a
// manager that takes frames.
func TestAgentWithoutFramesKeepsCalling(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: time.Second})
	connected, _ := e.runAgent(t, e.token(t, 1), t.TempDir(), func(c *agenttunnel.Config) { c.NoReportFrames = true })
	id, _ := ids.Parse(<-connected)
	waitFor(t, "four reports as calls", func() bool { return e.reportCalls(t) >= 4 })
	if !e.metrics.Reporting(id) {
		t.Fatal("the server does not count as reporting")
	}
	if v := e.frames(t, ""); v != 0 {
		t.Fatalf("%v frames from an agent that sends none", v)
	}
}

// TestManagerWithoutFramesGetsNone: a manager from before out-of-band
// frames (it offers short calls only) never gets one, which would end the
// session in its yamux: the agent reports with calls on one session.
func TestManagerWithoutFramesGetsNone(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: time.Second, NoReportFrames: true})
	connected, _ := e.startAgent(t, e.token(t, 1), t.TempDir())
	id, _ := ids.Parse(<-connected)
	waitFor(t, "five reports as calls", func() bool { return e.reportCalls(t) >= 5 })
	if !e.metrics.Reporting(id) || !e.hub.Online(id) {
		t.Fatal("the agent is not reporting on a live session")
	}
	if v := e.frames(t, ""); v != 0 {
		t.Fatalf("%v frames reached a manager that takes none", v)
	}
	select {
	case again := <-connected:
		t.Fatalf("the agent connected again (%s): the session broke", again)
	default:
	}
}

// frameSession is an enrolled agent's session that agreed on frames,
// with the connection below its yamux to send them.
func frameSession(t *testing.T, e *env, dir string) (*muxframe.BeatConn, *yamux.Session) {
	t.Helper()
	tc := agentConfig(t, dir)
	tc.NextProtos = []string{muxframe.FramesALPN, shortcall.ALPN}
	conn, err := tls.Dial("tcp", e.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != muxframe.FramesALPN {
		t.Fatalf("negotiated %q", p)
	}
	bc := muxframe.NewBeatConn(conn, time.Hour)
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	mux, err := yamux.Client(bc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	if _, err := mux.Ping(); err != nil {
		t.Fatal(err)
	}
	return bc, mux
}

// TestBadFramesFromAgent: every frame is an agent's input. A report that
// does not decode, or that no real host sends, is dropped and counted,
// and the session goes on; a report of a server the metrics store does
// not know (deleted, or not yet reported by call) is dropped; bytes that
// cannot be a frame end the session.
func TestBadFramesFromAgent(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: time.Hour})
	dir := t.TempDir()
	connected, stop := e.startAgent(t, e.token(t, 1), dir)
	id, _ := ids.Parse(<-connected)
	waitFor(t, "the agent's first report", func() bool { return e.metrics.Reporting(id) })
	stop()
	waitFor(t, "the agent's session to end", func() bool { return !e.hub.Online(id) })

	bc, mux := frameSession(t, e, dir)
	waitFor(t, "the session", func() bool { return e.hub.Online(id) })
	hostSeries := func(host string) float64 {
		return testutil.ToFloat64(collectorFor(t, e.fleetReg, "admq_node_up", host))
	}
	send := func(what string, body []byte) {
		t.Helper()
		if err := bc.Send(muxframe.TypeReport, body); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	marshal := func(host string, cpu float64) []byte {
		r := goodReport()
		r.Hostname, r.CpuUsageRatio = host, cpu
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	send("garbage", []byte{0xff, 0xff, 0xff})
	send("NaN cpu usage", marshal("bad-host", math.NaN()))
	send("cpu usage above 1", marshal("bad-host", 1.5))
	waitFor(t, "three invalid frames", func() bool { return e.frames(t, "invalid") == 3 })
	if hostSeries("bad-host") != 0 {
		t.Fatal("an invalid report reached the scrape")
	}
	if _, err := mux.Ping(); err != nil || !e.hub.Online(id) {
		t.Fatalf("the session did not go on after invalid reports: %v", err)
	}

	send("a good report", marshal("frame-host", 0.25))
	waitFor(t, "the good report in the scrape", func() bool { return hostSeries("frame-host") == 1 })
	if e.frames(t, "ok") != 1 {
		t.Fatalf("ok frames %v, want 1", e.frames(t, "ok"))
	}

	e.metrics.Forget(id)
	send("a report of a server the store forgot", marshal("forgotten-host", 0.25))
	waitFor(t, "an unknown-server frame", func() bool { return e.frames(t, "unknown_server") == 1 })
	if hostSeries("forgotten-host") != 0 {
		t.Fatal("a report of an unknown server was kept without a lookup")
	}

	if err := bc.Send(9, []byte("a frame of a type no manager knows")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mux.CloseChan():
	case <-time.After(20 * time.Second):
		t.Fatal("the session outlived a frame of an unknown type")
	}
	waitFor(t, "the session to end", func() bool { return !e.hub.Online(id) })
	if e.frames(t, "broken") != 1 {
		t.Fatalf("broken %v, want 1", e.frames(t, "broken"))
	}
}
