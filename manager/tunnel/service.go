package tunnel

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// managerService serves agent-to-manager calls.
type managerService struct {
	agentv1.UnimplementedManagerServiceServer
	hub *Hub
}

// authorize lets sessions without a client certificate call Enroll and
// nothing else, and enrolled agents call everything but Enroll.
func authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, ok := PeerFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no tunnel identity")
	}
	isEnroll := info.FullMethod == agentv1.ManagerService_Enroll_FullMethodName
	switch {
	case p.AgentID.IsZero() && !isEnroll:
		return nil, status.Error(codes.Unauthenticated, "enroll first")
	case !p.AgentID.IsZero() && isEnroll:
		return nil, status.Error(codes.FailedPrecondition, "already enrolled")
	}
	return handler(ctx, req)
}

func (m *managerService) Enroll(ctx context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	p, _ := PeerFrom(ctx)
	res, err := m.hub.deps.Enroller.Enroll(ctx, enroll.Request{
		Token:        req.GetToken(),
		CSR:          req.GetCsrDer(),
		Hostname:     req.GetHostname(),
		AgentVersion: req.GetAgentVersion(),
		AdvertiseIP:  req.GetAdvertiseIp(),
		RemoteIP:     p.RemoteIP,
	})
	if err != nil {
		m.hub.metrics.enrollments.WithLabelValues(enrollResult(err)).Inc()
		return nil, grpcError(err)
	}
	m.hub.metrics.enrollments.WithLabelValues("ok").Inc()
	return &agentv1.EnrollResponse{AgentId: res.AgentID.String(), CertPem: res.CertPEM, CaPem: res.CAPEM}, nil
}

func (m *managerService) Heartbeat(ctx context.Context, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	p, _ := PeerFrom(ctx)
	if req.GetFacts() == nil {
		return nil, status.Error(codes.InvalidArgument, "heartbeat without facts")
	}
	f, err := factsFromProtoChecked(req.GetFacts())
	if err != nil {
		return nil, grpcError(err)
	}
	m.hub.deps.Presence.Heartbeat(p.AgentID, f)
	return &agentv1.HeartbeatResponse{IntervalMs: m.hub.cfg.HeartbeatInterval.Milliseconds(), ReconnectSpreadMs: m.hub.reconnectSpread().Milliseconds()}, nil
}

// ReportMetrics takes an agent's host metrics and tells it when to send
// the next ones.
func (m *managerService) ReportMetrics(ctx context.Context, req *agentv1.MetricsReport) (*agentv1.MetricsAck, error) {
	p, _ := PeerFrom(ctx)
	if _, err := m.hub.takeReport(ctx, p.AgentID, req, true); err != nil {
		return nil, grpcError(err)
	}
	return &agentv1.MetricsAck{
		IntervalMs:        m.hub.cfg.MetricsInterval.Milliseconds(),
		FactsIntervalMs:   m.hub.cfg.HeartbeatInterval.Milliseconds(),
		ReconnectSpreadMs: m.hub.reconnectSpread().Milliseconds(),
	}, nil
}

// takeReport validates an agent's metrics report and keeps it, and the
// facts it carries as the agent's heartbeat. With lookup it may look the
// server up to label its series (a server's first report); without, it
// must not wait (frames.go), and a report of a server the metrics store
// does not know yet is not kept: kept is false.
func (h *Hub) takeReport(ctx context.Context, id ids.ID, req *agentv1.MetricsReport, lookup bool) (kept bool, err error) {
	r, err := metricsFromProto(req)
	if err != nil {
		return false, err
	}
	var facts *fleet.Facts
	if req.GetFacts() != nil {
		f, err := factsFromProtoChecked(req.GetFacts())
		if err != nil {
			return false, err
		}
		facts = &f
	}
	if lookup {
		err = h.deps.Metrics.Report(ctx, id, r)
		kept = err == nil
	} else {
		kept, err = h.deps.Metrics.ReportKnown(id, r)
	}
	if !kept || err != nil {
		return false, err
	}
	if facts != nil {
		// The report is the heartbeat too.
		h.deps.Presence.Heartbeat(id, *facts)
	}
	return true, nil
}

func enrollResult(err error) string {
	switch {
	case errors.Is(err, enroll.ErrTokenRefused):
		return "token_refused"
	case errors.Is(err, enroll.ErrAlreadyEnrolled):
		return "already_enrolled"
	}
	if _, ok := invalid.As(err); ok {
		return "invalid"
	}
	return "error"
}

// grpcError is the one table from domain errors to gRPC codes.
func grpcError(err error) error {
	switch {
	case errors.Is(err, enroll.ErrTokenRefused):
		return status.Error(codes.PermissionDenied, "join token refused: unknown, expired, revoked or used up")
	case errors.Is(err, enroll.ErrAlreadyEnrolled):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, fleet.ErrServerNotFound):
		return status.Error(codes.NotFound, "server does not exist")
	}
	if e, ok := invalid.As(err); ok {
		return status.Error(codes.InvalidArgument, e.Error())
	}
	return status.Error(codes.Internal, "internal error")
}
