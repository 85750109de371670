package tunnel

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/admq/admq-manager/agent/metrics"
	"github.com/admq/admq-manager/agent/rpc"
	"github.com/admq/admq-manager/internal/muxframe"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// firstReportDelay is how long after connecting the first metrics report
// goes out: soon, so a new server shows up in the fleet scrape at once,
// but late enough for its CPU usage to cover a moment.
const firstReportDelay = time.Second

// minMetricsInterval is the shortest interval the manager may ask for.
const minMetricsInterval = time.Second

// ackRefresh is how old the manager's last answer to a report may get
// before the next report goes as a call again, when reports go as frames:
// the answer carries the intervals and the reconnect spread, which grows
// with the manager's fleet.
const ackRefresh = 5 * time.Minute

// reportMetrics sends a metrics report shortly after the session comes up
// and then at the interval the manager asks for, until the session ends.
// A failing report is logged once at warn, then at debug until one works.
// With withFacts the reports are the heartbeat too: they carry the host's
// facts at the heartbeat interval.
//
// With send (the manager takes out-of-band frames, muxframe.FramesALPN)
// most reports go as a frame below yamux: no stream, no answer, nothing
// for the manager to do but decode and keep it. A report still goes as a
// call, for the manager's answer, when it is the session's first (the
// manager may have to look the server up, which it does not do for a
// frame), while the reconnect spread of the last two answers differs by
// more than a third (the manager's fleet is still connecting fast, see
// settled), when the last answer is ackRefresh old, after a failed call,
// and when it is too large for a frame.
//
// follow is told the interval the manager asks for (the heartbeats follow
// it, see beatInterval).
func (c *Client) reportMetrics(ctx context.Context, mux *yamux.Session, mc agentv1.ManagerServiceClient, withFacts bool, send func(body []byte) error, follow func(time.Duration)) {
	log := c.log.With("component", "metrics")
	interval := c.reportInterval()
	delay := firstReportDelay
	if withFacts {
		delay = 0 // the first report announces the host, as a heartbeat would
	}
	if c.reported.Load() {
		// A reconnect: the manager has heard from this host before. When
		// it restarts, its whole fleet reconnects within seconds; the
		// first reports then spread over an interval instead of coming
		// all at once.
		delay = rand.N(interval)
	}
	factsEvery := c.cfg.HeartbeatInterval
	var factsSent time.Time // when facts last went through
	var failing bool
	var lastCollectErr string
	var acked time.Time          // when the manager last answered a report
	var spread, lastSpread int64 // its last two reconnect spreads
	var answers int
	due := time.Now().Add(delay)
	for {
		t := time.NewTimer(max(time.Until(due), 0))
		select {
		case <-t.C:
		case <-mux.CloseChan():
			t.Stop()
			return
		}
		// The next report is due an interval after this one, on the grid
		// the heartbeats go out on (Config.FrameGrid).
		fired := time.Now()
		due = muxframe.OnGrid(fired.Add(interval), c.cfg.FrameGrid)
		r, err := c.collector.Collect(ctx)
		if err != nil {
			// A part of the host could not be read; the rest still goes out.
			if msg := err.Error(); msg != lastCollectErr {
				lastCollectErr = msg
				log.Warn("some host metrics could not be read", "err", err)
			} else {
				log.Debug("some host metrics could not be read", "err", err)
			}
		} else {
			lastCollectErr = ""
		}
		msg := metricsToProto(r)
		// Facts go out when due; half a report interval early rather than
		// a whole interval late.
		withFactsNow := withFacts && (factsSent.IsZero() || time.Since(factsSent) >= factsEvery-interval/2)
		if withFactsNow {
			f, err := c.facts.Collect(ctx)
			if err != nil {
				log.Warn("collect facts", "err", err)
			}
			msg.Facts = rpc.FactsToProto(f)
		}
		if send != nil && answers >= 2 && settled(lastSpread, spread) && time.Since(acked) < ackRefresh {
			if body, err := proto.Marshal(msg); err == nil && len(body) <= muxframe.MaxBody {
				if err := send(body); err != nil {
					// The connection failed: the session is ending.
					log.Debug("metrics report frame not sent", "err", err)
					continue
				}
				c.reported.Store(true)
				if withFactsNow {
					factsSent = time.Now()
				}
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
		ack, err := mc.ReportMetrics(rctx, msg)
		cancel()
		switch {
		case status.Code(err) == codes.Unimplemented:
			log.Info("manager does not take metrics reports; not sending them on this session")
			return
		case err != nil && !failing:
			failing = true
			log.Warn("metrics report failed; will keep trying", "err", err)
		case err != nil:
			log.Debug("metrics report failed", "err", err)
		default:
			c.reported.Store(true)
			if failing {
				failing = false
				log.Info("metrics reports go through again")
			}
			if ms := ack.GetIntervalMs(); ms > 0 {
				interval = max(time.Duration(ms)*time.Millisecond, minMetricsInterval)
				due = muxframe.OnGrid(fired.Add(interval), c.cfg.FrameGrid)
				follow(interval)
			}
			c.pace.advise(ack.GetReconnectSpreadMs())
			if ms := ack.GetFactsIntervalMs(); ms >= 1000 {
				factsEvery = time.Duration(ms) * time.Millisecond
			}
			if withFactsNow {
				factsSent = time.Now()
			}
			acked, lastSpread, spread = time.Now(), spread, ack.GetReconnectSpreadMs()
			answers++
		}
		if err != nil {
			answers = 0 // calls until two answers agree again
		}
	}
}

// settled reports whether two reconnect spreads in a row (ms) are within
// a third of each other, or two seconds (a spread that short matters
// little next to the backoff's 15 s): the manager's fleet is no longer
// growing fast, and the later one, which the agent keeps, is close enough.
// A third is the headroom the manager leaves (its spread is 1.5 times what
// its handshake rate needs): agents that keep at least two thirds of the
// final spread still come back within the rate after a restart. A tenth
// kept the agents that connected early in a fleet's first connect making
// calls for two or three more report intervals after the fleet had
// stopped growing: with 10,000 agents connecting over 55 s, test/load's
// idle window (from ~10 s after its fan-out) saw 2,261 report calls in
// 33 s with a tenth, none with a third.
func settled(a, b int64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= max(a, b)/3 || d <= 2000
}

// metricsToProto converts a metrics sample to its wire form.
func metricsToProto(r metrics.Report) *agentv1.MetricsReport {
	p := &agentv1.MetricsReport{
		CollectedAtUnixMs:    r.CollectedAt.UnixMilli(),
		Hostname:             r.Hostname,
		CpuUsageRatio:        r.CPUUsage,
		CpuCount:             int32(r.CPUCount),
		Load1:                r.Load1,
		Load5:                r.Load5,
		Load15:               r.Load15,
		MemoryTotalBytes:     r.MemoryTotal,
		MemoryAvailableBytes: r.MemoryAvailable,
		MemoryUsedBytes:      r.MemoryUsed,
		SwapTotalBytes:       r.SwapTotal,
		SwapUsedBytes:        r.SwapUsed,
		Filesystems:          make([]*agentv1.FilesystemMetrics, len(r.Filesystems)),
		Network:              make([]*agentv1.NetworkMetrics, len(r.Network)),
		Processes:            make([]*agentv1.ProcessMetrics, len(r.Processes)),
	}
	for i, f := range r.Filesystems {
		p.Filesystems[i] = &agentv1.FilesystemMetrics{
			Path: f.Path, Device: f.Device, Fstype: f.FSType,
			TotalBytes: f.Total, FreeBytes: f.Free, UsedBytes: f.Used,
		}
	}
	for i, n := range r.Network {
		p.Network[i] = &agentv1.NetworkMetrics{
			Device: n.Device, RxBytes: n.RxBytes, TxBytes: n.TxBytes,
			RxPackets: n.RxPackets, TxPackets: n.TxPackets, RxErrors: n.RxErrors, TxErrors: n.TxErrors,
		}
	}
	for i, pr := range r.Processes {
		p.Processes[i] = &agentv1.ProcessMetrics{
			Name: pr.Name, Pid: pr.PID, CpuSecondsTotal: pr.CPUSeconds, RssBytes: pr.RSS, Running: pr.Running,
		}
	}
	return p
}
