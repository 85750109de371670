package tunnel

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReportFramesLeaveTheReader: a report frame is queued as a copy for
// the keepers, not kept on the connection's reading goroutine, and one
// that finds the queue full is dropped and counted as busy.
func TestReportFramesLeaveTheReader(t *testing.T) {
	h := New(Config{}, &tls.Config{}, Deps{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	s := newSession(context.Background(), h, 1, "127.0.0.1", true)
	body := []byte{1, 2, 3}
	for range reportQueue + 3 {
		s.frame(1, body)
	}
	body[0] = 9 // the reader's buffer is used again at once
	if n := len(h.reports); n != reportQueue {
		t.Fatalf("%d reports queued, want %d", n, reportQueue)
	}
	if r := <-h.reports; r.s != s || r.body[0] != 1 {
		t.Fatalf("queued %v of session %p; want a copy of the body of session %p", r.body, r.s, s)
	}
	if busy := testutil.ToFloat64(h.metrics.reportFrames.WithLabelValues(frameBusy)); busy != 3 {
		t.Fatalf("%v reports counted busy, want 3", busy)
	}
}
