package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Reasons a connection does not become a session, the result label of
// admq_tunnel_handshakes_total.
const (
	resultNoHello     = "no_hello"      // nothing (or not a whole ClientHello) within HelloTimeout
	resultSourceLimit = "source_limit"  // too many unfinished connections from its address
	resultPending     = "pending_limit" // too many unfinished connections in all
	resultBusy        = "busy"          // no turn under HandshakeRate within RateWait, or no slot within SlotWait
	resultTimeout     = "timeout"       // the handshake did not finish within HandshakeTimeout
	resultTLSFailed   = "tls_failed"    // the handshake failed (bad certificate, protocol error)
)

// gate admits new tunnel connections. A connection holds nothing scarce
// until it has sent its whole TLS ClientHello: silent or slow connections
// cost a goroutine and a socket for at most HelloTimeout, and at most
// MaxPendingPerSource of them per address and MaxPending in all. The CPU
// of the handshake is bounded by MaxHandshakes slots, taken once the
// ClientHello is in and given back as soon as the manager has sent its
// reply: a client that stalls after that (or never finishes) holds no
// slot. Handshakes begin at most HandshakeRate a second: a connection that
// comes faster waits its turn, up to RateWait. One whose turn would come
// later than that, or that waits longer than SlotWait for a slot, is
// closed at once; the agent backs off and comes back, instead of the
// manager doing a handshake that the agent has already given up on.
type gate struct {
	cfg     Config
	slots   chan struct{}
	limiter *rate.Limiter // nil: no rate limit
	metrics *metrics
	logs    *sampledLog
	tickets *ticketKeys // nil: crypto/tls's own, per process

	// shared is the config of every handshake (config), made from
	// sharedBase, with the ticket keys of sharedEpoch once sharedKeys.
	sharedMu    sync.Mutex
	shared      *tls.Config
	sharedBase  *tls.Config
	sharedEpoch int64
	sharedKeys  bool

	mu       sync.Mutex
	pending  int
	bySource map[netip.Addr]int
}

func newGate(cfg Config, m *metrics, log *slog.Logger) *gate {
	g := &gate{
		cfg:      cfg,
		slots:    make(chan struct{}, cfg.MaxHandshakes),
		metrics:  m,
		logs:     newSampledLog(log, 10*time.Second),
		bySource: make(map[netip.Addr]int),
		tickets:  newTicketKeys(cfg.TicketSecret, ticketPeriod),
	}
	if cfg.HandshakeRate > 0 {
		g.limiter = rate.NewLimiter(rate.Limit(cfg.HandshakeRate), max(1, cfg.HandshakeRate/10))
	}
	return g
}

// await waits for the handshake's turn under HandshakeRate: at once while
// the rate allows, else up to RateWait, holding nothing but the
// connection. It fails with errBusy when the turn would come later than
// that (the agent backs off and comes back) or when ctx ends.
func (g *gate) await(ctx context.Context) error {
	if g.limiter == nil {
		return nil
	}
	r := g.limiter.Reserve()
	delay := r.Delay()
	if !r.OK() || delay > g.cfg.RateWait {
		r.Cancel()
		return errBusy
	}
	if delay <= 0 {
		return nil
	}
	g.metrics.rateWaits.Inc()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// admit counts a new connection against the limits; ok false means it is
// to be closed at once. done must be called when the handshake ends.
func (g *gate) admit(src netip.Addr) (done func(), result string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.pending >= g.cfg.MaxPending:
		return nil, resultPending, false
	case g.bySource[src] >= g.cfg.MaxPendingPerSource:
		return nil, resultSourceLimit, false
	}
	g.pending++
	g.bySource[src]++
	g.metrics.pending.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.pending--
			if g.bySource[src]--; g.bySource[src] <= 0 {
				delete(g.bySource, src)
			}
			g.metrics.pending.Dec()
		})
	}, "", true
}

// errBusy ends a handshake for which no slot came free in time.
var errBusy = errors.New("tunnel: too many handshakes under way; try again later")

// handshake runs the server side of the TLS handshake on raw under the
// gate's deadlines and slots. On failure it returns the result label.
func (g *gate) handshake(ctx context.Context, raw net.Conn, base *tls.Config) (*tls.Conn, string, error) {
	now := time.Now()
	helloBy := now.Add(g.cfg.HelloTimeout)
	if err := raw.SetDeadline(helloBy); err != nil {
		return nil, resultTLSFailed, err
	}
	cfg, err := g.config(base, now)
	if err != nil {
		return nil, resultTLSFailed, err
	}
	sc := &slotConn{Conn: raw, start: now}
	defer sc.release()
	tc := tls.Server(sc, cfg)
	hctx, cancel := context.WithDeadline(ctx, now.Add(g.cfg.HandshakeTimeout))
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, errBusy):
			return nil, resultBusy, err
		case !sc.gotHello:
			return nil, resultNoHello, err
		case isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
			return nil, resultTimeout, err
		}
		return nil, resultTLSFailed, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, resultTLSFailed, err
	}
	return tc, "", nil
}

