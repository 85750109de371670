package rpc

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/agent/node"
	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/invalid"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// HasPackage says whether the package cache holds a package.
func (s *Service) HasPackage(_ context.Context, req *agentv1.HasPackageRequest) (*agentv1.HasPackageResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	info, err := s.Nodes.HasPackage(req.GetSha256())
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.HasPackageResponse{Present: info.Present, Size: info.Size, Partial: info.Partial}, nil
}

// PushPackage receives a package into the cache.
func (s *Service) PushPackage(stream agentv1.AgentService_PushPackageServer) error {
	if s.Nodes == nil {
		return errNoNodes
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "empty package stream")
	}
	if err != nil {
		return err
	}
	h := node.PushHeader{SHA256: first.GetSha256(), Size: first.GetSize(), Offset: first.GetOffset()}
	res, err := s.Nodes.PushPackage(stream.Context(), h, first.GetData(), func() ([]byte, error) {
		c, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return c.GetData(), nil
	})
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&agentv1.PushPackageResponse{Received: res.Received, AlreadyPresent: res.AlreadyPresent})
}

// DeployNode installs a node.
func (s *Service) DeployNode(ctx context.Context, req *agentv1.DeployNodeRequest) (*agentv1.DeployNodeResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	res, err := s.Nodes.Deploy(ctx, DeployFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.DeployNodeResponse{
		Unpacked: res.Unpacked, Status: StateToProto(res.Status), Replayed: res.Replayed,
		Restarted: res.Restarted, Started: res.Started,
	}, nil
}

// NodeCommand starts, stops or restarts a node.
func (s *Service) NodeCommand(ctx context.Context, req *agentv1.NodeCommandRequest) (*agentv1.NodeState, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	var cmd node.Command
	switch req.GetCommand() {
	case agentv1.NodeCommandKind_NODE_COMMAND_START:
		cmd = node.CommandStart
	case agentv1.NodeCommandKind_NODE_COMMAND_STOP:
		cmd = node.CommandStop
	case agentv1.NodeCommandKind_NODE_COMMAND_RESTART:
		cmd = node.CommandRestart
	default:
		return nil, status.Errorf(codes.InvalidArgument, "command: %v: want START, STOP or RESTART", req.GetCommand())
	}
	st, _, err := s.Nodes.Command(ctx, req.GetOperationId(), req.GetName(), cmd)
	if err != nil {
		return nil, toStatus(err)
	}
	return StateToProto(st), nil
}

// NodeStatus reports nodes' states.
func (s *Service) NodeStatus(_ context.Context, req *agentv1.NodeStatusRequest) (*agentv1.NodeStatusList, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	sts, err := s.Nodes.List(req.GetNames())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &agentv1.NodeStatusList{Nodes: make([]*agentv1.NodeState, 0, len(sts))}
	for _, st := range sts {
		out.Nodes = append(out.Nodes, StateToProto(st))
	}
	return out, nil
}

// NodeLogs returns the end of a node's log.
func (s *Service) NodeLogs(_ context.Context, req *agentv1.NodeLogsRequest) (*agentv1.NodeLogsResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	b, err := s.Nodes.Logs(req.GetName(), int(req.GetMaxBytes()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.NodeLogsResponse{Data: b}, nil
}

// RemoveNode removes a node.
func (s *Service) RemoveNode(ctx context.Context, req *agentv1.RemoveNodeRequest) (*agentv1.RemoveNodeResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	res, err := s.Nodes.Remove(ctx, node.RemoveRequest{
		OperationID:  req.GetOperationId(),
		Name:         req.GetName(),
		RemoveDirs:   req.GetRemoveDirs(),
		ProgramDir:   req.GetProgramDir(),
		DataDir:      req.GetDataDir(),
		AllowedRoots: req.GetAllowedRoots(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &agentv1.RemoveNodeResponse{Replayed: res.Replayed}
	for _, k := range res.Kept {
		out.KeptDirs = append(out.KeptDirs, &agentv1.KeptDir{Path: k.Path, Reason: k.Reason})
	}
	return out, nil
}

// CheckHealth runs a health check on this host.
func (s *Service) CheckHealth(ctx context.Context, req *agentv1.CheckHealthRequest) (*agentv1.CheckHealthResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	ok, detail, err := s.Nodes.CheckHealth(ctx, healthFromProto(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.CheckHealthResponse{Ok: ok, Detail: detail}, nil
}

// ApplyConfig writes a node's config files and, as asked, restarts it,
// checks it and restores its previous files when it is unhealthy.
func (s *Service) ApplyConfig(ctx context.Context, req *agentv1.ApplyConfigRequest) (*agentv1.ApplyConfigResponse, error) {
	if s.Nodes == nil {
		return nil, errNoNodes
	}
	r := node.ApplyRequest{
		OperationID:    req.GetOperationId(),
		Name:           req.GetName(),
		ProgramDir:     req.GetProgramDir(),
		DataDir:        req.GetDataDir(),
		ConfigFiles:    filesFromProto(req.GetConfigFiles()),
		HealthStart:    time.Duration(req.GetHealthStartMs()) * time.Millisecond,
		HealthInterval: time.Duration(req.GetHealthIntervalMs()) * time.Millisecond,
		Restore:        req.GetRestoreOnFailure(),
		LogTailBytes:   int(req.GetLogTailBytes()),
		RecordedOnly:   req.GetRecordedOnly(),
	}
	switch req.GetRestart() {
	case agentv1.RestartPolicy_RESTART_POLICY_NEVER:
		r.Restart = node.RestartNever
	case agentv1.RestartPolicy_RESTART_POLICY_IF_CHANGED:
		r.Restart = node.RestartIfChanged
	case agentv1.RestartPolicy_RESTART_POLICY_ALWAYS:
		r.Restart = node.RestartAlways
	default:
		return nil, status.Errorf(codes.InvalidArgument, "restart: %v: want NEVER, IF_CHANGED or ALWAYS", req.GetRestart())
	}
	if h := req.GetHealth(); h != nil {
		hc := healthFromProto(h)
		r.Health = &hc
	}
	res, err := s.Nodes.Apply(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return &agentv1.ApplyConfigResponse{
		Replayed: res.Replayed, Changed: res.Changed, Restarted: res.Restarted,
		PidBefore: int32(res.PIDBefore), PidAfter: int32(res.PIDAfter),
		Healthy: res.Healthy, HealthDetail: res.HealthDetail, HealthChecks: int32(res.HealthChecks),
		Restored: res.Restored, RestoredHealthy: res.RestoredHealthy, RestoreDetail: res.RestoreDetail,
		LogTail: res.LogTail, Status: StateToProto(res.Status), DurationMs: res.Duration.Milliseconds(),
		Interrupted: res.Interrupted, Stopped: res.Stopped,
	}, nil
}

func healthFromProto(req *agentv1.CheckHealthRequest) node.HealthCheck {
	return node.HealthCheck{
		TCPAddr: req.GetTcpAddr(),
		HTTPURL: req.GetHttpUrl(),
		Command: req.GetCommand(),
		Timeout: time.Duration(req.GetTimeoutMs()) * time.Millisecond,
		Send:    req.GetSend(),
	}
}

func filesFromProto(files []*agentv1.ConfigFileContent) []node.ConfigFile {
	var out []node.ConfigFile
	for _, f := range files {
		out = append(out, node.ConfigFile{Path: f.GetPath(), Content: f.GetContent(), Mode: os.FileMode(f.GetMode())})
	}
	return out
}

var errNoNodes = status.Error(codes.Unimplemented, "this agent does not manage nodes")

// DeployFromProto converts a deploy request from its wire form.
func DeployFromProto(req *agentv1.DeployNodeRequest) node.DeployRequest {
	r := node.DeployRequest{
		OperationID:   req.GetOperationId(),
		Name:          req.GetName(),
		PackageSHA256: req.GetPackageSha256(),
		PackageFormat: req.GetPackageFormat(),
		ProgramDir:    req.GetProgramDir(),
		DataDir:       req.GetDataDir(),
		Argv:          req.GetArgv(),
		Env:           req.GetEnv(),
		WorkDir:       req.GetWorkDir(),
		LogDir:        req.GetLogDir(),
		StopGrace:     time.Duration(req.GetStopGraceMs()) * time.Millisecond,
		Start:         req.GetStart(),
		FreeAddrs:     req.GetFreeAddrs(),
		ConfigFiles:   filesFromProto(req.GetConfigFiles()),
	}
	return r
}

// StateToProto converts a node's state to its wire form.
func StateToProto(st node.Status) *agentv1.NodeState {
	out := &agentv1.NodeState{
		Name:     st.Name,
		Running:  st.Running,
		Pid:      int32(st.PID),
		Restarts: int32(st.Restarts),
		LastExit: st.LastExit,
		Adopted:  st.Adopted,
		Desired:  string(st.Desired),
	}
	if !st.StartedAt.IsZero() {
		out.StartedAtUnixMs = st.StartedAt.UnixMilli()
	}
	return out
}

// toStatus maps the node manager's errors to gRPC codes.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return err
	}
	if e, ok := invalid.As(err); ok {
		return status.Error(codes.InvalidArgument, e.Error())
	}
	code := codes.Internal
	var addrErr *node.AddrError
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, node.ErrNotFound), errors.Is(err, supervisor.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, node.ErrNoSpace):
		code = codes.ResourceExhausted
	case errors.Is(err, node.ErrCorrupt):
		code = codes.DataLoss
	case errors.Is(err, node.ErrBusy):
		code = codes.Aborted
	case errors.Is(err, node.ErrConflict), errors.Is(err, node.ErrNotCached), errors.Is(err, supervisor.ErrSpecChanged),
		errors.As(err, &addrErr):
		code = codes.FailedPrecondition
	case errors.Is(err, supervisor.ErrInvalidSpec):
		code = codes.InvalidArgument
	case errors.Is(err, supervisor.ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}
