package deploy

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// Agents is what the engine needs of the nodes' agents, by server id, in
// this package's request types; the tunnel's Hub provides it, converting
// them to the agents' wire form. Calls to an agent without a session
// return an error that wraps fleet.ErrAgentNotOnline; a request the agent
// finds malformed an *invalid.Error; what the agent refuses the errors
// below.
type Agents interface {
	Online(server ids.ID) bool
	// HasPackage says whether the agent's cache holds the package, and how
	// many bytes it kept of an interrupted transfer.
	HasPackage(ctx context.Context, server ids.ID, sha256 string) (present bool, partial int64, err error)
	// PushPackage streams the package to the agent's cache, resuming an
	// interrupted transfer; it returns the bytes sent.
	PushPackage(ctx context.Context, server ids.ID, sha256 string, size int64, r io.ReaderAt) (int64, error)
	// DeployNode installs, configures and (with Start) starts a node.
	DeployNode(ctx context.Context, server ids.ID, r DeployRequest) (DeployResult, error)
	// ApplyConfig writes an installed node's config files and, as asked,
	// restarts it, checks it and restores the previous files.
	ApplyConfig(ctx context.Context, server ids.ID, r ApplyRequest) (ApplyResult, error)
	// NodeCommand starts, stops or restarts a node.
	NodeCommand(ctx context.Context, server ids.ID, operationID, name string, cmd NodeCommand) (NodeState, error)
	// NodeStatus reports the named nodes the agent knows.
	NodeStatus(ctx context.Context, server ids.ID, names []string) ([]NodeState, error)
	// NodeLogs returns the last maxBytes of the node's log.
	NodeLogs(ctx context.Context, server ids.ID, name string, maxBytes int) ([]byte, error)
	// RemoveNode stops and forgets a node and, with RemoveDirs, deletes
	// those of its dirs the agent created for it; it returns the others.
	RemoveNode(ctx context.Context, server ids.ID, r RemoveRequest) ([]KeptDir, error)
	// CheckHealth runs one health check on the agent's host.
	CheckHealth(ctx context.Context, server ids.ID, h HealthCheck) (ok bool, detail string, err error)
}

// Errors of the agents' answers that callers branch on.
var (
	// ErrAgentNoSpace: the agent's disk cannot hold the package.
	ErrAgentNoSpace = errors.New("agent has not enough disk space")
	// ErrPackageCorrupt: the bytes sent do not hash to the package's sha256.
	ErrPackageCorrupt = errors.New("package does not match its sha256")
	// ErrNodeNotInstalled: the agent has no node of that name: it was
	// never deployed there.
	ErrNodeNotInstalled = errors.New("agent has no such node")
	// ErrAgentConflict: the agent's state does not allow the request (a
	// program dir holding something else, a package not in its cache, a
	// transfer of the same package or an apply to the same node still
	// running, a port the node is to listen on taken by another process).
	ErrAgentConflict = errors.New("agent refused the request in its current state")
)

// NodeState is an agent's view of one node.
type NodeState struct {
	Name      string
	Running   bool
	PID       int
	StartedAt time.Time // zero: never started
	Restarts  int
	LastExit  string
	Adopted   bool
	// Desired is "running", "stopped", or "" for a node installed but
	// never started.
	Desired string
}

// ConfigFile is one config file an agent writes on a node.
type ConfigFile struct {
	// Path is relative to the program dir, or absolute inside the program
	// dir or the data dir.
	Path    string
	Content []byte
	Mode    os.FileMode // 0: 0640
}

// DeployRequest installs a node on an agent.
type DeployRequest struct {
	OperationID   string
	Name          string
	PackageSHA256 string
	PackageFormat string // "tar.gz" or "tar"
	ProgramDir    string
	DataDir       string
	ConfigFiles   []ConfigFile
	Argv          []string
	Env           []string
	WorkDir       string
	LogDir        string
	StopGrace     time.Duration
	Start         bool
	// FreeAddrs are TCP "ip:port" addresses the agent checks are free
	// before it starts a node it does not run yet; at most 16.
	FreeAddrs []string
}

