// Package deploy runs deployments of cluster nodes as durable jobs, and the
// node commands (start, stop, restart), logs, live status and teardown that
// go through the nodes' agents.
//
// A deployment job deploys one node or every node of a cluster. It runs in
// tiers, coordinators first, then storage, then brokers, then any other
// component; the nodes of a tier are deployed in parallel and a tier must
// be healthy before the next starts. Each node goes through the steps
// transfer (the package to the agent's cache, skipped when it holds it),
// install (the agent unpacks it into the program dir unless it holds it
// there, and records how to run the node), configure (render the node's
// config files; the agent writes those that changed, keeping their
// previous versions), start (start the process, or restart it when its
// package, config or command changed) and health (the manifest's health
// check, run by the agent, until it passes or the start time is up). Every step and every change of the job's state is written to the
// store as it happens, so a console can follow it and a restarted manager
// knows where each job stood: Recover fails every job that was still
// pending or running, and the step each node was in, with ReasonRestarted,
// cancels the steps that had not begun, and sets the nodes it left
// "deploying" to "failed" (their previous state is not kept, and what is
// on their hosts is unknown; deploying again settles it).
package deploy

import (
	"context"
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on; transports map them to their own codes.
var (
	// ErrNothingToDeploy: the cluster has no node to deploy (seed 1406).
	ErrNothingToDeploy = errors.New("nothing deployable")
	// ErrNodeUnavailable: a node's agent is offline or the node is being
	// deployed already (seed 1407).
	ErrNodeUnavailable = errors.New("nodes cannot be deployed now")
	ErrJobNotFound     = errors.New("job does not exist")
	// ErrBadCommand: a node command other than start, stop or restart.
	ErrBadCommand = errors.New("unknown node command")
	// ErrNodeHeld: a node is held by another job that is not finished;
	// no second job may touch it.
	ErrNodeHeld = errors.New("a node is held by another running job")
)

// Job types.
const (
	TypeDeployCluster = "deploy_cluster"
	TypeDeployNode    = "deploy_node"
	// A flush of one node's config file (the console's seed flush).
	TypeFlush = "config_flush"
	// A rolling flush of a config file over nodes.
	TypeRollout = "config_rollout"
	// A rollback to an earlier release, rolled out like a flush.
	TypeRollback = "config_rollback"
	// A rolling restart, with no config change.
	TypeRestart = "rolling_restart"
	// A server's agent installed over SSH (StartBootstrap): a job of a
	// server, not of a cluster.
	TypeBootstrap = "server_bootstrap"
)

// Job states.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Step names, in the order they run for a node.
const (
	StepTransfer  = "transfer"
	StepInstall   = "install"
	StepConfigure = "configure"
	StepStart     = "start"
	StepHealth    = "health"
)

// StepNames are the steps of a node, in order.
var StepNames = []string{StepTransfer, StepInstall, StepConfigure, StepStart, StepHealth}

// The one step of each node of a rollout: the agent writes the file,
// restarts the node and checks it (StepApply), or restarts and checks it
// (StepRestart).
const (
	StepApply   = "apply"
	StepRestart = "restart"
)

// Step states.
const (
	StepPending   = "pending"
	StepRunning   = "running"
	StepSucceeded = "succeeded"
	StepFailed    = "failed"
	StepSkipped   = "skipped"   // not needed (the agent held the package)
	StepCancelled = "cancelled" // not run because the job failed
)

// ReasonRestarted is the reason of a job the manager was restarted under.
const ReasonRestarted = "manager restarted while the job was running; deploy again"

// ReasonReleaseRestarted is the reason of a release the manager was
// restarted under.
const ReasonReleaseRestarted = "manager restarted while the release was applied; the nodes it was applying to are settled " +
	"from their agents' records when they reconnect, the others were not touched"

// NotRunStopping follows "not run: " in the steps of the nodes a job had
// not reached when the manager was stopped: those nodes are left as they
// were, and Recover fails the job.
const NotRunStopping = "the manager stopped while the job ran"

// Job is one deployment.
type Job struct {
	ID   ids.ID
	Type string
	// ClusterID is the cluster of every job but a TypeBootstrap one, which
	// has a ServerID instead.
	ClusterID ids.ID
	ServerID  ids.ID
	// NodeID is the node of a TypeDeployNode job; zero otherwise.
	NodeID ids.ID
	State  string
	Reason string
	// Code and ErrorData are what the API answers for the error a failed
	// TypeBootstrap job ended with (Deps.ErrorCode): 0 and nil otherwise.
	Code       int
	ErrorData  map[string]any
	CreatedBy  string
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
}

// Deploys reports whether the job deploys nodes (and so sets their deploy
// state), rather than rolling config out or restarting them.
func (j Job) Deploys() bool { return j.Type == TypeDeployCluster || j.Type == TypeDeployNode }

// Done reports whether the job has finished.
func (j Job) Done() bool { return j.State == JobSucceeded || j.State == JobFailed }

// Step is one step of one node of a job.
type Step struct {
	ID         ids.ID
	JobID      ids.ID
	NodeID     ids.ID
	Name       string
	State      string
	Detail     string
	StartedAt  time.Time
	FinishedAt time.Time
	// A rollout's step also says which release it applied, the node's pid
	// before and after, whether it was healthy (nil: not checked) and how
	// long the agent took.
	ReleaseID ids.ID
	PIDBefore int
	PIDAfter  int
	Healthy   *bool
	Duration  time.Duration
}

// Store is what the engine needs from persistence.
type Store interface {
	// CreateJob inserts the job with its steps and has it hold the nodes
	// (and, for a deployment, sets their deploy state to "deploying"), in
	// one transaction. If a node is deploying already it writes nothing
	// and returns ErrNodeUnavailable naming them; if another job holds
	// one, ErrNodeHeld naming the job.
	CreateJob(ctx context.Context, j Job, steps []Step, nodeIDs []ids.ID, now time.Time) error
	// UpdateJob writes the job's state, reason, start and finish times, or
	// returns ErrJobNotFound; a finished job lets its nodes go.
	UpdateJob(ctx context.Context, j Job) error
	// UpdateStep writes the step's state, detail and times.
	UpdateStep(ctx context.Context, s Step) error
	Job(ctx context.Context, id ids.ID) (Job, error)
	// Jobs returns one page of jobs, newest first, of one cluster (or all
	// when clusterID is zero), and the total.
	Jobs(ctx context.Context, clusterID ids.ID, p paging.Page) ([]Job, int, error)
	// JobSteps returns the job's steps in the order they were created.
	JobSteps(ctx context.Context, jobID ids.ID) ([]Step, error)
	// FailUnfinishedJobs sets every pending or running job to failed with
	// reason, their running steps to failed with reason, their pending
	// steps to cancelled ("not run: " + reason), every node left
	// "deploying" to "failed", and lets every held node go, in one
	// transaction, and returns the jobs.
	FailUnfinishedJobs(ctx context.Context, reason string, now time.Time) ([]Job, error)
	// SetNodeStates sets a node's deploy and run states;
	// cluster.ErrNodeNotFound when it is gone. An empty state is left as
	// it is.
	SetNodeStates(ctx context.Context, nodeID ids.ID, deployState, runState string, now time.Time) error
}
