package deploy

import (
	"context"
	"io"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// Agents is what the engine needs of the nodes' agents, by server id, in
// the tunnel's own request types; *tunnel.Hub provides it. Calls to an
// agent without a session return an error that wraps
// fleet.ErrAgentNotOnline.
type Agents interface {
	Online(server ids.ID) bool
	// HasPackage says whether the agent's cache holds the package, and how
	// many bytes it kept of an interrupted transfer.
	HasPackage(ctx context.Context, server ids.ID, sha256 string) (present bool, partial int64, err error)
	// PushPackage streams the package to the agent's cache, resuming an
	// interrupted transfer; it returns the bytes sent.
	PushPackage(ctx context.Context, server ids.ID, sha256 string, size int64, r io.ReaderAt) (int64, error)
	// DeployNode installs, configures and (with Start) starts a node.
	DeployNode(ctx context.Context, server ids.ID, r tunnel.DeployRequest) (tunnel.DeployResult, error)
	// NodeCommand starts, stops or restarts a node.
	NodeCommand(ctx context.Context, server ids.ID, operationID, name string, cmd tunnel.NodeCommand) (tunnel.NodeState, error)
	// NodeStatus reports the named nodes the agent knows.
	NodeStatus(ctx context.Context, server ids.ID, names []string) ([]tunnel.NodeState, error)
	// NodeLogs returns the last maxBytes of the node's log.
	NodeLogs(ctx context.Context, server ids.ID, name string, maxBytes int) ([]byte, error)
	// RemoveNode stops and forgets a node and, with RemoveDirs, deletes
	// those of its dirs the agent created for it; it returns the others.
	RemoveNode(ctx context.Context, server ids.ID, r tunnel.RemoveRequest) ([]tunnel.KeptDir, error)
	// CheckHealth runs one health check on the agent's host.
	CheckHealth(ctx context.Context, server ids.ID, h tunnel.HealthCheck) (ok bool, detail string, err error)
}

var _ Agents = (*tunnel.Hub)(nil)

// RunState is the cluster.Run* state an agent supervisor's view of a node
// means.
func RunState(s tunnel.NodeState) string {
	switch {
	case s.Running:
		return "running"
	case s.Desired == "running":
		return "failed" // should run but does not: crashed, restarting
	}
	return "stopped"
}
