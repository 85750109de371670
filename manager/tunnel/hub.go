// Package tunnel is the manager's end of the agent tunnel: a TLS listener on
// which every agent holds one yamux session. Agents call the manager's gRPC
// service on streams they open; the manager calls each agent's gRPC service
// on streams it opens. Unary calls both ways are short calls (one stream,
// one request, one answer: internal/shortcall) when the agent offers them
// in the TLS handshake; package pushes, and every call of an agent that
// does not offer them, go over a gRPC connection dialed lazily and closed
// when idle. An idle agent costs its session and nothing else: no
// goroutine waits for its streams or for its end (heard.go).
package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/muxframe"
	"github.com/admq/admq-manager/internal/shortcall"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// Config tunes the tunnel. Zero fields take the defaults DefaultConfig gives.
type Config struct {
	// KeepAliveInterval is how long the session of an agent that sends no
	// heartbeats (one from before them) may be quiet before the manager
	// pings it (default 4s).
	KeepAliveInterval time.Duration
	// IdleTimeout closes a session over which nothing has arrived for this
	// long: a silently lost agent is offline after it (default 9s; agents
	// write a heartbeat after 4s of quiet).
	IdleTimeout time.Duration
	// WriteTimeout bounds a write on a session (default 8s).
	WriteTimeout time.Duration
	// HelloTimeout is how long a new connection may take to send its TLS
	// ClientHello (default 3s).
	HelloTimeout time.Duration
	// HandshakeTimeout bounds the whole TLS handshake (default 10s).
	HandshakeTimeout time.Duration
	// MaxHandshakes caps the TLS handshakes being computed at once, so that
	// a reconnect storm cannot starve the API of CPU (default 64). A
	// handshake takes its slot when the ClientHello is in and gives it back
	// when the manager has answered: silent or stalled clients hold none.
	MaxHandshakes int
	// SlotWait is how long a handshake may wait for a slot before its
	// connection is closed for the agent to come back later (default 2s).
	SlotWait time.Duration
	// HandshakeRate caps the TLS handshakes begun per second (default
	// 1000; negative: no cap beyond MaxHandshakes), so that a reconnect
	// storm of a whole fleet takes a steady share of the manager's CPU and
	// the console stays responsive. A connection beyond the rate waits its
	// turn, up to RateWait, before its handshake; one that would wait
	// longer is closed at once and its agent backs off.
	HandshakeRate int
	// RateWait is how long a connection may wait for its turn under
	// HandshakeRate (default 4s; the agent gives its whole handshake 10s).
	RateWait time.Duration
	// MaxPendingPerSource caps the connections from one address that are
	// not yet through the handshake (default 32); more are closed at once.
	MaxPendingPerSource int
	// MaxPending caps such connections from all addresses (default 4096).
	MaxPending int
	// EnrollTimeout is how long a session without a client certificate may
	// stay open to enroll (default 30s).
	EnrollTimeout time.Duration
	// ClientIdleTimeout closes the manager's gRPC connection to an agent after
	// it has carried no call for this long (default 30s).
	ClientIdleTimeout time.Duration
	// MaxIdleClientConns is how many of those connections may wait idle
	// for their timeout; beyond it a connection is closed as soon as its
	// calls end, so that a call to every agent of a large fleet never
	// holds a connection to each (default 256).
	MaxIdleClientConns int
	// HeartbeatInterval is what agents are told to use (default 30s).
	HeartbeatInterval time.Duration
	// MaxPackageTransfers caps the package transfers to agents at once; more
	// wait their turn (default 8).
	MaxPackageTransfers int
	// MetricsInterval is how often agents are told to report host metrics
	// (default 15s, at least 1s).
	MetricsInterval time.Duration
	// NoReportFrames offers agents no out-of-band frames
	// (muxframe.FramesALPN): every metrics report is a call, as with
	// managers before them (for tests of mixed fleets).
	NoReportFrames bool
	// TicketSecret, if set, is what TLS session ticket keys are derived
	// from (pki.TicketSecret), so that agents resume their sessions after a
	// restart of the manager (creds.go); nil: tickets die with the process.
	TicketSecret []byte
}