// DeployResult is what a deploy did on the agent.
type DeployResult struct {
	Unpacked bool
	State    NodeState
	// Replayed: the agent had applied this operation id before.
	Replayed bool
	// Started: the node was not running and the agent started it.
	Started bool
	// Restarted: the node was running and the agent restarted it, because
	// its package, a config file or its command changed (now or in an
	// earlier call that wrote them). Both false: the node runs already
	// with this package and config and was left alone (or the request did
	// not ask for a start).
	Restarted bool
}

// RestartPolicy says when ApplyConfig restarts the node.
type RestartPolicy int

// Restart policies.
const (
	// RestartNever writes the files only; a running node whose files
	// changed is restarted by the next DeployNode with Start.
	RestartNever RestartPolicy = iota
	// RestartIfChanged restarts when a file changed.
	RestartIfChanged
	// RestartAlways restarts, also with no file.
	RestartAlways
)

// ApplyRequest writes an installed node's config files without touching
// its package and, as its Restart says, restarts the node; the agent then
// checks Health until it passes or HealthStart is up and, with Restore,
// gives an unhealthy node its previous files back and restarts it again.
type ApplyRequest struct {
	OperationID    string
	Name           string
	ProgramDir     string
	DataDir        string
	ConfigFiles    []ConfigFile
	Restart        RestartPolicy
	Health         *HealthCheck
	HealthStart    time.Duration
	HealthInterval time.Duration
	Restore        bool
	LogTailBytes   int
	// RecordedOnly: apply nothing; answer with the recorded result of
	// OperationID (ErrNodeNotInstalled when the agent never began it).
	RecordedOnly bool
}

// ApplyResult is what ApplyConfig did on the agent.
type ApplyResult struct {
	Replayed        bool
	Changed         []string
	Restarted       bool
	PIDBefore       int
	PIDAfter        int
	Healthy         bool
	HealthDetail    string
	HealthChecks    int
	Restored        bool
	RestoredHealthy bool
	RestoreDetail   string
	LogTail         []byte
	State           NodeState
	Duration        time.Duration
	// Interrupted: (RecordedOnly) the agent stopped during the apply; each
	// file is its old or its new version.
	Interrupted bool
	// Stopped: the node is stopped; files written, no restart, no check.
	Stopped bool
}

// NodeCommand is what NodeCommand asks of a node.
type NodeCommand int

// Node commands.
const (
	NodeStart NodeCommand = iota + 1
	NodeStop
	NodeRestart
)

// String is the command's word: start, stop or restart.
func (c NodeCommand) String() string {
	switch c {
	case NodeStart:
		return "start"
	case NodeStop:
		return "stop"
	case NodeRestart:
		return "restart"
	}
	return "NodeCommand(" + strconv.Itoa(int(c)) + ")"
}

// RemoveRequest removes a node from an agent.
type RemoveRequest struct {
	OperationID  string
	Name         string
	RemoveDirs   bool
	ProgramDir   string
	DataDir      string
	AllowedRoots []string
}

// KeptDir is a dir a removal asked for that the agent kept, and why: it
// did not create it for the node, or it is a system dir, overlaps the
// agent's own dirs, or holds something that is not the node's.
type KeptDir struct {
	Path   string
	Reason string
}

// HealthCheck is run by the agent; exactly one of TCPAddr, HTTPURL and
// Command is set. Send, with TCPAddr, is written once connected and the
// answer is the check's detail.
type HealthCheck struct {
	TCPAddr string
	HTTPURL string
	Command []string
	Timeout time.Duration
	Send    []byte
}

// RunState is the cluster.Run* state an agent supervisor's view of a node
// means.
func RunState(s NodeState) string {
	switch {
	case s.Running:
		return "running"
	case s.Desired == "running":
		return "failed" // should run but does not: crashed, restarting
	}
	return "stopped"
}
