package deploy

import (
	"context"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// Agents is what the engine needs of the nodes' agents, by server id; the
// tunnel hub provides it (see HubAgents). Calls to an agent without a
// session return an error that wraps fleet.ErrAgentNotOnline.
type Agents interface {
	Online(server ids.ID) bool
	// HasPackage says whether the agent's cache holds the package, and how
	// many bytes it kept of an interrupted transfer.
	HasPackage(ctx context.Context, server ids.ID, sha256 string) (present bool, partial int64, err error)
	// PushPackage streams the package file at path to the agent's cache,
	// resuming an interrupted transfer.
	PushPackage(ctx context.Context, server ids.ID, sha256 string, size int64, path string) error
	// DeployNode installs, configures and (with Start) starts a node.
	DeployNode(ctx context.Context, server ids.ID, r DeployRequest) error
	// NodeCommand starts, stops or restarts a node.
	NodeCommand(ctx context.Context, server ids.ID, operationID, name, cmd string) (NodeState, error)
	// NodeStatus reports the named nodes the agent knows.
	NodeStatus(ctx context.Context, server ids.ID, names []string) ([]NodeState, error)
	// NodeLogs returns the last maxBytes of the node's log.
	NodeLogs(ctx context.Context, server ids.ID, name string, maxBytes int) ([]byte, error)
	// RemoveNode stops and forgets a node and, with RemoveDirs, deletes its
	// dirs.
	RemoveNode(ctx context.Context, server ids.ID, r RemoveRequest) error
	// CheckHealth runs one health check on the agent's host.
	CheckHealth(ctx context.Context, server ids.ID, h HealthCheck) (ok bool, detail string, err error)
}

// DeployRequest installs one node on its agent.
type DeployRequest struct {
	// OperationID makes a repeated request a no-op on the agent.
	OperationID   string
	Name          string
	PackageSHA256 string
	// Format is "tar.gz" or "tar".
	Format      string
	ProgramDir  string
	DataDir     string
	ConfigFiles []ConfigFile
	Argv        []string
	// Env is "KEY=value" entries.
	Env       []string
	WorkDir   string
	LogDir    string
	StopGrace time.Duration
	Start     bool
}

// ConfigFile is one rendered config file; Path is relative to ProgramDir.
type ConfigFile struct {
	Path    string
	Content []byte
	Mode    uint32
}

// RemoveRequest removes one node from its agent.
type RemoveRequest struct {
	OperationID  string
	Name         string
	RemoveDirs   bool
	ProgramDir   string
	DataDir      string
	AllowedRoots []string
}

// HealthCheck is one check: exactly one of TCP, HTTP and Command.
type HealthCheck struct {
	TCP     string
	HTTP    string
	Command []string
	Timeout time.Duration
}

// NodeState is an agent supervisor's view of one node.
type NodeState struct {
	Name      string
	Running   bool
	PID       int
	StartedAt time.Time
	Restarts  int
	LastExit  string
	// Desired is "running", "stopped", or empty when never started.
	Desired string
}

// RunState is the cluster.Run* state the node's supervisor state means.
func (s NodeState) RunState() string {
	switch {
	case s.Running:
		return "running"
	case s.Desired == "running":
		return "failed" // should run but does not: crashed, restarting
	}
	return "stopped"
}
