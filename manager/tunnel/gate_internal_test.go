package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/admq/admq-manager/manager/pki"
)

func TestGateAdmitLimits(t *testing.T) {
	cfg := DefaultConfig().withDefaults()
	cfg.MaxPendingPerSource, cfg.MaxPending = 2, 3
	g := newGate(cfg, newMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	var dones []func()
	for _, tc := range []struct {
		src    netip.Addr
		ok     bool
		reason string
	}{
		{a, true, ""},
		{a, true, ""},
		{a, false, resultSourceLimit},
		{b, true, ""},
		{b, false, resultPending},
	} {
		done, reason, ok := g.admit(tc.src)
		if ok != tc.ok || reason != tc.reason {
			t.Fatalf("admit(%v) = %q %v, want %q %v", tc.src, reason, ok, tc.reason, tc.ok)
		}
		if ok {
			dones = append(dones, done)
		}
	}
	dones[0]()
	dones[0]() // twice is harmless
	if _, reason, ok := g.admit(b); !ok {
		t.Fatalf("a finished connection did not free its place: %s", reason)
	}
	for _, d := range dones[1:] {
		d()
	}
	if g.pending != 1 || len(g.bySource) != 1 {
		t.Fatalf("after the dones: pending %d, sources %v", g.pending, g.bySource)
	}
}

func TestSampledLog(t *testing.T) {
	var buf bytes.Buffer
	s := newSampledLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 1000 {
		s.warn("tunnel handshake failed", "reason", "no_hello")
	}
	s.warn("tunnel connection refused", "reason", "source_limit")
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("1001 warnings of two kinds gave %d lines, want 2:\n%s", n, buf.String())
	}
	s.last["tunnel handshake failed"] = time.Now().Add(-2 * time.Hour)
	s.warn("tunnel handshake failed", "reason", "no_hello")
	if !strings.Contains(buf.String(), "alikeNotLogged=999") {
		t.Fatalf("the next line does not say how many were left out:\n%s", buf.String())
	}
}

// TestHandshakeRateQueuesThenTurnsAway: beyond the rate's burst, a
// handshake waits its turn while that comes within RateWait (counted in
// admq_tunnel_handshake_rate_waits_total), and is turned away (errBusy)
// when it would come later; a wait that ends early because the connection
// went gives its turn back.
func TestHandshakeRateQueuesThenTurnsAway(t *testing.T) {
	cfg := DefaultConfig().withDefaults()
	cfg.HandshakeRate, cfg.RateWait = 20, 200*time.Millisecond // burst 2, then one per 50 ms
	reg := prometheus.NewRegistry()
	g := newGate(cfg, newMetrics(reg), slog.New(slog.DiscardHandler))
	ctx := t.Context()
	for i := range 2 {
		if err := g.await(ctx); err != nil {
			t.Fatalf("handshake %d of the burst: %v", i, err)
		}
	}
	// The burst is spent: each of the next ones has to wait for its turn
	// (about 50 ms each), which comes within RateWait.
	for i := range 2 {
		if err := g.await(ctx); err != nil {
			t.Fatalf("queued handshake %d: %v", i, err)
		}
	}
	if got := testutil.ToFloat64(g.metrics.rateWaits); got < 1 {
		t.Fatalf("admq_tunnel_handshake_rate_waits_total = %v after handshakes beyond the burst, want them counted as waits", got)
	}
	// Others hold the turns of the next RateWait and more: a caller whose
	// turn is beyond RateWait is turned away, not queued.
	for range 8 {
		r := g.limiter.Reserve()
		defer r.Cancel()
	}
	if err := g.await(ctx); !errors.Is(err, errBusy) {
		t.Fatalf("a turn beyond RateWait: %v, want errBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	g2 := newGate(cfg, newMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	for range 2 {
		_ = g2.await(ctx) // spend the burst
	}
	if err := g2.await(cctx); err == nil || errors.Is(err, errBusy) {
		t.Fatalf("a wait whose connection is gone: %v, want its context's error", err)
	}
}

// TestGateSharedConfigRotatesTicketKeys: every handshake shares one server
// config, whose ticket keys still follow the period: a ticket resumes in
// its own period and the next, and not after that.
func TestGateSharedConfigRotatesTicketKeys(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.Open(filepath.Join(dir, "pki"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	base, err := ca.ServerTLSConfig([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	base.ClientAuth = tls.NoClientCert
	secret, err := pki.TicketSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig().withDefaults()
	cfg.TicketSecret = secret
	g := newGate(cfg, newMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("no CA certificate")
	}
	client := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		ClientSessionCache: tls.NewLRUClientSessionCache(1)}

	t0 := time.Now()
	var first *tls.Config
	resumes := func(now time.Time) bool {
		t.Helper()
		sc, err := g.config(base, now)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = sc
		} else if sc != first {
			t.Fatal("the gate made a second server config")
		}
		cc, srv := net.Pipe()
		defer cc.Close()
		defer srv.Close()
		done := make(chan error, 1)
		go func() {
			s := tls.Server(&slotConn{Conn: srv, start: now}, sc)
			err := s.HandshakeContext(t.Context())
			if err == nil {
				_, err = s.Write([]byte{1}) // after the ticket
			}
			done <- err
		}()
		c := tls.Client(cc, client)
		if err := c.HandshakeContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // reads the ticket too
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().DidResume
	}
	if resumes(t0) {
		t.Fatal("the first handshake resumed")
	}
	if !resumes(t0.Add(ticketPeriod)) {
		t.Fatal("a ticket of the previous period was refused")
	}
	if resumes(t0.Add(3 * ticketPeriod)) {
		t.Fatal("a ticket two periods old resumed")
	}
}
