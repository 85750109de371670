// Package tunnel is the agent's end of the tunnel: it dials the manager,
// enrolls once with a join token, then holds one mutually authenticated
// yamux session over which both sides speak gRPC. It reconnects forever with
// capped, fully jittered exponential backoff and never listens on a socket.
package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/agent/facts"
	"github.com/admq/admq-manager/agent/identity"
	"github.com/admq/admq-manager/agent/metrics"
	"github.com/admq/admq-manager/agent/node"
	"github.com/admq/admq-manager/agent/rpc"
	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/backoff"
	"github.com/admq/admq-manager/internal/muxframe"
	"github.com/admq/admq-manager/internal/shortcall"
	"github.com/admq/admq-manager/internal/tlsutil"
	"github.com/admq/admq-manager/internal/version"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// Config is what the tunnel needs to reach and join the manager.
type Config struct {
	// ManagerAddr is the manager's tunnel address, host:port.
	ManagerAddr string
	// Token is the join token "<id>.<secret>"; needed only until enrolled.
	Token string
	// CAPin is the manager CA's "sha256:<hex>" pin; needed only until enrolled.
	CAPin string
	// StateDir holds the agent's identity.
	StateDir string
	// AdvertiseIP is the address the manager should record; empty: the
	// local address of the tunnel connection.
	AdvertiseIP string
	// DialTimeout bounds the TCP connect and TLS handshake (default 10s).
	DialTimeout time.Duration
	// BackoffBase and BackoffMax shape reconnect delays (defaults 1s, 15s;
	// the cap is raised to the manager's reconnect spread, see pace.go).
	BackoffBase, BackoffMax time.Duration
	// KeepAliveInterval and WriteTimeout tune yamux (defaults 60s, 10s):
	// the agent's own pings find a manager process that hangs.
	KeepAliveInterval, WriteTimeout time.Duration
	// BeatInterval is how long the agent may write nothing on its
	// connection before it writes a heartbeat, which is how the manager
	// knows it is alive (default: derived from the metrics interval, 5.2s
	// at 15s; see liveness.go). Negative: never, as agents before
	// heartbeats did; the manager then pings the agent (for tests of mixed
	// fleets).
	BeatInterval time.Duration
	// HeartbeatInterval is used until the manager says otherwise (default 30s).
	HeartbeatInterval time.Duration
	// MetricsInterval is how often host metrics are reported until the
	// manager says otherwise (default 15s); negative: never report them.
	MetricsInterval time.Duration
	// Processes lists the node processes whose CPU and memory the metrics
	// reports carry; nil: the nodes the agent's supervisor runs.
	Processes metrics.ProcessSource
	// Metrics takes the samples the metrics reports carry; nil: a
	// metrics.Collector of the agent's own, measuring Processes. A process
	// simulating many agents on one host (the load program) gives them one
	// shared source, and one facts.Host (HostFacts) for what never changes.
	Metrics   metrics.Source
	HostFacts *facts.Host
	// Dial opens the TCP connection (default: a net.Dialer); load tests use
	// it to simulate many hosts and lost links.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// PlainGRPC offers no short calls: every call goes over gRPC with a
	// separate heartbeat, as agents before short calls did (for tests of
	// mixed fleets, and a way back should short calls misbehave).
	PlainGRPC bool
	// NoReportFrames sends every metrics report as a call, as agents
	// before out-of-band frames did (for tests of mixed fleets).
	NoReportFrames bool
	// FrameGrid is the grid of the wall clock that heartbeats and metrics
	// reports go out on (default 200ms; see liveness.go). Negative: none,
	// each goes out when it is due. The grid saves the manager wake-ups
	// only where agents' clocks agree; the load program measures both.
	FrameGrid time.Duration
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 15 * time.Second
	}
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = defaultKeepAlive
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 30 * time.Second
	}
	if c.MetricsInterval == 0 {
		c.MetricsInterval = 15 * time.Second
	}
	if c.FrameGrid == 0 {
		c.FrameGrid = frameGrid
	}
	if c.Dial == nil {
		c.Dial = liveDialer(c.DialTimeout).DialContext
	}
	return c
}

// Permanent errors end Run: retrying cannot help until an operator acts.
var (
	ErrPinMismatch   = errors.New("manager certificate does not match the CA pin")
	ErrTokenRefused  = errors.New("manager refused the join token")
	ErrNoCredentials = errors.New("agent is not enrolled and has no join token with a CA pin")
)

// verifyError marks a failure of our own certificate checks, as opposed to
// a network failure, inside a TLS handshake error.
type verifyError struct{ err error }

