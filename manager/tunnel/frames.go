package tunnel

import (
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
)

// frame is heardConn's hook for the agent's out-of-band frames
// (muxframe.FramesALPN); muxframe.Scanner.Strip passes on only those of a
// known type with a body of at most muxframe.MaxBody bytes, so typ is
// muxframe.TypeReport. The body is a metrics report, validated and kept
// as ReportMetrics would, on yamux's reading goroutine: no stream, no
// goroutine, no answer. It must not wait, so a report of a server the
// metrics store has no labels for yet is dropped instead of looked up;
// agents send the first report of every session as a call, which looks
// the server up. A report no real host sends is dropped and logged (at
// most once every 10 s for all agents), as a call would be refused; the
// session goes on.
func (s *session) frame(_ byte, body []byte) {
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
