package tunnel

import (
	"bytes"
	"context"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// The results of an out-of-band report frame, for
// admq_tunnel_report_frames_total.
const (
	frameOK      = "ok"
	frameInvalid = "invalid"
	frameUnknown = "unknown_server"
	frameBroken  = "broken"
	frameBusy    = "busy"
)

// frame is heardConn's hook for the agent's out-of-band frames
// (muxframe.FramesALPN); muxframe.Scanner.Strip passes on only those of a
// known type with a body of at most muxframe.MaxBody bytes, so typ is
// muxframe.TypeReport. It runs on yamux's reading goroutine and only
// queues a copy of the body for the hub's report keepers (keepReports):
// decoding and keeping a report there grew every session's reading
// goroutine's stack for good, 8 KB more per agent (80 MB of RSS at
// 10,000 agents), where a few keepers' stacks grow once. When the queue
// is full the report is dropped (busy); the next comes an interval later.
func (s *session) frame(_ byte, body []byte) {
	select {
	case s.hub.reports <- queuedReport{s: s, body: bytes.Clone(body)}:
	default:
		s.hub.metrics.reportFrames.WithLabelValues(frameBusy).Inc()
	}
}

// queuedReport is a report frame's body waiting for a keeper.
type queuedReport struct {
	s    *session
	body []byte
}

// Report frames wait in a queue of reportQueue for reportKeepers
// goroutines (for all sessions). A keeper's work is memory only (no
// SQLite, see keep), some 10 µs a report: 667 reports a second from
// 10,000 agents at the default interval keep one busy under 1 %.
const (
	reportQueue   = 4096
	reportKeepers = 2
)

// keepReports runs a keeper until ctx is done.
func (h *Hub) keepReports(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-h.reports:
			r.s.keep(r.body)
		}
	}
}

// keep validates and keeps a report frame's body as ReportMetrics would.
// It must not wait, so a report of a server the metrics store has no
// labels for yet is dropped instead of looked up; agents send the first
// report of every session as a call, which looks the server up. A report
// no real host sends is dropped and logged (at most once every 10 s for
// all agents), as a call would be refused; the session goes on.
func (s *session) keep(body []byte) {
	h := s.hub
	var req agentv1.MetricsReport
	err := proto.Unmarshal(body, &req)
	kept := false
	if err == nil {
		kept, err = h.takeReport(s.ctx, s.id, &req, false)
	}
	switch {
	case err != nil:
		h.metrics.reportFrames.WithLabelValues(frameInvalid).Inc()
		h.gate.logs.warn("metrics report frame dropped", "agent", s.id, "err", err)
	case !kept:
		h.metrics.reportFrames.WithLabelValues(frameUnknown).Inc()
	default:
		h.metrics.reportFrames.WithLabelValues(frameOK).Inc()
	}
}