func (e *verifyError) Error() string { return e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// Client holds the agent's connection to the manager.
type Client struct {
	cfg Config
	log *slog.Logger
	// collector samples host metrics; it outlives sessions so that CPU
	// usage is measured between reports across a reconnect.
	collector metrics.Source
	// facts reads the host facts for heartbeats and GetFacts; it reads what
	// never changes only once.
	facts *facts.Collector
	// Connected, if set, is called with each new authenticated session; for
	// tests and status reporting.
	Connected func(agentID string)

	// sup runs the node processes and nodes deploys them; both live for
	// the whole of Run, across sessions, so nodes keep running while the
	// tunnel reconnects. Set at the start of Run.
	mu    sync.Mutex
	sup   *supervisor.Supervisor
	nodes *node.Manager

	// tickets holds the manager's TLS session ticket for the identity
	// whose certificate is ticketsFor, so that a reconnect (even to a
	// restarted manager) resumes the session instead of a full handshake.
	tickets    tls.ClientSessionCache
	ticketsFor []byte
	// pace is the manager's advice on spreading reconnects.
	pace pace
	// reported is set once a metrics report went through: later sessions
	// are reconnects, whose first report need not come at once.
	reported atomic.Bool
	// interval is the metrics interval the manager last asked for
	// (nanoseconds; 0: none yet), which the heartbeats follow.
	interval atomic.Int64
}

// supervisorProcs lists the supervisor's node processes for metrics.
type supervisorProcs struct{ c *Client }

func (p supervisorProcs) Processes() []metrics.Proc {
	p.c.mu.Lock()
	sup := p.c.sup
	p.c.mu.Unlock()
	if sup == nil {
		return nil
	}
	procs := sup.Processes()
	out := make([]metrics.Proc, len(procs))
	for i, pr := range procs {
		out[i] = metrics.Proc{Name: pr.Name, PID: pr.PID}
	}
	return out
}

// New returns a Client.
func New(cfg Config, log *slog.Logger) *Client {
	cfg = cfg.withDefaults()
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		stateDir = cfg.StateDir
	}
	c := &Client{cfg: cfg, log: log, facts: &facts.Collector{DiskPath: cfg.StateDir, StateDir: stateDir, Host: cfg.HostFacts}}
	switch {
	case cfg.MetricsInterval <= 0:
	case cfg.Metrics != nil:
		c.collector = cfg.Metrics
	default:
		procs := cfg.Processes
		if procs == nil {
			procs = supervisorProcs{c}
		}
		c.collector = metrics.NewCollector(cfg.StateDir, procs)
	}
	return c
}

// Run connects, enrolls if needed, and keeps the session up until ctx is
// done (returning nil) or a permanent error occurs.
//
// The node supervisor runs for the whole of Run: it first adopts the node
// processes an earlier agent run left running, and when Run returns it
// stops watching them without stopping them.
func (c *Client) Run(ctx context.Context) error {
	sup, err := supervisor.New(c.cfg.StateDir, c.log)
	if err != nil {
		return err
	}
	if err := sup.Adopt(ctx); err != nil {
		c.log.Warn("adopting node processes", "err", err)
	}
	nodes, err := node.New(c.cfg.StateDir, sup, c.log)
	if err != nil {
		sup.Close()
		return err
	}
	c.mu.Lock()
	c.sup, c.nodes = sup, nodes
	c.mu.Unlock()
	supCtx, cancelSup := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		defer close(supDone)
		if err := sup.Run(supCtx); err != nil {
			c.log.Error("node supervisor", "err", err)
		}
	}()
	defer func() {
		cancelSup()
		<-supDone
		sup.Close()
	}()
	return c.run(ctx)
}

func (c *Client) run(ctx context.Context) error {
	b := backoff.New(c.cfg.BackoffBase, c.cfg.BackoffMax)
	var lostAt time.Time // when the last session that was up ended
	for {
		id, err := identity.Load(c.cfg.StateDir)
		switch {
		case errors.Is(err, identity.ErrNotEnrolled):
			if c.cfg.Token == "" || c.cfg.CAPin == "" {
				return ErrNoCredentials
			}
			err = c.enroll(ctx)
			if err == nil {
				b.Reset()
				continue // connect with the new identity at once
			}
		case err != nil:
			return err
		default:
			var lasted time.Duration
			lasted, err = c.session(ctx, id)
			if lasted > time.Minute {
				b.Reset() // a session that held was a success
			}
			if lasted > 0 {
				lostAt = time.Now()
			}
			restarting := lasted == 0 && errors.Is(err, syscall.ECONNREFUSED) && time.Since(lostAt) < restartWindow
			c.pace.prepare(b, c.cfg.BackoffMax, lasted > 0, restarting)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrPinMismatch) || errors.Is(err, ErrTokenRefused) {
			return err
		}
		if errors.Is(err, ErrCertRefused) {
			c.log.Error("manager refused this agent; will retry", "err", err)
		} else {
			c.log.Warn("manager connection lost; will retry", "err", err)
		}
		if b.Wait(ctx) != nil {
			return nil
		}
	}
}

