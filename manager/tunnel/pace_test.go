package tunnel_test

import (
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// TestAgentsAreToldHowToSpreadReconnects checks the advice in both
// answers an agent gets: the connected fleet at the handshake rate.
func TestAgentsAreToldHowToSpreadReconnects(t *testing.T) {
	// 2 handshakes a second: each connected agent adds 1.5 x half a second.
	e := newEnv(t, tunnel.Config{HandshakeRate: 2})
	tok := e.token(t, 2)
	for _, ip := range []string{"127.0.0.21", "127.0.0.22"} {
		connected, _ := e.startAgentAt(t, tok, t.TempDir(), ip)
		id, _ := ids.Parse(<-connected)
		waitFor(t, "session", func() bool { return e.hub.Online(id) })
	}
	dir := t.TempDir()
	connected, stop := e.startAgentAt(t, e.token(t, 1), dir, "127.0.0.23")
	id, _ := ids.Parse(<-connected)
	stop()
	waitFor(t, "the third agent to leave", func() bool { return !e.hub.Online(id) })
	cc, _ := enrolledSession(t, e, dir)
	waitFor(t, "the hand-made session", func() bool { return e.hub.Connected() == 3 })
	mc := agentv1.NewManagerServiceClient(cc)
	hb, err := mc.Heartbeat(t.Context(), &agentv1.HeartbeatRequest{Facts: &agentv1.Facts{Hostname: "h", Cpus: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := mc.ReportMetrics(t.Context(), &agentv1.MetricsReport{CollectedAtUnixMs: time.Now().UnixMilli(), Hostname: "h", CpuCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if hb.GetReconnectSpreadMs() != 2250 || ack.GetReconnectSpreadMs() != 2250 {
		t.Fatalf("reconnect spread %d ms (heartbeat), %d ms (metrics ack); want 2250 for 3 agents at 2 handshakes/s",
			hb.GetReconnectSpreadMs(), ack.GetReconnectSpreadMs())
	}
}
