package tunnel_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/tlsutil"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pki"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/tunnel"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Started once per process by the SQLite driver and gRPC; not per test.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	)
}

type env struct {
	hub      *tunnel.Hub
	addr     string
	db       *store.DB
	ca       *pki.CA
	fleet    *fleet.Service
	presence *fleet.PresenceTracker
	enroll   *enroll.Service
	reg      *prometheus.Registry
	metrics  *fleetmetrics.Store
	fleetReg *prometheus.Registry
}

func newEnv(t testing.TB, cfg tunnel.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvWith is newEnv whose hub enrolls through wrap(the enroll service)
// when wrap is not nil.
func newEnvWith(t testing.TB, cfg tunnel.Config, wrap func(tunnel.Enroller) tunnel.Enroller) *env {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, filepath.Join(dir, "admq.db"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Open(filepath.Join(dir, "pki"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	presence := fleet.NewPresenceTracker(db, time.Now, time.Hour, log)
	agents := &lateAgents{}
	fl := fleet.NewService(db, presence, agents, gen, time.Now)
	if err := fl.EnsureDefaultArea(ctx); err != nil {
		t.Fatal(err)
	}
	en := enroll.NewService(db, fl, ca, gen, time.Now, time.Hour, log)
	tc, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	fleetReg := prometheus.NewRegistry()
	fm := fleetmetrics.New(fleetmetrics.Config{Interval: cfg.MetricsInterval}, fl, fleetReg)
	fl.ForgetOnDelete(fm)
	var enroller tunnel.Enroller = en
	if wrap != nil {
		enroller = wrap(en)
	}
	hub := tunnel.New(cfg, tc, tunnel.Deps{Enroller: enroller, Presence: presence, Certs: fl, Metrics: fm, AgentID: pki.AgentID}, log, reg)
	agents.Agents = hub
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hub.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub.Serve: %v", err)
		}
		db.Close()
	})
	return &env{hub: hub, addr: ln.Addr().String(), db: db, ca: ca, fleet: fl, presence: presence, enroll: en, reg: reg, metrics: fm, fleetReg: fleetReg}
}

type lateAgents struct{ fleet.Agents }

// startAgent runs a real agent tunnel client until the test ends.
func (e *env) startAgent(t testing.TB, token string, stateDir string) (connected chan string, stop func()) {
	t.Helper()
	return e.startAgentAt(t, token, stateDir, "")
}

// startAgentAt is startAgent for an agent that advertises ip (servers'
// addresses are unique) and dials from it.
func (e *env) startAgentAt(t testing.TB, token, stateDir, ip string) (connected chan string, stop func()) {
	t.Helper()
	return e.startAgentWith(t, token, stateDir, ip, false)
}

// startAgentWith is startAgentAt for an agent that, with plainGRPC, offers
// no short calls, as agents before them.
func (e *env) startAgentWith(t testing.TB, token, stateDir, ip string, plainGRPC bool) (connected chan string, stop func()) {
	t.Helper()
	return e.runAgent(t, token, stateDir, func(cfg *agenttunnel.Config) {
		cfg.PlainGRPC = plainGRPC
		if ip != "" {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			cfg.AdvertiseIP, cfg.Dial = ip, d.DialContext
		}
	})
}

// runAgent runs a real agent tunnel client, configured by tune, until the
// test ends.
func (e *env) runAgent(t testing.TB, token, stateDir string, tune func(*agenttunnel.Config)) (connected chan string, stop func()) {
	t.Helper()
	secret, pin, _ := cutJoin(token)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := agenttunnel.Config{
		ManagerAddr: e.addr, Token: secret, CAPin: pin, StateDir: stateDir,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
	tune(&cfg)
	c := agenttunnel.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	connected = make(chan string, 16)
	c.Connected = func(id string) { connected <- id }
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return connected, stop
}

func cutJoin(s string) (string, string, bool) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == ':' && s[i+1] == ':' {
			return s[:i], s[i+2:], true
		}
	}
	return s, "", false
}

