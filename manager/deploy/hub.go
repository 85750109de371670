package deploy

import (
	"context"
	"fmt"
	"os"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// HubAgents adapts the tunnel hub to Agents.
type HubAgents struct{ Hub *tunnel.Hub }

var _ Agents = HubAgents{}

func (a HubAgents) Online(server ids.ID) bool { return a.Hub.Online(server) }

func (a HubAgents) HasPackage(ctx context.Context, server ids.ID, sha256 string) (bool, int64, error) {
	return a.Hub.HasPackage(ctx, server, sha256)
}

func (a HubAgents) PushPackage(ctx context.Context, server ids.ID, sha256 string, size int64, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open package file: %w", err)
	}
	defer f.Close()
	_, err = a.Hub.PushPackage(ctx, server, sha256, size, f)
	return err
}

func (a HubAgents) DeployNode(ctx context.Context, server ids.ID, r DeployRequest) error {
	files := make([]tunnel.ConfigFile, len(r.ConfigFiles))
	for i, f := range r.ConfigFiles {
		files[i] = tunnel.ConfigFile{Path: f.Path, Content: f.Content, Mode: os.FileMode(f.Mode)}
	}
	_, err := a.Hub.DeployNode(ctx, server, tunnel.DeployRequest{
		OperationID: r.OperationID, Name: r.Name, PackageSHA256: r.PackageSHA256, PackageFormat: r.Format,
		ProgramDir: r.ProgramDir, DataDir: r.DataDir, ConfigFiles: files, Argv: r.Argv, Env: r.Env,
		WorkDir: r.WorkDir, LogDir: r.LogDir, StopGrace: r.StopGrace, Start: r.Start,
	})
	return err
}

func fromTunnelState(s tunnel.NodeState) NodeState {
	return NodeState{Name: s.Name, Running: s.Running, PID: s.PID, StartedAt: s.StartedAt, Restarts: s.Restarts,
		LastExit: s.LastExit, Desired: s.Desired}
}

func (a HubAgents) NodeCommand(ctx context.Context, server ids.ID, operationID, name, cmd string) (NodeState, error) {
	var c tunnel.NodeCommand
	switch cmd {
	case CmdStart:
		c = tunnel.NodeStart
	case CmdStop:
		c = tunnel.NodeStop
	case CmdRestart:
		c = tunnel.NodeRestart
	default:
		return NodeState{}, fmt.Errorf("%w: %q", ErrBadCommand, cmd)
	}
	s, err := a.Hub.NodeCommand(ctx, server, operationID, name, c)
	if err != nil {
		return NodeState{}, err
	}
	return fromTunnelState(s), nil
}

func (a HubAgents) NodeStatus(ctx context.Context, server ids.ID, names []string) ([]NodeState, error) {
	list, err := a.Hub.NodeStatus(ctx, server, names)
	if err != nil {
		return nil, err
	}
	out := make([]NodeState, len(list))
	for i, s := range list {
		out[i] = fromTunnelState(s)
	}
	return out, nil
}

func (a HubAgents) NodeLogs(ctx context.Context, server ids.ID, name string, maxBytes int) ([]byte, error) {
	return a.Hub.NodeLogs(ctx, server, name, maxBytes)
}

func (a HubAgents) RemoveNode(ctx context.Context, server ids.ID, r RemoveRequest) error {
	return a.Hub.RemoveNode(ctx, server, tunnel.RemoveRequest{
		OperationID: r.OperationID, Name: r.Name, RemoveDirs: r.RemoveDirs, ProgramDir: r.ProgramDir,
		DataDir: r.DataDir, AllowedRoots: r.AllowedRoots,
	})
}

func (a HubAgents) CheckHealth(ctx context.Context, server ids.ID, h HealthCheck) (bool, string, error) {
	return a.Hub.CheckHealth(ctx, server, tunnel.HealthCheck{TCPAddr: h.TCP, HTTPURL: h.HTTP, Command: h.Command, Timeout: h.Timeout})
}