func (c *Client) dial(ctx context.Context, tc *tls.Config) (*recordingConn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	raw, err := c.cfg.Dial(dctx, "tcp", c.cfg.ManagerAddr)
	if err != nil {
		return nil, fmt.Errorf("dial manager %s: %w", c.cfg.ManagerAddr, err)
	}
	conn := tls.Client(raw, tc)
	hctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		var ve *verifyError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: %v", ErrPinMismatch, ve.err)
		}
		return nil, fmt.Errorf("tls handshake with manager %s: %w", c.cfg.ManagerAddr, err)
	}
	alpn := conn.ConnectionState().NegotiatedProtocol
	return &recordingConn{Conn: conn, frames: alpn == muxframe.FramesALPN, short: alpn == shortcall.ALPN || alpn == muxframe.FramesALPN}, nil
}

// recordingConn keeps the first read error. With TLS 1.3 the client's
// handshake ends before the manager has checked the client certificate; a
// refusal arrives as an alert on the first read, and yamux would only say
// "session shutdown".
type recordingConn struct {
	net.Conn
	// short is set when the manager speaks short calls, frames when it
	// takes out-of-band frames (muxframe.FramesALPN).
	short, frames bool
	mu            sync.Mutex
	readErr       error
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if err != nil {
		r.mu.Lock()
		if r.readErr == nil {
			r.readErr = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *recordingConn) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readErr
}

// ErrCertRefused means the manager rejected the agent's certificate: the
// server was deleted or re-enrolled elsewhere.
var ErrCertRefused = errors.New("manager refused this agent's certificate")

// confirm makes one round trip on a new session, so that a refused
// certificate shows up here, with its reason, and not as a later hang-up.
func confirm(mux *yamux.Session, conn *recordingConn) error {
	if _, err := mux.Ping(); err != nil {
		rerr := conn.err()
		var alert tls.AlertError
		if errors.As(rerr, &alert) || (rerr != nil && strings.Contains(rerr.Error(), "tls:")) {
			return fmt.Errorf("%w (%v): if the server was deleted from the manager, remove the state dir's identity and enroll again with a new join token", ErrCertRefused, rerr)
		}
		if rerr != nil {
			return fmt.Errorf("session with manager failed: %w", rerr)
		}
		return fmt.Errorf("session with manager failed: %w", err)
	}
	return nil
}

func (c *Client) yamuxConfig() *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.AcceptBacklog = 16
	// Package pushes are the only bulk streams, manager to agent: a window
	// of 8 MiB (yamux's default is 256 KiB) keeps them from waiting on
	// window updates; the gRPC server's windows below match. Measured with
	// BenchmarkPackageTransfer (manager/tunnel): 150-190 → 200-250 MB/s.
	yc.MaxStreamWindowSize = 8 << 20
	yc.KeepAliveInterval = c.cfg.KeepAliveInterval
	yc.ConnectionWriteTimeout = c.cfg.WriteTimeout
	yc.StreamOpenTimeout = c.cfg.WriteTimeout
	yc.LogOutput = nil
	yc.Logger = log.New(io.Discard, "", 0)
	return yc
}