func (e *env) token(t testing.TB, uses int) string {
	t.Helper()
	tok, err := e.enroll.CreateToken(t.Context(), enroll.TokenSpec{MaxUses: uses, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok.JoinString
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEnrollConnectAndCallBothWays runs an agent that speaks short calls
// and one that speaks only plain gRPC (as agents before short calls) on
// one manager: both enroll, connect, answer the manager's calls and have
// their facts (a heartbeat, or the metrics reports) in the store.
func TestEnrollConnectAndCallBothWays(t *testing.T) {
	e := newEnv(t, tunnel.Config{HeartbeatInterval: time.Second})
	tok := e.token(t, 2)
	for i, tt := range []struct {
		name       string
		plain      bool
		wantConns  float64 // gRPC client conns the manager holds after the calls
		wantMethod string  // the agent-to-manager call that carried the facts
	}{
		{name: "short calls", plain: false, wantConns: 0, wantMethod: "ReportMetrics"},
		{name: "plain gRPC", plain: true, wantConns: 1, wantMethod: "Heartbeat"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			connected, _ := e.startAgentWith(t, tok, t.TempDir(), fmt.Sprintf("127.0.7.%d", i+1), tt.plain)
			id, err := ids.Parse(<-connected)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the hub to hold the session", func() bool { return e.hub.Online(id) })
			// The agent of the case before has stopped with its case.
			gauge := mustGauge(t, e.reg, "admq_tunnel_connected_agents")
			waitFor(t, "connected_agents to be 1", func() bool { return testutil.ToFloat64(gauge) == 1 })

			// Manager to agent, over a stream the manager opens.
			rtt, version, err := e.hub.Ping(t.Context(), id)
			if err != nil || rtt <= 0 || version == "" {
				t.Fatalf("ping: %v %v %q", rtt, err, version)
			}
			f, err := e.hub.Facts(t.Context(), id)
			if err != nil || f.CPUs == 0 || f.Hostname == "" {
				t.Fatalf("facts: %+v %v", f, err)
			}
			if got := testutil.ToFloat64(mustGauge(t, e.reg, "admq_tunnel_agent_client_conns")); got != tt.wantConns {
				t.Errorf("gRPC client conns to agents after the calls: %v, want %v", got, tt.wantConns)
			}

			// Agent to manager: the facts land in presence and, once flushed, in the store.
			waitFor(t, "facts in the store", func() bool {
				e.presence.Flush(t.Context())
				srv, err := e.db.Server(t.Context(), id)
				return err == nil && srv.Facts.CPUs > 0 && srv.AgentStatus == fleet.StatusOnline
			})
			calls := mustCounter(t, e.reg, "admq_tunnel_rpc_duration_seconds", "/admq.agent.v1.ManagerService/"+tt.wantMethod)
			if testutil.ToFloat64(calls) == 0 {
				t.Errorf("no %s call seen", tt.wantMethod)
			}
		})
	}
}

// The gRPC client conns to agents that the next two tests watch carry
// package pushes, and every call to an agent without short calls: the
// tests use such an agent.

func TestIdleClientConnIsClosed(t *testing.T) {
	e := newEnv(t, tunnel.Config{ClientIdleTimeout: 100 * time.Millisecond})
	connected, _ := e.startAgentWith(t, e.token(t, 1), t.TempDir(), "", true)
	id, _ := ids.Parse(<-connected)
	waitFor(t, "session", func() bool { return e.hub.Online(id) })
	if _, _, err := e.hub.Ping(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	conns := mustGauge(t, e.reg, "admq_tunnel_agent_client_conns")
	if v := testutil.ToFloat64(conns); v != 1 {
		t.Fatalf("after a call: %v client conns, want 1", v)
	}
	waitFor(t, "the idle client conn to close", func() bool { return testutil.ToFloat64(conns) == 0 })
	// The next call dials again.
	if _, _, err := e.hub.Ping(t.Context(), id); err != nil {
		t.Fatalf("ping after idle close: %v", err)
	}
}

// TestClientConnsBeyondTheIdleCapCloseAtOnce: with room for one idle
// client conn, calls to three agents leave at most one open.
func TestClientConnsBeyondTheIdleCapCloseAtOnce(t *testing.T) {
	e := newEnv(t, tunnel.Config{MaxIdleClientConns: 1})
	tok := e.token(t, 3)
	var agents []ids.ID
	for i := range 3 {
		connected, _ := e.startAgentWith(t, tok, t.TempDir(), fmt.Sprintf("127.0.6.%d", i+1), true)
		id, _ := ids.Parse(<-connected)
		waitFor(t, "session", func() bool { return e.hub.Online(id) })
		agents = append(agents, id)
	}
	conns := mustGauge(t, e.reg, "admq_tunnel_agent_client_conns")
	for round := range 2 {
		for _, id := range agents {
			if _, _, err := e.hub.Ping(t.Context(), id); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if v := testutil.ToFloat64(conns); v > 1 {
				t.Fatalf("round %d: %v client conns open, want at most 1", round, v)
			}
		}
	}
}

func TestDeletedServerLosesSessionAndCannotReturn(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	connected, _ := e.startAgent(t, e.token(t, 1), t.TempDir())
	id, _ := ids.Parse(<-connected)
	waitFor(t, "session", func() bool { return e.hub.Online(id) })
	if err := e.fleet.DeleteServer(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to close", func() bool { return !e.hub.Online(id) })
	// The agent keeps retrying with its old certificate; none may get in.
	// Wait for a retry to be refused (its backoff decides when), then look.
	refused := mustCounter(t, e.reg, "admq_tunnel_handshakes_total", "tls_failed")
	waitFor(t, "a retry with the old certificate to be refused", func() bool { return testutil.ToFloat64(refused) >= 1 })
	if e.hub.Online(id) || e.hub.Connected() != 0 {
		t.Fatal("a deleted server's agent got back in")
	}
}

func TestUnenrolledSessionMayOnlyEnroll(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	cc, mux := rawSession(t, e)
	_, err := agentv1.NewManagerServiceClient(cc).Heartbeat(t.Context(), &agentv1.HeartbeatRequest{Facts: &agentv1.Facts{}})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("heartbeat before enrollment: %v, want Unauthenticated", err)
	}
	_, err = agentv1.NewManagerServiceClient(cc).Enroll(t.Context(), &agentv1.EnrollRequest{Token: "abcdef.0123456789abcdef", CsrDer: []byte("x")})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("enroll with an unknown token: %v, want PermissionDenied", err)
	}
	_, err = agentv1.NewManagerServiceClient(cc).Enroll(t.Context(), &agentv1.EnrollRequest{Token: "nonsense"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("enroll with a malformed token: %v, want PermissionDenied", err)
	}
	list, total, _ := e.db.Servers(t.Context(), fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10})
	if total != 0 || len(list) != 0 {
		t.Fatalf("refused enrollments created servers: %v", list)
	}
	mux.Close()
}

func TestEnrollmentSessionTimesOut(t *testing.T) {
	e := newEnv(t, tunnel.Config{EnrollTimeout: 200 * time.Millisecond})
	_, mux := rawSession(t, e)
	select {
	case <-mux.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("an idle enrollment session stayed open")
	}
}

func TestBadFactsAreRefused(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	dir := t.TempDir()
	connected, stop := e.startAgent(t, e.token(t, 1), dir)
	id := <-connected
	stop()
	// Connect as the enrolled agent by hand and send junk.
	cc, mux := enrolledSession(t, e, dir)
	defer mux.Close()
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	for name, f := range map[string]*agentv1.Facts{
		"hostname too long":  {Hostname: string(long)},
		"free beyond total":  {MemoryTotal: 1, MemoryAvailable: 2},
		"negative cpu count": {Cpus: -3},
	} {
		_, err := agentv1.NewManagerServiceClient(cc).Heartbeat(t.Context(), &agentv1.HeartbeatRequest{Facts: f})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	_, err := agentv1.NewManagerServiceClient(cc).Heartbeat(t.Context(), &agentv1.HeartbeatRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("no facts: %v", err)
	}
	if _, err := ids.Parse(id); err != nil {
		t.Fatal(err)
	}
}

// rawSession opens a session without a client certificate, as a new agent does.
func rawSession(t *testing.T, e *env) (*grpc.ClientConn, *yamux.Session) {
	t.Helper()
	tc, err := tlsutil.EnrollClientConfig(e.ca.Pin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return session(t, e, tc)
}

func enrolledSession(t *testing.T, e *env, dir string) (*grpc.ClientConn, *yamux.Session) {
	t.Helper()
	return session(t, e, agentConfig(t, dir))
}

// agentConfig is the TLS config of the agent enrolled in state dir dir.
func agentConfig(t *testing.T, dir string) *tls.Config {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tc, err := tlsutil.ClientConfig(read("ca.crt"), read("agent.crt"), read("agent.key"))
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func session(t *testing.T, e *env, tc *tls.Config) (*grpc.ClientConn, *yamux.Session) {
	t.Helper()
	conn, err := tls.Dial("tcp", e.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	mux, err := yamux.Client(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("passthrough:///manager",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return mux.Open() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); mux.Close() })
	return cc, mux
}

func mustGauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFor(t, reg, name, "")
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	return collectorFor(t, reg, name, label)
}

// collectorFor returns a collector that reports the current value of one
// metric series from reg.
func collectorFor(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	return gathered{reg: reg, name: name, label: label}
}

type gathered struct {
	reg         *prometheus.Registry
	name, label string
}

func (g gathered) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc(g.name, "test view", nil, nil)
}

func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := g.label == ""
			for _, l := range m.GetLabel() {
				if l.GetValue() == g.label {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Histogram != nil:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "test view", nil, nil), prometheus.GaugeValue, v)
}
