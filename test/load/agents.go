package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
)

// fleet is N in-process agents, each with its own state dir, advertised
// address and TCP connection to the manager's tunnel.
type fleet struct {
	base   agenttunnel.Config // ManagerAddr, Token, CAPin
	log    *slog.Logger
	agents []*agent

	ctx    context.Context // parent of every agent's context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	failures   []error      // Run returned an error (permanent)
	firstErr   map[int]bool // agents whose failure is recorded
	enrollTime latencies    // Run start to first session, per agent
	enrollRPC  latencies    // first dial (enrollment) to second dial (session)
	sessionUp  latencies    // second dial to the session being up

	connected atomic.Int64  // agents that have had a session at least once
	sem       chan struct{} // limits concurrent first connections; nil: none
	startedAt time.Time     // first agent start
	allFirst  chan struct{} // closed when every agent has had a session
	allOnce   sync.Once
}

// agent is one simulated host.
type agent struct {
	idx int
	dir string
	ip  string // AdvertiseIP, unique: servers.manager_ip is unique

	noDial atomic.Bool // make Dial fail, so a stopped agent cannot come back

	mu     sync.Mutex
	dials  []time.Time // when each dial started (the first two: enroll, session)
	id     string      // server id, learned at the first session
	conn   *linkConn   // the current connection
	cancel context.CancelFunc
	done   chan struct{}
}

var errDialDisabled = errors.New("load test: dialing disabled for this agent")

func newFleet(ctx context.Context, base agenttunnel.Config, n int, dir string, log *slog.Logger) (*fleet, error) {
	f := &fleet{base: base, log: log, firstErr: make(map[int]bool), allFirst: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(ctx)
	for i := range n {
		a := &agent{
			idx: i,
			dir: filepath.Join(dir, fmt.Sprintf("agent-%05d", i)),
			ip:  fmt.Sprintf("127.%d.%d.%d", 1+i/62500, (i/250)%250, i%250+1),
		}
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			f.cancel()
			return nil, err
		}
		f.agents = append(f.agents, a)
	}
	return f, nil
}

// startAll starts every agent; at most limit of them enroll and open their
// first session at once (0: no limit).
func (f *fleet) startAll(limit int) {
	if limit > 0 {
		f.sem = make(chan struct{}, limit)
	}
	f.startedAt = time.Now()
	for _, a := range f.agents {
		f.start(a, f.sem)
	}
}

// start runs one agent until its context ends; sem, if not nil, is held
// from just before Run until the agent's first session is up.
func (f *fleet) start(a *agent, sem chan struct{}) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()

	cfg := f.base
	cfg.StateDir = a.dir
	cfg.AdvertiseIP = a.ip
	cfg.Dial = a.dial
	c := agenttunnel.New(cfg, f.log.With("agent", a.idx))
	var release sync.Once
	releaseSem := func() {
		if sem != nil {
			release.Do(func() { <-sem })
		}
	}
	var runStart time.Time // set before Run; Connected runs inside Run
	c.Connected = func(id string) {
		a.mu.Lock()
		first := a.id == ""
		a.id = id
		a.mu.Unlock()
		if first {
			now := time.Now()
			a.mu.Lock()
			if len(a.dials) == 2 {
				f.mu.Lock()
				f.enrollRPC = append(f.enrollRPC, a.dials[1].Sub(a.dials[0]))
				f.sessionUp = append(f.sessionUp, now.Sub(a.dials[1]))
				f.mu.Unlock()
			}
			a.mu.Unlock()
			f.mu.Lock()
			f.enrollTime = append(f.enrollTime, now.Sub(runStart))
			f.mu.Unlock()
			if f.connected.Add(1) == int64(len(f.agents)) {
				f.allOnce.Do(func() { close(f.allFirst) })
			}
		}
		releaseSem()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		runStart = time.Now()
		err := c.Run(ctx)
		releaseSem()
		if err != nil {
			f.mu.Lock()
			if !f.firstErr[a.idx] {
				f.firstErr[a.idx] = true
				f.failures = append(f.failures, fmt.Errorf("agent %d (%s): %w", a.idx, a.ip, err))
			}
			f.mu.Unlock()
			f.log.Error("agent stopped", "agent", a.idx, "err", err)
		}
	}()
}

// failed returns the agents' permanent errors so far.
func (f *fleet) failed() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.failures...)
}

// ids returns every agent's server id ("" for an agent that never connected).
func (f *fleet) ids() []string {
	out := make([]string, len(f.agents))
	for i, a := range f.agents {
		out[i] = a.serverID()
	}
	return out
}

// stopAgent cancels one agent and waits for its Run to return.
func (f *fleet) stopAgent(a *agent, limit time.Duration) error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	cancel()
	select {
	case <-done:
		return nil
	case <-time.After(limit):
		return fmt.Errorf("agent %d did not stop within %v", a.idx, limit)
	}
}

