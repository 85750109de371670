package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// The node calls speak manager/deploy's request types; this file only
// converts them to and from the agents' wire form. An agent that is not
// connected (or drops the session during a call) gives
// fleet.ErrAgentNotOnline; a request the agent finds malformed gives an
// *invalid.Error; the agent's refusals give deploy's errors.
var _ deploy.Agents = (*Hub)(nil)

// PackageChunkSize is the size of the pieces a package is sent in.
const PackageChunkSize = 1 << 20

// agentErr maps an error of a call to an agent to the errors above. The
// agent's own message says what went wrong in words for people; the kind
// is for errors.Is and is not repeated in the text.
func agentErr(what string, id ids.ID, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fleet.ErrAgentNotOnline) {
		return err
	}
	if errors.Is(err, errClosed) {
		return fmt.Errorf("%s on agent %s: %w", what, id, fleet.ErrAgentNotOnline)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s on agent %s: %w", what, id, err)
	}
	msg := st.Message()
	var kind error
	switch st.Code() {
	case codes.InvalidArgument:
		return &invalid.Error{Reason: fmt.Sprintf("%s on agent %s: %s", what, id, msg)}
	case codes.Unavailable:
		kind = fleet.ErrAgentNotOnline
	case codes.ResourceExhausted:
		kind = deploy.ErrAgentNoSpace
	case codes.DataLoss:
		kind = deploy.ErrPackageCorrupt
	case codes.NotFound:
		kind = deploy.ErrNodeNotInstalled
	case codes.FailedPrecondition, codes.Aborted:
		kind = deploy.ErrAgentConflict
	case codes.Canceled:
		kind = context.Canceled
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	}
	return &agentError{what: what, id: id, kind: kind, msg: msg}
}

// agentError is a call that the agent answered with an error.
type agentError struct {
	what string
	id   ids.ID
	kind error // one of the errors above, or nil (an internal error)
	msg  string
}

func (e *agentError) Error() string {
	switch e.kind {
	case nil, deploy.ErrAgentNoSpace, deploy.ErrPackageCorrupt, deploy.ErrNodeNotInstalled, deploy.ErrAgentConflict:
		return fmt.Sprintf("%s on agent %s: %s", e.what, e.id, e.msg)
	}
	// The agent's words alone would not say that it went away, or that
	// the call was cancelled or ran out of time.
	return fmt.Sprintf("%s on agent %s: %v: %s", e.what, e.id, e.kind, e.msg)
}

func (e *agentError) Unwrap() error { return e.kind }

// nodeCall runs fn with a client for the agent's service.
func (h *Hub) nodeCall(ctx context.Context, id ids.ID, what string, fn func(agentv1.AgentServiceClient) error) error {
	s, err := h.session(id)
	if err != nil {
		return err
	}
	return agentErr(what, id, s.call(ctx, fn))
}

// HasPackage reports whether the agent holds the package, and how many
// bytes of an interrupted transfer it kept.
func (h *Hub) HasPackage(ctx context.Context, id ids.ID, sha256 string) (present bool, partial int64, err error) {
	err = h.nodeCall(ctx, id, "has package", func(c agentv1.AgentServiceClient) error {
		resp, err := c.HasPackage(ctx, &agentv1.HasPackageRequest{Sha256: sha256})
		if err == nil {
			present, partial = resp.GetPresent(), resp.GetPartial()
		}
		return err
	})
	return present, partial, err
}

// PushPackage sends the package of size bytes read from r to the agent,
// unless the agent holds it already; an interrupted earlier transfer is
// resumed where it stopped. It returns the bytes sent by this call.
func (h *Hub) PushPackage(ctx context.Context, id ids.ID, sha256 string, size int64, r io.ReaderAt) (sent int64, err error) {
	// A transfer cut short a moment ago may still be finishing on the
	// agent (busy, or its partial file still growing): try again shortly.
	for attempt := 0; ; attempt++ {
		n, err := h.pushOnce(ctx, id, sha256, size, r)
		sent += n
		if err == nil || !errors.Is(err, deploy.ErrAgentConflict) || attempt >= 10 || ctx.Err() != nil {
			return sent, err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return sent, err
		case <-t.C:
		}
	}
}