// config returns the server config of the handshakes on base: base with
// the gate's hello callback and the ticket keys for now. One config serves
// every connection: a tls.Conn keeps its config for its whole life, and a
// clone per connection (with its own ticket keys) was 0.7 KB of every
// session's memory.
func (g *gate) config(base *tls.Config, now time.Time) (*tls.Config, error) {
	g.sharedMu.Lock()
	defer g.sharedMu.Unlock()
	if g.shared == nil || g.sharedBase != base {
		c := base.Clone()
		c.GetConfigForClient = g.hello
		g.shared, g.sharedBase, g.sharedKeys = c, base, false
	}
	// Ticket keys change once a period; crypto/tls lets them be set on a
	// config in use.
	if e := g.tickets.epochOf(now); !g.sharedKeys || e != g.sharedEpoch {
		if err := g.tickets.set(g.shared, now); err != nil {
			return nil, err
		}
		g.sharedEpoch, g.sharedKeys = e, true
	}
	return g.shared, nil
}

// hello runs when a connection's ClientHello is in: from then on the
// handshake may take its full time, once it has its turn under
// HandshakeRate and a slot.
func (g *gate) hello(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	sc, ok := hello.Conn.(*slotConn)
	if !ok {
		return nil, errors.New("tunnel: a handshake on a connection the gate did not admit")
	}
	sc.gotHello = true
	if err := sc.Conn.SetDeadline(sc.start.Add(g.cfg.HandshakeTimeout)); err != nil {
		return nil, err
	}
	if err := g.await(hello.Context()); err != nil {
		return nil, err
	}
	wait := time.NewTimer(g.cfg.SlotWait)
	defer wait.Stop()
	select {
	case g.slots <- struct{}{}:
		sc.hold(g.slots)
		return nil, nil // go on with the shared config
	case <-wait.C:
		return nil, errBusy
	case <-hello.Context().Done():
		return nil, hello.Context().Err()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// slotConn gives its handshake slot back at its first write: the server's
// reply to the ClientHello, after which the manager's share of the work is
// done (but for one signature check) and it only waits for the client.
type slotConn struct {
	net.Conn
	start time.Time // when the connection came to the gate
	// gotHello is set once the whole ClientHello is in (by the handshake's
	// own goroutine).
	gotHello bool

	mu   sync.Mutex
	slot chan struct{}
}

func (c *slotConn) hold(slots chan struct{}) {
	c.mu.Lock()
	c.slot = slots
	c.mu.Unlock()
}

func (c *slotConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slot != nil {
		<-c.slot
		c.slot = nil
	}
}

func (c *slotConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.release()
	return n, err
}

// sampledLog logs at most one line per interval for each message and says
// how many were left out since, so that a flood of failing connections
// cannot flood the log.
type sampledLog struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	left map[string]int
}

func newSampledLog(log *slog.Logger, every time.Duration) *sampledLog {
	return &sampledLog{log: log, every: every, last: make(map[string]time.Time), left: make(map[string]int)}
}

// warn logs msg with args unless msg was logged less than every ago.
func (s *sampledLog) warn(msg string, args ...any) {
	s.mu.Lock()
	now := time.Now()
	if last, ok := s.last[msg]; ok && now.Sub(last) < s.every {
		s.left[msg]++
		s.mu.Unlock()
		return
	}
	s.last[msg] = now
	left := s.left[msg]
	s.left[msg] = 0
	s.mu.Unlock()
	if left > 0 {
		args = append(args, "alikeNotLogged", left, "notLoggedFor", fmt.Sprint(s.every))
	}
	s.log.Warn(msg, args...)
}

// reconnectSpread is how long the agents are told to spread their
// reconnects over when they all lose their sessions at once (a restart of
// the manager): one and a half times what the handshake rate takes to let
// the connected fleet back in (1,000 agents at the default rate: 1.5s;
// 10,000: 15s). Arrivals at random times over the window come at two
// thirds of the rate on average, so that their bursts fit under it
// (waiting RateWait at most) instead of being turned away.
func (h *Hub) reconnectSpread() time.Duration {
	rate := h.cfg.HandshakeRate
	if rate <= 0 {
		rate = DefaultHandshakeRate // no cap: pace as the default would
	}
	return time.Duration(h.Connected()) * 3 * time.Second / time.Duration(2*rate)
}