// enroll runs one enrollment session: verify the manager by the pin, send
// the token and a CSR, save the certificate that comes back.
func (c *Client) enroll(ctx context.Context) error {
	keyPEM, csr, err := c.enrollmentKey()
	if err != nil {
		return err
	}
	var ca *x509.Certificate
	tc, err := tlsutil.EnrollClientConfig(c.cfg.CAPin, func(cert *x509.Certificate) { ca = cert })
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPinMismatch, err)
	}
	c.offerShortCalls(tc)
	inner := tc.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := inner(cs); err != nil {
			return &verifyError{err}
		}
		return nil
	}
	conn, err := c.dial(ctx, tc)
	if err != nil {
		return err
	}
	mux, err := yamux.Client(conn, c.yamuxConfig())
	if err != nil {
		conn.Close()
		return fmt.Errorf("yamux: %w", err)
	}
	defer mux.Close()
	mc, closeMC, err := managerClient(mux, conn.short)
	if err != nil {
		return err
	}
	defer closeMC()

	host, _ := os.Hostname()
	advertise := c.cfg.AdvertiseIP
	if advertise == "" {
		advertise, _, _ = net.SplitHostPort(conn.LocalAddr().String())
		if a, err := netip.ParseAddr(advertise); err != nil || a.IsUnspecified() {
			advertise = "" // let the manager use the address it sees
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := mc.Enroll(rctx, &agentv1.EnrollRequest{
		Token:        c.cfg.Token,
		CsrDer:       csr,
		Hostname:     host,
		AgentVersion: version.Version,
		AdvertiseIp:  advertise,
	})
	if err != nil {
		switch status.Code(err) {
		case codes.PermissionDenied, codes.AlreadyExists, codes.InvalidArgument:
			return fmt.Errorf("%w: %s", ErrTokenRefused, status.Convert(err).Message())
		}
		return fmt.Errorf("enroll: %w", err)
	}
	// The CA the manager hands over must be the one the pin vouched for.
	if got, err := caPin(resp.GetCaPem()); err != nil || ca == nil || got != tlsutil.Pin(ca) {
		return fmt.Errorf("%w: the CA returned at enrollment is not the pinned one", ErrPinMismatch)
	}
	if err := identity.Save(c.cfg.StateDir, identity.Identity{
		AgentID: resp.GetAgentId(), KeyPEM: keyPEM, CertPEM: resp.GetCertPem(), CAPEM: resp.GetCaPem(),
	}); err != nil {
		return err
	}
	c.log.Info("enrolled with manager", "agent", resp.GetAgentId(), "manager", c.cfg.ManagerAddr)
	return nil
}

// enrollmentKey returns the key of the enrollment under way, saved in the
// state dir before its first attempt, and a certificate request for it. If
// the manager enrolled us but its answer was lost, a retry with the same key
// gets a certificate for the same server instead of being refused. A
// pending key that cannot be read as one is replaced.
func (c *Client) enrollmentKey() (keyPEM, csr []byte, err error) {
	for range 2 {
		keyPEM, err = identity.PendingKey(c.cfg.StateDir, tlsutil.NewKey)
		if err != nil {
			return nil, nil, err
		}
		csr, err = tlsutil.CSRForKey(keyPEM, "admq-agent")
		if err == nil {
			return keyPEM, csr, nil
		}
		c.log.Warn("replacing an unusable pending enrollment key", "err", err)
		if err := identity.DropPendingKey(c.cfg.StateDir); err != nil {
			return nil, nil, err
		}
	}
	return nil, nil, err
}

func caPin(caPEM []byte) (string, error) {
	b, _ := pem.Decode(caPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", errors.New("no CA certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return "", err
	}
	return tlsutil.Pin(cert), nil
}

// session holds one authenticated session until it ends; it reports how
// long the session lasted.
func (c *Client) session(ctx context.Context, id identity.Identity) (time.Duration, error) {
	tc, err := tlsutil.ClientConfig(id.CAPEM, id.CertPEM, id.KeyPEM)
	if err != nil {
		return 0, err
	}
	c.offerShortCalls(tc)
	tc.ClientSessionCache = c.sessionCache(id.CertPEM)
	conn, err := c.dial(ctx, tc)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	below := c.beating(conn)
	mux, err := yamux.Client(below, c.yamuxConfig())
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("yamux: %w", err)
	}
	defer mux.Close()
	if err := confirm(mux, conn); err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { mux.Close() })
	defer stop()

	// Serve the manager's calls on the streams it opens. The session is our
	// only "listener": no socket is bound on this host.
	srv := grpc.NewServer(grpc.Creds(insecure.NewCredentials()), grpc.MaxRecvMsgSize(maxCall),
		// Fixed windows as large as yamux's (see yamuxConfig); they turn
		// off gRPC's BDP estimation, which starts at 64 KiB.
		grpc.InitialWindowSize(8<<20), grpc.InitialConnWindowSize(8<<20))
	svc := &rpc.Service{Facts: c.facts, Nodes: c.nodes}
	agentv1.RegisterAgentServiceServer(srv, svc)
	calls := shortcall.NewServer(maxCall, nil)
	agentv1.RegisterAgentServiceServer(calls, svc)
	ln := shortcall.NewListener(mux.Addr())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	wg.Go(func() { c.serveStreams(ctx, mux, calls, ln) })
	defer func() {
		mux.Close()
		srv.Stop()
		wg.Wait()
	}()

	mc, closeMC, err := managerClient(mux, conn.short)
	if err != nil {
		return 0, err
	}
	defer closeMC()
	c.log.Info("connected to manager", "agent", id.AgentID, "manager", c.cfg.ManagerAddr, "shortCalls", conn.short)
	if c.Connected != nil {
		c.Connected(id.AgentID)
	}
	// A manager that speaks short calls takes the facts on the metrics
	// reports: one call per interval instead of two.
	factsOnReports := conn.short && c.collector != nil
	var calls2 sync.WaitGroup
	if !factsOnReports {
		calls2.Go(func() { c.heartbeat(ctx, mux, mc) })
	}
	if c.collector != nil {
		// Reports go as out-of-band frames below yamux to a manager that
		// takes them (see reportMetrics).
		var send func([]byte) error
		if bc, ok := below.(*muxframe.BeatConn); ok && conn.frames {
			send = func(body []byte) error { return bc.Send(muxframe.TypeReport, body) }
		}
		follow := func(interval time.Duration) { c.followInterval(below, interval) }
		calls2.Go(func() { c.reportMetrics(ctx, mux, mc, factsOnReports, send, follow) })
	}
	<-mux.CloseChan()
	calls2.Wait()
	return time.Since(start), errors.New("session closed")
}

