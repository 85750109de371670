package tunnel_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/tlsutil"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/tunnel"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// ticketSecret is a manager's ticket secret, as pki.TicketSecret keeps it.
func ticketSecret(t *testing.T) []byte {
	t.Helper()
	s, err := pki.TicketSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// enrolledAgent enrolls a real agent and stops it; it returns the agent's
// id and its TLS config, by hand, for the test to dial with.
func enrolledAgent(t *testing.T, e *env) (ids.ID, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	connected, stop := e.startAgent(t, e.token(t, 1), dir)
	id, err := ids.Parse(<-connected)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	waitFor(t, "the agent to leave", func() bool { return !e.hub.Online(id) })
	tc := agentConfig(t, dir)
	// The session cache is keyed by server name; a restarted manager in
	// these tests listens on another port.
	tc.ServerName = "admq-manager"
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	return id, tc
}

// heartbeat opens a session with tc, makes one Heartbeat call on it (which
// also reads the session ticket the manager sends) and closes it. It
// returns whether the handshake resumed a session and the call's error.
func heartbeat(t *testing.T, addr string, tc *tls.Config) (resumed bool, err error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	resumed = conn.ConnectionState().DidResume
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	mux, err := yamux.Client(conn, yc)
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Close()
	cc, err := grpc.NewClient("passthrough:///manager",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return mux.Open() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = agentv1.NewManagerServiceClient(cc).Heartbeat(t.Context(), &agentv1.HeartbeatRequest{Facts: &agentv1.Facts{Hostname: "h", Cpus: 1}})
	return resumed, err
}

// restarted serves a second hub on e's CA, store and ticket secret, with a
// new serving certificate: the manager after a restart.
func restarted(t *testing.T, e *env, cfg tunnel.Config) string {
	t.Helper()
	tc, err := e.ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	hub := tunnel.New(cfg, tc, tunnel.Deps{Enroller: e.enroll, Presence: e.presence, Certs: e.fleet, Metrics: e.metrics, AgentID: pki.AgentID}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("restarted hub.Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestReconnectResumesTheSessionAcrossARestart(t *testing.T) {
	cfg := tunnel.Config{TicketSecret: ticketSecret(t)}
	e := newEnv(t, cfg)
	_, tc := enrolledAgent(t, e)
	if resumed, err := heartbeat(t, e.addr, tc); err != nil || resumed {
		t.Fatalf("first session: resumed %v, err %v; want a full handshake that works", resumed, err)
	}
	if resumed, err := heartbeat(t, e.addr, tc); err != nil || !resumed {
		t.Fatalf("reconnect: resumed %v, err %v; want a resumed session that works", resumed, err)
	}
	if resumed, err := heartbeat(t, restarted(t, e, cfg), tc); err != nil || !resumed {
		t.Fatalf("reconnect to the restarted manager: resumed %v, err %v; want a resumed session that works", resumed, err)
	}
	// A manager with another secret cannot read the ticket: a full
	// handshake, which works.
	other := tunnel.Config{TicketSecret: ticketSecret(t)}
	if resumed, err := heartbeat(t, restarted(t, e, other), tc); err != nil || resumed {
		t.Fatalf("manager with another secret: resumed %v, err %v; want a full handshake that works", resumed, err)
	}
}

func TestRealAgentResumesOnReconnect(t *testing.T) {
	e := newEnv(t, tunnel.Config{TicketSecret: ticketSecret(t)})
	connected, _ := e.startAgent(t, e.token(t, 1), t.TempDir())
	id, _ := ids.Parse(<-connected)
	waitFor(t, "session", func() bool { return e.hub.Online(id) })
	resumed := mustCounter(t, e.reg, "admq_tunnel_resumed_sessions_total", "")
	if n := testutil.ToFloat64(resumed); n != 0 {
		t.Fatalf("%v resumed sessions before any reconnect", n)
	}
	// The ticket arrives after the handshake; a few sessions make sure the
	// agent had read one before it lost the session.
	for range 3 {
		e.hub.Disconnect(id)
		<-connected
		waitFor(t, "the agent back", func() bool { return e.hub.Online(id) })
	}
	if testutil.ToFloat64(resumed) < 1 {
		t.Fatal("the agent reconnected three times with full handshakes; want resumed sessions")
	}
}

func TestDeletedAgentCannotResume(t *testing.T) {
	cfg := tunnel.Config{TicketSecret: ticketSecret(t)}
	e := newEnv(t, cfg)
	id, tc := enrolledAgent(t, e)
	if _, err := heartbeat(t, e.addr, tc); err != nil {
		t.Fatal(err)
	}
	if err := e.fleet.DeleteServer(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	refused := mustCounter(t, e.reg, "admq_tunnel_handshakes_total", "tls_failed")
	for _, addr := range []string{e.addr, restarted(t, e, cfg)} {
		resumed, err := heartbeat(t, addr, tc)
		if err == nil {
			t.Fatalf("%s: a deleted server's agent made a call on a resumed session (resumed %v)", addr, resumed)
		}
		if !resumed {
			t.Fatalf("%s: the ticket was not used (%v); the test proves nothing", addr, err)
		}
		if e.hub.Online(id) {
			t.Fatal("a deleted server's agent is online")
		}
	}
	if testutil.ToFloat64(refused) < 1 {
		t.Fatal("no refused handshake counted")
	}
}

func TestEnrollmentTicketGrantsNoIdentity(t *testing.T) {
	e := newEnv(t, tunnel.Config{TicketSecret: ticketSecret(t)})
	_, agent := enrolledAgent(t, e)
	enr, err := tlsutil.EnrollClientConfig(e.ca.Pin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	enr.ServerName = "admq-manager"
	cache := tls.NewLRUClientSessionCache(1)
	enr.ClientSessionCache = cache
	if _, err := heartbeat(t, e.addr, enr); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("heartbeat on an enrollment session: %v, want Unauthenticated", err)
	}
	// The enrollment session's ticket, offered with the agent's
	// certificate config: the resumed session is an enrollment session,
	// whatever certificate the client holds.
	agent.ClientSessionCache = cache
	resumed, err := heartbeat(t, e.addr, agent)
	if !resumed {
		t.Fatalf("the enrollment ticket was not used (%v); the test proves nothing", err)
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("heartbeat on a session resumed from an enrollment ticket: %v, want Unauthenticated", err)
	}
}
