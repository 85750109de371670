package tunnel

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
