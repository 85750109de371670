package tunnel

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