func (h *Hub) pushOnce(ctx context.Context, id ids.ID, sha256 string, size int64, r io.ReaderAt) (sent int64, err error) {
	present, partial, err := h.HasPackage(ctx, id, sha256)
	if err != nil || present {
		return 0, err
	}
	offset := int64(0)
	if partial > 0 && partial <= size {
		offset = partial
	}
	// At most MaxPackageTransfers at once, whatever asks for them: a
	// deploy to thousands of nodes queues here instead of holding
	// thousands of streams, each with its window of data in flight.
	select {
	case h.transfers <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	h.metrics.transfers.Inc()
	defer func() {
		h.metrics.transfers.Dec()
		<-h.transfers
	}()
	start := time.Now()
	err = h.nodeCall(ctx, id, "push package", func(c agentv1.AgentServiceClient) error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.PushPackage(sctx)
		if err != nil {
			return err
		}
		// One buffer for all the chunks of this transfer: Send marshals the
		// message before it returns (no stats handler holds it later), so
		// the next chunk can be read into the same bytes. A new buffer per
		// chunk cost a megabyte allocated and zeroed per megabyte sent.
		chunk := make([]byte, min(int64(PackageChunkSize), size-offset))
		first := true
		for pos := offset; first || pos < size; {
			n := min(int64(PackageChunkSize), size-pos)
			buf := chunk[:n]
			if _, err := r.ReadAt(buf, pos); err != nil && !(errors.Is(err, io.EOF) && int64(len(buf)) == n) {
				return fmt.Errorf("read package %s at %d: %w", sha256, pos, err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			msg := &agentv1.PackageChunk{Data: buf}
			if first {
				msg.Sha256, msg.Size, msg.Offset = sha256, size, offset
				first = false
			}
			if err := stream.Send(msg); err != nil {
				if errors.Is(err, io.EOF) {
					break // the agent ended the call; its status says why
				}
				return err
			}
			pos += n
			sent += n
			h.metrics.packageBytes.Add(float64(n))
		}
		_, err = stream.CloseAndRecv()
		return err
	})
	h.metrics.observe("manager_to_agent", agentv1.AgentService_PushPackage_FullMethodName, start, err)
	return sent, err
}

// DeployNode installs (and, if asked, starts) a node on the agent. The
// package must be in the agent's cache (PushPackage).
func (h *Hub) DeployNode(ctx context.Context, id ids.ID, r deploy.DeployRequest) (deploy.DeployResult, error) {
	req := &agentv1.DeployNodeRequest{
		OperationId:   r.OperationID,
		Name:          r.Name,
		PackageSha256: r.PackageSHA256,
		PackageFormat: r.PackageFormat,
		ProgramDir:    r.ProgramDir,
		DataDir:       r.DataDir,
		Argv:          r.Argv,
		Env:           r.Env,
		WorkDir:       r.WorkDir,
		LogDir:        r.LogDir,
		StopGraceMs:   r.StopGrace.Milliseconds(),
		Start:         r.Start,
		FreeAddrs:     r.FreeAddrs,
	}
	req.ConfigFiles = filesToProto(r.ConfigFiles)
	var res deploy.DeployResult
	err := h.nodeCall(ctx, id, "deploy node "+r.Name, func(c agentv1.AgentServiceClient) error {
		resp, err := c.DeployNode(ctx, req)
		if err == nil {
			res = deploy.DeployResult{
				Unpacked: resp.GetUnpacked(), State: nodeStateFromProto(resp.GetStatus()), Replayed: resp.GetReplayed(),
				Started: resp.GetStarted(), Restarted: resp.GetRestarted(),
			}
		}
		return err
	})
	return res, err
}

// NodeCommand starts, stops or restarts a node; opID makes a retry safe.
func (h *Hub) NodeCommand(ctx context.Context, id ids.ID, opID, name string, cmd deploy.NodeCommand) (deploy.NodeState, error) {
	var kind agentv1.NodeCommandKind
	switch cmd {
	case deploy.NodeStart:
		kind = agentv1.NodeCommandKind_NODE_COMMAND_START
	case deploy.NodeStop:
		kind = agentv1.NodeCommandKind_NODE_COMMAND_STOP
	case deploy.NodeRestart:
		kind = agentv1.NodeCommandKind_NODE_COMMAND_RESTART
	default:
		return deploy.NodeState{}, invalid.Field("command", "unknown node command %d", int(cmd))
	}
	var st deploy.NodeState
	err := h.nodeCall(ctx, id, "command node "+name, func(c agentv1.AgentServiceClient) error {
		resp, err := c.NodeCommand(ctx, &agentv1.NodeCommandRequest{OperationId: opID, Name: name, Command: kind})
		if err == nil {
			st = nodeStateFromProto(resp)
		}
		return err
	})
	return st, err
}

// NodeStatus returns the agent's view of the named nodes (all when names is
// empty); nodes the agent does not know are left out.
func (h *Hub) NodeStatus(ctx context.Context, id ids.ID, names []string) ([]deploy.NodeState, error) {
	var out []deploy.NodeState
	err := h.nodeCall(ctx, id, "node status", func(c agentv1.AgentServiceClient) error {
		resp, err := c.NodeStatus(ctx, &agentv1.NodeStatusRequest{Names: names})
		if err == nil {
			for _, n := range resp.GetNodes() {
				out = append(out, nodeStateFromProto(n))
			}
		}
		return err
	})
	return out, err
}

// NodeLogs returns the last maxBytes (at most 1 MiB) of a node's log.
func (h *Hub) NodeLogs(ctx context.Context, id ids.ID, name string, maxBytes int) ([]byte, error) {
	var data []byte
	err := h.nodeCall(ctx, id, "logs of node "+name, func(c agentv1.AgentServiceClient) error {
		resp, err := c.NodeLogs(ctx, &agentv1.NodeLogsRequest{Name: name, MaxBytes: int32(min(maxBytes, 1<<20))})
		if err == nil {
			data = resp.GetData()
		}
		return err
	})
	return data, err
}

// RemoveNode stops and forgets a node on the agent, and deletes its dirs
// when asked (only inside the allowed roots, and only those the agent
// created for the node); it returns the dirs the agent kept.
func (h *Hub) RemoveNode(ctx context.Context, id ids.ID, r deploy.RemoveRequest) ([]deploy.KeptDir, error) {
	var kept []deploy.KeptDir
	err := h.nodeCall(ctx, id, "remove node "+r.Name, func(c agentv1.AgentServiceClient) error {
		resp, err := c.RemoveNode(ctx, &agentv1.RemoveNodeRequest{
			OperationId:  r.OperationID,
			Name:         r.Name,
			RemoveDirs:   r.RemoveDirs,
			ProgramDir:   r.ProgramDir,
			DataDir:      r.DataDir,
			AllowedRoots: r.AllowedRoots,
		})
		// It was asked about two dirs; what it says is bounded.
		for _, k := range resp.GetKeptDirs()[:min(len(resp.GetKeptDirs()), 2)] {
			p, reason := k.GetPath(), k.GetReason()
			kept = append(kept, deploy.KeptDir{Path: p[:min(len(p), 4096)], Reason: reason[:min(len(reason), 1024)]})
		}
		return err
	})
	return kept, err
}

// CheckHealth has the agent run a health check on its host; the error is
// for a check that could not be run, not for a failing one.
func (h *Hub) CheckHealth(ctx context.Context, id ids.ID, hc deploy.HealthCheck) (ok bool, detail string, err error) {
	err = h.nodeCall(ctx, id, "health check", func(c agentv1.AgentServiceClient) error {
		resp, err := c.CheckHealth(ctx, healthToProto(hc))
		if err == nil {
			ok, detail = resp.GetOk(), resp.GetDetail()
		}
		return err
	})
	return ok, detail, err
}

// ApplyConfig writes an installed node's config files and, as asked,
// restarts it, checks its health and restores its previous files.
func (h *Hub) ApplyConfig(ctx context.Context, id ids.ID, r deploy.ApplyRequest) (deploy.ApplyResult, error) {
	req := &agentv1.ApplyConfigRequest{
		OperationId:      r.OperationID,
		Name:             r.Name,
		ProgramDir:       r.ProgramDir,
		DataDir:          r.DataDir,
		ConfigFiles:      filesToProto(r.ConfigFiles),
		HealthStartMs:    r.HealthStart.Milliseconds(),
		HealthIntervalMs: r.HealthInterval.Milliseconds(),
		RestoreOnFailure: r.Restore,
		LogTailBytes:     int32(r.LogTailBytes),
		RecordedOnly:     r.RecordedOnly,
	}
	switch r.Restart {
	case deploy.RestartNever:
		req.Restart = agentv1.RestartPolicy_RESTART_POLICY_NEVER
	case deploy.RestartIfChanged:
		req.Restart = agentv1.RestartPolicy_RESTART_POLICY_IF_CHANGED
	case deploy.RestartAlways:
		req.Restart = agentv1.RestartPolicy_RESTART_POLICY_ALWAYS
	default:
		return deploy.ApplyResult{}, invalid.Field("restart", "unknown restart policy %d", int(r.Restart))
	}
	if r.Health != nil {
		req.Health = healthToProto(*r.Health)
	}
	var res deploy.ApplyResult
	err := h.nodeCall(ctx, id, "apply config to node "+r.Name, func(c agentv1.AgentServiceClient) error {
		resp, err := c.ApplyConfig(ctx, req)
		if err == nil {
			res = deploy.ApplyResult{
				Replayed: resp.GetReplayed(), Changed: resp.GetChanged(), Restarted: resp.GetRestarted(),
				PIDBefore: int(resp.GetPidBefore()), PIDAfter: int(resp.GetPidAfter()),
				Healthy: resp.GetHealthy(), HealthDetail: resp.GetHealthDetail(), HealthChecks: int(resp.GetHealthChecks()),
				Restored: resp.GetRestored(), RestoredHealthy: resp.GetRestoredHealthy(), RestoreDetail: resp.GetRestoreDetail(),
				LogTail: resp.GetLogTail(), State: nodeStateFromProto(resp.GetStatus()),
				Duration:    time.Duration(resp.GetDurationMs()) * time.Millisecond,
				Interrupted: resp.GetInterrupted(), Stopped: resp.GetStopped(),
			}
		}
		return err
	})
	return res, err
}

func filesToProto(files []deploy.ConfigFile) []*agentv1.ConfigFileContent {
	out := make([]*agentv1.ConfigFileContent, len(files))
	for i, f := range files {
		out[i] = &agentv1.ConfigFileContent{Path: f.Path, Content: f.Content, Mode: uint32(f.Mode.Perm())}
	}
	return out
}

func healthToProto(hc deploy.HealthCheck) *agentv1.CheckHealthRequest {
	return &agentv1.CheckHealthRequest{
		TcpAddr: hc.TCPAddr, HttpUrl: hc.HTTPURL, Command: hc.Command, TimeoutMs: hc.Timeout.Milliseconds(), Send: hc.Send,
	}
}

func nodeStateFromProto(p *agentv1.NodeState) deploy.NodeState {
	st := deploy.NodeState{
		Name:     p.GetName(),
		Running:  p.GetRunning(),
		PID:      int(p.GetPid()),
		Restarts: int(p.GetRestarts()),
		LastExit: p.GetLastExit(),
		Adopted:  p.GetAdopted(),
		Desired:  p.GetDesired(),
	}
	if ms := p.GetStartedAtUnixMs(); ms > 0 {
		st.StartedAt = time.UnixMilli(ms)
	}
	return st
}
