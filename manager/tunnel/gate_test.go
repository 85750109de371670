package tunnel_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// clientHello returns the bytes of a real TLS ClientHello.
func clientHello(t *testing.T) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		_ = tc.Handshake() // blocks reading the answer until s closes
		c.Close()
	}()
	buf := make([]byte, 4096)
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// attacker keeps n connections from src open to addr and opens a new one
// whenever the manager closes one, until ctx ends. Each connection sends
// nothing (hello == nil), or hello one byte every gap.
type attacker struct {
	opened atomic.Int64
}

func (a *attacker) run(ctx context.Context, wg *sync.WaitGroup, addr, src string, n int, hello []byte, gap time.Duration) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					sleepCtx(ctx, 50*time.Millisecond)
					continue
				}
				a.opened.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				switch {
				case hello == nil: // silent
				case gap == 0: // the whole ClientHello, then silent
					_, _ = c.Write(hello)
				default: // slow
					for i := 0; i < len(hello) && ctx.Err() == nil; i++ {
						if _, err := c.Write(hello[i : i+1]); err != nil {
							break
						}
						sleepCtx(ctx, gap)
					}
				}
				_, _ = io.Copy(io.Discard, c) // never answer; until the manager hangs up
				stop()
				c.Close()
				sleepCtx(ctx, 20*time.Millisecond)
			}
		})
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// TestSilentAndSlowConnectionsDoNotKeepAgentsOut holds hundreds of
// connections that send nothing, or a ClientHello a byte at a time, or a
// whole ClientHello and then nothing, from many addresses and from one,
// for as long as real agents enroll, connect and reconnect. Every agent
// must get through while the attack lasts; the figures are printed.
func TestSilentAndSlowConnectionsDoNotKeepAgentsOut(t *testing.T) {
	if testing.Short() {
		t.Skip("holds hundreds of connections for several seconds")
	}
	e := newEnv(t, tunnel.Config{})
	hello := clientHello(t)

	attackCtx, stopAttack := context.WithCancel(t.Context())
	var attackers sync.WaitGroup
	var silent, slow, stalled, oneSource attacker
	for i := range 30 { // 300 silent connections from 30 addresses
		silent.run(attackCtx, &attackers, e.addr, fmt.Sprintf("127.0.1.%d", i+1), 10, nil, 0)
	}
	for i := range 20 { // 200 slow ClientHellos from 20 addresses
		slow.run(attackCtx, &attackers, e.addr, fmt.Sprintf("127.0.3.%d", i+1), 10, hello, 100*time.Millisecond)
	}
	for i := range 10 { // 100 whole ClientHellos, then nothing
		stalled.run(attackCtx, &attackers, e.addr, fmt.Sprintf("127.0.4.%d", i+1), 10, hello, 0)
	}
	oneSource.run(attackCtx, &attackers, e.addr, "127.0.5.1", 200, nil, 0) // 200 silent from one address
	defer func() {
		stopAttack()
		attackers.Wait()
	}()
	// Let the attack take hold before the agents come.
	waitFor(t, "the attack to fill the manager", func() bool {
		return testutil.ToFloat64(mustGauge(t, e.reg, "admq_tunnel_pending_connections")) >= 400
	})
	attackStart := time.Now()

	const agents = 6
	tok := e.token(t, agents)
	secret, pin, _ := cutJoin(tok)
	const rounds = 4 // reconnects per agent, 2s apart: the attack outlives HelloTimeout
	type result struct {
		first time.Duration
		again [rounds]time.Duration
	}
	results := make([]result, agents)
	var wg sync.WaitGroup
	for i := range agents {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.2.%d", i+1))}}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := agenttunnel.New(agenttunnel.Config{
				ManagerAddr: e.addr, Token: secret, CAPin: pin, StateDir: t.TempDir(),
				BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second, MetricsInterval: -1,
				Dial: d.DialContext,
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			connected := make(chan string, 4)
			c.Connected = func(id string) { connected <- id }
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- c.Run(ctx) }()
			defer func() { cancel(); <-done }()
			var idStr string
			select {
			case idStr = <-connected:
			case err := <-done:
				t.Errorf("agent %d stopped: %v", i, err)
				return
			case <-time.After(2 * time.Minute): // a bound against hanging, not a speed target
				t.Errorf("agent %d did not connect during the attack", i)
				return
			}
			results[i].first = time.Since(start)
			// Throw it out and let it come back through the same attack.
			id, _ := ids.Parse(idStr)
			for r := range rounds {
				time.Sleep(2 * time.Second)
				start = time.Now()
				e.hub.Disconnect(id)
				select {
				case <-connected:
					results[i].again[r] = time.Since(start)
				case <-time.After(2 * time.Minute):
					t.Errorf("agent %d did not reconnect during the attack", i)
					return
				}
			}
		})
	}
	wg.Wait()
	attackLasted := time.Since(attackStart)
	pendingAtEnd := testutil.ToFloat64(mustGauge(t, e.reg, "admq_tunnel_pending_connections"))
	stopAttack()
	attackers.Wait()

	t.Logf("attack: %d silent (30 addresses), %d slow-hello (20), %d stalled-after-hello (10), %d silent from one address: connections opened %d / %d / %d / %d over %v; pending at the end %.0f",
		300, 200, 100, 200, silent.opened.Load(), slow.opened.Load(), stalled.opened.Load(), oneSource.opened.Load(), attackLasted.Round(time.Millisecond), pendingAtEnd)
	for i, r := range results {
		t.Logf("agent %d: enrolled and connected after %v, reconnected after %v", i, r.first.Round(time.Millisecond), r.again)
	}
	for _, res := range []string{"agent", "enrollment", "no_hello", "source_limit", "pending_limit", "busy", "timeout", "tls_failed"} {
		t.Logf("admq_tunnel_handshakes_total{result=%q} = %.0f", res, testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_handshakes_total", res)))
	}
	if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_handshakes_total", "source_limit")); got == 0 {
		t.Error("200 connections from one address were all let in: no per-source limit")
	}
	if got := testutil.ToFloat64(mustCounter(t, e.reg, "admq_tunnel_handshakes_total", "no_hello")); got == 0 {
		t.Error("no connection was closed for sending no ClientHello")
	}
}
