package tunnel

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

type metrics struct {
	connected   prometheus.Gauge
	handshakes  *prometheus.CounterVec
	enrollments *prometheus.CounterVec
	rpc         *prometheus.HistogramVec
	clientConns prometheus.Gauge
	// pending counts connections not yet through the TLS handshake.
	pending prometheus.Gauge
	// silentClosed counts sessions closed because the agent went silent.
	silentClosed prometheus.Counter
	// longestSilence takes, at each keepalive sweep, the longest silence
	// among the sessions it kept open: how close the fleet comes to the
	// idle timeout.
	longestSilence prometheus.Histogram
	// pings counts the keepalive pings sent to agents that send no
	// heartbeats of their own.
	pings prometheus.Counter
	// transfers counts package transfers under way.
	transfers prometheus.Gauge
	// packageBytes counts package bytes sent to agents.
	packageBytes prometheus.Counter
	// rateWaits counts handshakes that waited for their turn under
	// HandshakeRate.
	rateWaits prometheus.Counter
	// resumed counts agent sessions whose handshake resumed a TLS session.
	resumed prometheus.Counter
	// reportFrames counts the metrics reports agents send as out-of-band
	// frames, by result (frames.go).
	reportFrames *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "connected_agents",
			Help: "Agents with a live, authenticated session.",
		}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "handshakes_total",
			Help: "Tunnel connection attempts by result: agent, enrollment, or why the connection was closed (no_hello, source_limit, pending_limit, busy, timeout, tls_failed, mux_failed).",
		}, []string{"result"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "enrollments_total",
			Help: "Enrollment attempts by result.",
		}, []string{"result"}),
		rpc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "rpc_duration_seconds",
			Help:    "Latency of tunnel RPCs by direction, method and gRPC code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"direction", "method", "code"}),
		clientConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "agent_client_conns",
			Help: "gRPC client connections the manager holds open to agents (dialed on demand, closed when idle).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "pending_connections",
			Help: "Tunnel connections accepted but not yet through the TLS handshake.",
		}),
		silentClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "silent_sessions_closed_total",
			Help: "Agent sessions closed because nothing arrived over them for the idle timeout.",
		}),
		longestSilence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "longest_silence_seconds",
			Help:    "At each keepalive sweep (every 0.8 s by default), the longest time any agent session kept open had sent nothing: agents write at least every 5.2 s (a heartbeat or a report), sessions silent for the idle timeout (9 s) are closed; the part above 5.2 s is how late frames arrive.",
			Buckets: prometheus.LinearBuckets(1, 0.5, 17),
		}),
		pings: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "keepalive_pings_total",
			Help: "Pings sent to quiet agents that send no heartbeats of their own (agents from before heartbeats).",
		}),
		transfers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "package_transfers",
			Help: "Package transfers to agents under way (at most MaxPackageTransfers; more wait).",
		}),
		packageBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "package_bytes_total",
			Help: "Package bytes sent to agents (transfers the agent could skip send none).",
		}),
		rateWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "handshake_rate_waits_total",
			Help: "Tunnel handshakes that waited for their turn under the handshake rate (those that would have waited too long count as busy in handshakes_total).",
		}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "resumed_sessions_total",
			Help: "Agent sessions whose TLS handshake resumed an earlier session with a session ticket (no certificate signatures or chain checks; the agent's certificate is still checked against the directory).",
		}),
		reportFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "admq", Subsystem: "tunnel", Name: "report_frames_total",
			Help: "Metrics reports agents sent as out-of-band frames below yamux, by result: ok; invalid (dropped, as a call would have been refused); unknown_server (dropped: the server has no labels yet, or was deleted); busy (dropped: the queue of reports to keep was full); broken (bytes that are not frames: the session was ended).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.reportFrames, m.connected, m.handshakes, m.enrollments, m.rpc, m.clientConns, m.pending, m.silentClosed, m.longestSilence, m.pings, m.transfers, m.packageBytes, m.rateWaits, m.resumed)
	return m
}

func (m *metrics) observe(direction, method string, start time.Time, err error) {
	m.rpc.WithLabelValues(direction, method, status.Code(err).String()).Observe(time.Since(start).Seconds())
}

// serverInterceptor times agent-to-manager calls.
func (m *metrics) serverInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe("agent_to_manager", info.FullMethod, start, err)
	return resp, err
}

// clientInterceptor times manager-to-agent calls.
func (m *metrics) clientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.observe("manager_to_agent", method, start, err)
	return err
}