// sessionCache is the TLS session cache for the identity with certificate
// certPEM: a new identity (enrolled again) starts with an empty one. The
// enrollment connection uses none, so its ticket is never offered.
func (c *Client) sessionCache(certPEM []byte) tls.ClientSessionCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tickets == nil || !bytes.Equal(c.ticketsFor, certPEM) {
		c.tickets, c.ticketsFor = tls.NewLRUClientSessionCache(1), bytes.Clone(certPEM)
	}
	return c.tickets
}

// offerShortCalls asks the manager, in the TLS handshake, for short calls
// and out-of-band frames; a manager that knows only short calls picks
// those.
func (c *Client) offerShortCalls(tc *tls.Config) {
	switch {
	case c.cfg.PlainGRPC:
	case c.cfg.NoReportFrames:
		tc.NextProtos = []string{shortcall.ALPN}
	default:
		tc.NextProtos = []string{muxframe.FramesALPN, shortcall.ALPN}
	}
}

// maxCall bounds a call's message from the manager (a config file, a
// package chunk).
const maxCall = 16 << 20

// serveStreams hands each stream the manager opens to the short-call
// server or, for plain gRPC, to ln, until the session ends.
func (c *Client) serveStreams(ctx context.Context, mux *yamux.Session, calls *shortcall.Server, ln *shortcall.Listener) {
	defer ln.Close()
	for {
		st, err := mux.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			short, rest, err := shortcall.Sniff(st, c.cfg.WriteTimeout)
			switch {
			case err != nil:
				st.Close()
			case short:
				calls.ServeConn(ctx, rest, nil)
			default:
				if ln.Push(rest) != nil {
					rest.Close()
				}
			}
		}()
	}
}

// managerClient is the client for the manager's service: short calls
// when the manager speaks them, else a gRPC connection (see dialManager).
func managerClient(mux *yamux.Session, short bool) (agentv1.ManagerServiceClient, func(), error) {
	if short {
		cc := &shortcall.ClientConn{Open: func() (net.Conn, error) { return mux.Open() }, MaxRecv: maxCall}
		return agentv1.NewManagerServiceClient(cc), func() {}, nil
	}
	cc, err := dialManager(mux)
	if err != nil {
		return nil, nil, err
	}
	return agentv1.NewManagerServiceClient(cc), func() { cc.Close() }, nil
}

// heartbeat sends facts now and then at the interval the manager asks for,
// until the session ends.
func (c *Client) heartbeat(ctx context.Context, mux *yamux.Session, mc agentv1.ManagerServiceClient) {
	interval := c.cfg.HeartbeatInterval
	for {
		f, err := c.facts.Collect(ctx)
		if err != nil {
			c.log.Warn("collect facts", "err", err)
		}
		hctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
		resp, err := mc.Heartbeat(hctx, &agentv1.HeartbeatRequest{Facts: rpc.FactsToProto(f)})
		cancel()
		if err != nil {
			c.log.Warn("heartbeat failed", "err", err)
		} else {
			if ms := resp.GetIntervalMs(); ms >= 1000 {
				interval = time.Duration(ms) * time.Millisecond
			}
			c.pace.advise(resp.GetReconnectSpreadMs())
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-mux.CloseChan():
			t.Stop()
			return
		}
	}
}

// dialManager returns a gRPC client for the manager's service that opens a
// stream on mux when it has calls to make, and lets the stream go when idle
// so the manager keeps no per-agent gRPC state between heartbeats.
func dialManager(mux *yamux.Session) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("passthrough:///manager",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return mux.Open() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS is below yamux
		grpc.WithIdleTimeout(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc client for manager: %w", err)
	}
	return cc, nil
}