// DefaultHandshakeRate is the default of Config.HandshakeRate: at about a
// millisecond of CPU per agent handshake, a storm takes at most one of the
// manager's cores, and 10,000 agents are back within ten seconds of their
// arrival.
const DefaultHandshakeRate = 1000

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		KeepAliveInterval:   4 * time.Second,
		IdleTimeout:         9 * time.Second,
		WriteTimeout:        8 * time.Second,
		HelloTimeout:        3 * time.Second,
		HandshakeTimeout:    10 * time.Second,
		MaxHandshakes:       64,
		SlotWait:            2 * time.Second,
		HandshakeRate:       DefaultHandshakeRate,
		RateWait:            4 * time.Second,
		MaxPendingPerSource: 32,
		MaxPending:          4096,
		EnrollTimeout:       30 * time.Second,
		ClientIdleTimeout:   30 * time.Second,
		MaxIdleClientConns:  256,
		MaxPackageTransfers: 8,
		HeartbeatInterval:   30 * time.Second,
		MetricsInterval:     fleetmetrics.DefaultInterval,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.KeepAliveInterval <= 0 {
		c.KeepAliveInterval = d.KeepAliveInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = max(d.IdleTimeout, 2*c.KeepAliveInterval)
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = d.HelloTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	c.HelloTimeout = min(c.HelloTimeout, c.HandshakeTimeout)
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = d.MaxHandshakes
	}
	if c.SlotWait <= 0 {
		c.SlotWait = d.SlotWait
	}
	if c.MaxPendingPerSource <= 0 {
		c.MaxPendingPerSource = d.MaxPendingPerSource
	}
	if c.MaxPending <= 0 {
		c.MaxPending = d.MaxPending
	}
	switch {
	case c.HandshakeRate == 0:
		c.HandshakeRate = d.HandshakeRate
	case c.HandshakeRate < 0:
		c.HandshakeRate = 0 // no cap
	}
	if c.RateWait <= 0 {
		c.RateWait = d.RateWait
	}
	if c.EnrollTimeout <= 0 {
		c.EnrollTimeout = d.EnrollTimeout
	}
	if c.ClientIdleTimeout <= 0 {
		c.ClientIdleTimeout = d.ClientIdleTimeout
	}
	if c.MaxIdleClientConns <= 0 {
		c.MaxIdleClientConns = d.MaxIdleClientConns
	}
	if c.MaxPackageTransfers <= 0 {
		c.MaxPackageTransfers = d.MaxPackageTransfers
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.MetricsInterval <= 0 {
		c.MetricsInterval = d.MetricsInterval
	}
	c.MetricsInterval = max(c.MetricsInterval, time.Second)
	return c
}

// Enroller turns a join token and a CSR into an enrolled agent.
type Enroller interface {
	Enroll(ctx context.Context, r enroll.Request) (enroll.Result, error)
}

// Presence learns when agents come and go and what they report.
type Presence interface {
	Connected(id ids.ID)
	Disconnected(id ids.ID)
	Heartbeat(id ids.ID, f fleet.Facts)
}

// Metrics keeps the host metrics agents report; fleetmetrics.Store
// implements it. Report returns an *invalid.Error for a report no real host
// sends. ReportKnown is Report that never waits: it keeps nothing (known
// false) for a server it would have to look up first.
type Metrics interface {
	Report(ctx context.Context, id ids.ID, r fleetmetrics.Report) error
	ReportKnown(id ids.ID, r fleetmetrics.Report) (known bool, err error)
}

// CertChecker decides whether an agent certificate may still be used: the
// server must exist and the serial must be its current one.
type CertChecker interface {
	CheckAgentCert(ctx context.Context, id ids.ID, serial string) error
}

// Deps are the domain services the tunnel calls.
type Deps struct {
	Enroller Enroller
	Presence Presence
	Certs    CertChecker
	Metrics  Metrics
	// AgentID extracts the agent id and certificate serial from a verified
	// handshake; ok is false when the agent presented no certificate.
	AgentID func(tls.ConnectionState) (id, serial string, ok bool)
}

// Hub accepts agent sessions and routes manager-to-agent calls to them.
type Hub struct {
	cfg     Config
	tls     *tls.Config
	deps    Deps
	log     *slog.Logger
	yamux   *yamux.Config
	metrics *metrics
	grpc    *grpc.Server
	streams *shortcall.Listener // the streams of plain gRPC calls, for grpc
	short   *shortcall.Server   // short calls
	gate    *gate
	// reports queues the agents' report frames for keepReports.
	reports chan queuedReport
	// clientConns counts the gRPC client connections open to agents.
	clientConns atomic.Int64
	// transfers holds a place per package transfer under way.
	transfers chan struct{}

	mu       sync.Mutex
	sessions map[ids.ID]*session
	closing  bool // Serve is ending: no new sessions
	// wg counts connections being handled and sessions not yet ended.
	wg sync.WaitGroup
}