// restart starts a stopped agent again, dialing allowed.
func (f *fleet) restart(a *agent) {
	a.noDial.Store(false)
	f.start(a, nil)
}

// stop ends every agent, waiting up to limit, and closes any connection a
// freeze left open.
func (f *fleet) stop(limit time.Duration) error {
	f.cancel()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-time.After(limit):
		err = fmt.Errorf("agents did not all stop within %v", limit)
	}
	for _, a := range f.agents {
		if c := a.current(); c != nil {
			c.release()
		}
	}
	return err
}

func (a *agent) serverID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

func (a *agent) current() *linkConn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn
}

// dial is the agent's Config.Dial: a loopback TCP connection wrapped so the
// test can freeze or cut it.
func (a *agent) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a.noDial.Load() {
		return nil, errDialDisabled
	}
	a.mu.Lock()
	if len(a.dials) < 2 {
		a.dials = append(a.dials, time.Now())
	}
	a.mu.Unlock()
	// From the agent's own loopback address, as a host would from its own:
	// the manager limits unfinished connections per source address.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(a.ip)}}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	lc := newLinkConn(c)
	a.mu.Lock()
	old := a.conn
	a.conn = lc
	a.mu.Unlock()
	if old != nil {
		old.release() // a frozen predecessor kept its socket open until now
	}
	return lc, nil
}

// linkConn is a TCP connection the test can freeze (stop forwarding reads
// and writes while the socket stays open: a host that hung or vanished
// without a FIN or RST) or cut (close the socket at once, with an RST).
type linkConn struct {
	net.Conn
	mu     sync.Mutex
	frozen bool
	closed bool
	gone   chan struct{} // closed by Close
}

func newLinkConn(c net.Conn) *linkConn { return &linkConn{Conn: c, gone: make(chan struct{})} }

func (c *linkConn) isFrozen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frozen
}

func (c *linkConn) Read(p []byte) (int, error) {
	if c.isFrozen() {
		<-c.gone
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if c.isFrozen() {
		// Data that arrived after the freeze is never delivered.
		<-c.gone
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *linkConn) Write(p []byte) (int, error) {
	if c.isFrozen() {
		select {
		case <-c.gone:
			return 0, net.ErrClosed
		default:
			return len(p), nil // swallowed: nothing reaches the manager
		}
	}
	return c.Conn.Write(p)
}

// Close closes the socket, except when frozen: then it only ends the
// wrapper (unblocking readers), and the socket stays open until release.
func (c *linkConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.gone)
	if c.frozen {
		// Kick a Read blocked in the socket without sending anything.
		_ = c.Conn.SetReadDeadline(time.Now())
		return nil
	}
	return c.Conn.Close()
}

func (c *linkConn) freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
}

// cut closes the socket abruptly: SO_LINGER 0 makes the kernel send an RST.
func (c *linkConn) cut() error {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.Conn.Close()
}

// release closes the socket whatever state the wrapper is in.
func (c *linkConn) release() { _ = c.Conn.Close() }

// countingHandler passes records on and counts them by level and message.
type countingHandler struct {
	slog.Handler
	c *msgCounter
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	key, example := r.Level.String()+" "+r.Message, ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			example = "err=" + a.Value.String()
			key += " [" + errClass(a.Value.String()) + "]"
			return false
		}
		return true
	})
	h.c.add(key, example)
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.c}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.c}
}

// hostEtcFiles are the /etc files gopsutil reads to name the platform.
var hostEtcFiles = []string{
	"os-release", "lsb-release", "debian_version", "redhat-release", "centos-release",
	"system-release", "oracle-release", "enterprise-release", "gentoo-release",
	"SuSE-release", "arch-release", "alpine-release", "slackware-version",
}

// fakeHostEtc fills dir with copies of the platform files of /etc and, if
// /etc has none, an lsb-release made from os-release. Pointed at by
// HOST_ETC, it spares every in-process agent from running
// /usr/bin/lsb_release (gopsutil's fallback when /etc/lsb-release is
// missing) at each heartbeat: a fork and exec per agent per 30 s that would
// load this one machine as a thousand hosts would each load themselves.
func fakeHostEtc(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range hostEtcFiles {
		b, err := os.ReadFile(filepath.Join("/etc", name))
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lsb-release")); err == nil {
		return nil
	}
	osr, _ := os.ReadFile(filepath.Join("/etc", "os-release"))
	vals := map[string]string{}
	for line := range strings.Lines(string(osr)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			vals[k] = strings.Trim(v, `"`)
		}
	}
	lsb := fmt.Sprintf("DISTRIB_ID=%s\nDISTRIB_RELEASE=%s\nDISTRIB_CODENAME=%s\nDISTRIB_DESCRIPTION=%q\n",
		vals["ID"], vals["VERSION_ID"], vals["VERSION_CODENAME"], vals["PRETTY_NAME"])
	return os.WriteFile(filepath.Join(dir, "lsb-release"), []byte(lsb), 0o644)
}