// New returns a Hub. tlsConfig must verify client certificates if given
// (tls.VerifyClientCertIfGiven with the CA in ClientCAs).
func New(cfg Config, tlsConfig *tls.Config, deps Deps, logger *slog.Logger, reg prometheus.Registerer) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{
		cfg:       cfg,
		deps:      deps,
		log:       logger,
		metrics:   newMetrics(reg),
		sessions:  make(map[ids.ID]*session),
		transfers: make(chan struct{}, cfg.MaxPackageTransfers),
		reports:   make(chan queuedReport, reportQueue),
	}
	h.gate = newGate(cfg, h.metrics, logger)
	tc := tlsConfig.Clone()
	tc.MinVersion = tls.VersionTLS13
	// Agents that speak short calls offer them; others offer nothing and
	// get plain gRPC. Agents that send out-of-band frames offer those
	// first, and short calls for managers before frames.
	tc.NextProtos = []string{muxframe.FramesALPN, shortcall.ALPN}
	if cfg.NoReportFrames {
		tc.NextProtos = []string{shortcall.ALPN}
	}
	// Refuse revoked or replaced certificates inside the handshake, so the
	// agent gets a TLS alert that says so instead of a silent hang-up.
	tc.VerifyConnection = h.verifyConnection
	h.tls = tc

	yc := yamux.DefaultConfig()
	yc.AcceptBacklog = 16
	// One sweep for all sessions (keepalive.go) instead of a keepalive
	// goroutine in each.
	yc.EnableKeepAlive = false
	yc.ConnectionWriteTimeout = cfg.WriteTimeout
	yc.StreamOpenTimeout = cfg.WriteTimeout
	yc.LogOutput = nil
	yc.Logger = log.New(slogWriter{logger.With("component", "yamux")}, "", 0)
	h.yamux = yc

	h.grpc = grpc.NewServer(
		grpc.Creds(sessionCreds{}),
		grpc.UnaryInterceptor(h.intercept),
		grpc.MaxRecvMsgSize(4<<20),
		// Agents' calls are small (heartbeats, metrics reports) and each
		// agent's connection comes and goes: 8 KiB buffers instead of
		// 32 KiB, and the write buffer returned to a pool between writes.
		grpc.ReadBufferSize(8<<10), grpc.WriteBufferSize(8<<10), grpc.SharedWriteBuffer(true),
		// Liveness is the session's job; gRPC pings would only add traffic.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 24 * time.Hour}),
	)
	h.short = shortcall.NewServer(4<<20, h.intercept)
	agentv1.RegisterManagerServiceServer(h.grpc, &managerService{hub: h})
	agentv1.RegisterManagerServiceServer(h.short, &managerService{hub: h})
	return h
}

// intercept times every agent-to-manager call and lets it through if the
// session may make it.
func (h *Hub) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return h.metrics.serverInterceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return authorize(ctx, req, info, handler)
	})
}

// Serve accepts agent connections on ln until ctx is done, then closes every
// session and returns.
func (h *Hub) Serve(ctx context.Context, ln net.Listener) error {
	h.streams = shortcall.NewListener(ln.Addr())
	grpcDone := make(chan struct{})
	go func() {
		defer close(grpcDone)
		_ = h.grpc.Serve(h.streams)
	}()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		h.sweep(sweepCtx)
	}()
	defer func() { stopSweep(); <-sweepDone }()
	var keepers sync.WaitGroup
	for range reportKeepers {
		keepers.Go(func() { h.keepReports(sweepCtx) })
	}
	defer func() { stopSweep(); keepers.Wait() }()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var err error
	for {
		conn, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("tunnel accept: %w", aerr)
			}
			break
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.handle(ctx, conn)
		}()
	}
	h.closeAll()
	h.wg.Wait()
	h.grpc.Stop()
	h.streams.Close()
	<-grpcDone
	return err
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	h.closing = true
	all := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		all = append(all, s)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.mux.Close()
	}
}

func (h *Hub) verifyConnection(cs tls.ConnectionState) error {
	id, serial, ok := h.deps.AgentID(cs)
	if !ok {
		return nil // an enrollment session
	}
	agentID, err := ids.Parse(id)
	if err != nil {
		return fmt.Errorf("agent certificate names no valid agent id: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.HandshakeTimeout)
	defer cancel()
	if err := h.deps.Certs.CheckAgentCert(ctx, agentID, serial); err != nil {
		h.log.Warn("agent certificate refused", "agent", id, "serial", serial, "err", err)
		return fmt.Errorf("agent certificate refused: %w", err)
	}
	return nil
}

func (h *Hub) handle(ctx context.Context, raw net.Conn) {
	remote := raw.RemoteAddr().String()
	log := h.log.With("remote", remote)
	src := sourceAddr(raw.RemoteAddr())
	done, result, ok := h.gate.admit(src)
	if !ok {
		h.metrics.handshakes.WithLabelValues(result).Inc()
		h.gate.logs.warn("tunnel connection refused", "reason", result, "remote", remote)
		raw.Close()
		return
	}
	tc, result, err := h.gate.handshake(ctx, raw, h.tls)
	done()
	if err != nil {
		h.metrics.handshakes.WithLabelValues(result).Inc()
		h.gate.logs.warn("tunnel handshake failed", "reason", result, "remote", remote, "err", err)
		raw.Close()
		return
	}
	heard := newHeardConn(tc)
	remoteIP, _, _ := net.SplitHostPort(remote)
	state := tc.ConnectionState()
	idStr, _, enrolled := h.deps.AgentID(state)
	var s *session
	if enrolled {
		id, _ := ids.Parse(idStr) // checked in verifyConnection
		frames := state.NegotiatedProtocol == muxframe.FramesALPN
		s = newSession(ctx, h, id, remoteIP, frames || state.NegotiatedProtocol == shortcall.ALPN)
		s.conn = heard
		s.log = log.With("agent", id)
		heard.watch(s.opened, s.ended)
		if frames {
			heard.takeFrames(s.frame)
		}
	}
	mux, err := yamux.Server(heard, h.yamux)
	if err != nil {
		h.metrics.handshakes.WithLabelValues("mux_failed").Inc()
		log.Warn("yamux session failed", "err", err)
		tc.Close()
		return
	}
	if !enrolled {
		h.metrics.handshakes.WithLabelValues("enrollment").Inc()
		h.serveEnrollment(ctx, mux, newPeer(ids.ID(0), remoteIP), log)
		return
	}
	s.mux = mux
	h.metrics.handshakes.WithLabelValues("agent").Inc()
	if state.DidResume {
		h.metrics.resumed.Inc()
	}
	// The session now lives without a goroutine of its own; s.ended,
	// called when it is over, gives this back.
	h.wg.Add(1)
	if h.register(s) {
		s.log.Info("agent connected", "short", s.short, "frames", heard.onFrame != nil)
	} else {
		mux.Close()
	}
	heard.release()
}

// newPeer is the gRPC identity of the calls on an agent's session.
func newPeer(id ids.ID, remoteIP string) Peer {
	p := Peer{AgentID: id, RemoteIP: remoteIP}
	p.CommonAuthInfo.SecurityLevel = 3 // credentials.PrivacyAndIntegrity: TLS below yamux
	return p
}

// endSession runs when an agent's session is over.
func (h *Hub) endSession(s *session) {
	defer h.wg.Done()
	<-s.mux.CloseChan()
	if err := s.conn.broken; err != nil {
		h.metrics.reportFrames.WithLabelValues(frameBroken).Inc()
		s.log.Warn("agent session ended: it sent bytes that are not frames", "err", err)
	}
	if h.unregister(s) {
		s.log.Info("agent disconnected")
	}
}

// acceptStream takes a stream the agent has just opened (its SYN went by
// in heardConn) and serves the call on it.
func (h *Hub) acceptStream(s *session) {
	ctx, cancel := context.WithTimeout(s.ctx, h.cfg.WriteTimeout)
	st, err := s.mux.AcceptStreamWithContext(ctx)
	cancel()
	if err != nil {
		return // the session ended, or yamux refused the stream (backlog full)
	}
	h.serveStream(s.ctx, st, s.peer)
}

// serveStream serves one stream an agent opened: a short call here, a
// plain gRPC connection through the gRPC server.
func (h *Hub) serveStream(ctx context.Context, st net.Conn, p Peer) {
	short, rest, err := shortcall.Sniff(st, h.cfg.WriteTimeout)
	switch {
	case err != nil:
		st.Close()
	case short:
		h.short.ServeConn(ctx, rest, &peer.Peer{Addr: st.RemoteAddr(), LocalAddr: st.LocalAddr(), AuthInfo: p})
	default:
		if err := h.streams.Push(&streamConn{Conn: rest, peer: p}); err != nil {
			rest.Close()
		}
	}
}

// sourceAddr is the address a connection comes from, for per-source limits.
func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// serveEnrollment lets an agent without a certificate call Enroll, and
// nothing else, for a bounded time.
func (h *Hub) serveEnrollment(ctx context.Context, mux *yamux.Session, p Peer, log *slog.Logger) {
	t := time.AfterFunc(h.cfg.EnrollTimeout, func() {
		log.Info("enrollment session timed out")
		mux.Close()
	})
	defer t.Stop()
	stop := context.AfterFunc(ctx, func() { mux.Close() })
	defer stop()
	var wg sync.WaitGroup
	for {
		st, err := mux.Accept()
		if err != nil {
			break
		}
		wg.Go(func() { h.serveStream(ctx, st, p) })
	}
	wg.Wait()
}

// register makes s the agent's session, closing any earlier one; it
// refuses (false) once Serve is ending.
func (h *Hub) register(s *session) bool {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return false
	}
	old := h.sessions[s.id]
	h.sessions[s.id] = s
	h.mu.Unlock()
	if old != nil {
		h.log.Info("agent reconnected; closing its previous session", "agent", s.id)
		old.close()
	} else {
		h.metrics.connected.Inc()
	}
	h.deps.Presence.Connected(s.id)
	return true
}

// unregister forgets s, if it is still the agent's session, and reports
// whether it was.
func (h *Hub) unregister(s *session) bool {
	s.close()
	h.mu.Lock()
	current := h.sessions[s.id] == s
	if current {
		delete(h.sessions, s.id)
	}
	h.mu.Unlock()
	if current {
		h.metrics.connected.Dec()
		h.deps.Presence.Disconnected(s.id)
	}
	return current
}

func (h *Hub) session(id ids.ID) (*session, error) {
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s == nil {
		return nil, fleet.ErrAgentNotOnline
	}
	return s, nil
}

// Online reports whether the agent has a live session on this manager.
func (h *Hub) Online(id ids.ID) bool {
	_, err := h.session(id)
	return err == nil
}

// Connected is the number of agents with a live session.
func (h *Hub) Connected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Disconnect closes the agent's session, if it has one; used when a server
// is deleted and its certificate revoked.
func (h *Hub) Disconnect(id ids.ID) {
	if s, err := h.session(id); err == nil {
		s.mux.Close()
	}
}

// Ping measures a round trip through the agent's gRPC service.
func (h *Hub) Ping(ctx context.Context, id ids.ID) (rtt time.Duration, agentVersion string, err error) {
	s, err := h.session(id)
	if err != nil {
		return 0, "", err
	}
	err = s.call(ctx, func(c agentv1.AgentServiceClient) error {
		start := time.Now()
		resp, err := c.Ping(ctx, &agentv1.PingRequest{})
		rtt = time.Since(start)
		if err == nil {
			agentVersion = resp.GetAgentVersion()
		}
		return err
	})
	if err != nil {
		return 0, "", fmt.Errorf("ping agent %s: %w", id, err)
	}
	return rtt, agentVersion, nil
}

// Facts asks the agent for its host facts now.
func (h *Hub) Facts(ctx context.Context, id ids.ID) (fleet.Facts, error) {
	s, err := h.session(id)
	if err != nil {
		return fleet.Facts{}, err
	}
	var f fleet.Facts
	err = s.call(ctx, func(c agentv1.AgentServiceClient) error {
		resp, err := c.GetFacts(ctx, &agentv1.GetFactsRequest{})
		if err == nil {
			f = factsFromProto(resp)
		}
		return err
	})
	if err != nil {
		return fleet.Facts{}, fmt.Errorf("facts of agent %s: %w", id, err)
	}
	return f, nil
}

// slogWriter adapts yamux's log.Logger output to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Debug(msg)
	return len(p), nil
}

var _ io.Writer = slogWriter{}

var errClosed = errors.New("tunnel: session closed")
