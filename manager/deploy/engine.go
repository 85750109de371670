package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
	xfer "github.com/admq/admq-manager/internal/progress"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
)

// Clusters is what the engine reads of clusters; *cluster.Service
// implements it.
type Clusters interface {
	Cluster(ctx context.Context, id ids.ID) (cluster.Cluster, error)
	Node(ctx context.Context, id ids.ID) (cluster.Node, error)
	AllNodes(ctx context.Context, clusterID ids.ID) ([]cluster.Node, error)
	// NodesOnServers returns every node, of any cluster, on the servers.
	NodesOnServers(ctx context.Context, serverIDs []ids.ID) ([]cluster.Node, error)
	// Delete removes a cluster's records after t has torn its nodes down.
	Delete(ctx context.Context, id ids.ID, t cluster.Teardown) (cluster.Cluster, []cluster.Uncleaned, error)
}

// Configs renders nodes' config and keeps its releases; *config.Service
// implements it.
type Configs interface {
	// Vars returns the node's variables (for its start command and health
	// check).
	Vars(ctx context.Context, nodeID ids.ID) (config.Vars, error)
	// Render renders the node's config files.
	Render(ctx context.Context, nodeID ids.ID) (config.NodeConfig, error)
	File(ctx context.Context, id ids.ID) (config.File, error)
	NodeFile(ctx context.Context, id ids.ID) (config.NodeFile, error)
	NodeFiles(ctx context.Context, nodeID ids.ID) ([]config.NodeFile, error)
	// NewRelease stores a pending release of a file for nodes whose file
	// would change (config.ErrNoChange when none would).
	NewRelease(ctx context.Context, n config.NewRelease) (config.Release, []config.ReleaseNode, error)
	Release(ctx context.Context, id ids.ID) (config.Release, []config.ReleaseNode, error)
	// Applying, Settle and FinishRelease record how applying a release
	// goes; AbandonRelease deletes one no node began.
	Applying(ctx context.Context, releaseID, nodeID ids.ID) error
	Settle(ctx context.Context, releaseID, nodeID ids.ID, state config.NodeState, detail string) (config.Release, error)
	FinishRelease(ctx context.Context, id ids.ID, reason string) (config.Release, error)
	AbandonRelease(ctx context.Context, id ids.ID) error
	// RecoverReleases and Interrupted settle what a stopped manager left.
	RecoverReleases(ctx context.Context, reason string) ([]config.Release, error)
	Interrupted(ctx context.Context, nodeIDs []ids.ID) ([]config.ReleaseNode, error)
	// RecordApplied notes what node files hold (by node file) without a
	// release.
	RecordApplied(ctx context.Context, nodeFiles map[ids.ID]string) error
}

// Packages is what the engine reads of packages; *pkg.Service implements it.
type Packages interface {
	Package(ctx context.Context, id ids.ID) (pkg.Package, error)
	Path(p pkg.Package) string
}

// Deps are what the engine works with.
type Deps struct {
	Store    Store
	Clusters Clusters
	Configs  Configs
	Packages Packages
	Agents   Agents
	IDs      *ids.Generator
	// Cleanups queues the removals of deleted clusters' nodes whose agent
	// was offline, for RunCleanups; nil: such nodes are only reported.
	Cleanups CleanupStore
	// Now is the clock (default time.Now); Sleep waits d or until ctx is
	// done (default a timer). Tests replace both.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	// Registerer receives admq_deploy_jobs_total and
	// admq_deploy_job_duration_seconds; nil: not registered.
	Registerer prometheus.Registerer
	// ErrorCode gives the error a bootstrap job failed with the code and
	// data the API answers for it (kept in Job.Code and Job.ErrorData);
	// nil: none are kept.
	ErrorCode func(error) (int, map[string]any)
}

// Defaults of the health check when the manifest leaves them out.
const (
	DefaultHealthInterval = 2 * time.Second
	DefaultHealthStart    = 60 * time.Second
	// healthLogBytes is how much of a failed node's log is fetched, and
	// healthLogLines how many of its last lines are reported.
	healthLogBytes = 4 << 10
	healthLogLines = 20
	// healthFirstWait is the first wait between health checks of a
	// just-started node; it doubles up to the manifest's interval.
	healthFirstWait = 250 * time.Millisecond
	// healthCrashLimit is how many crash restarts of a starting node end
	// its health step at once instead of at the start deadline.
	healthCrashLimit = 2
)

// Engine runs deployment jobs and node commands.
type Engine struct {
	d        Deps
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// ctx bounds running jobs; Run cancels it when its own ctx ends.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu serialises job creation (the store's check is the backstop) and
	// guards changed and done.
	mu      sync.Mutex
	changed chan struct{}
	// done has a channel per running rollout, closed when it ends.
	done map[ids.ID]chan struct{}

	cleanup cleanupState
}

// New returns an engine; call Recover once before serving and Run to let
// jobs run.
func New(d Deps) *Engine {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Sleep == nil {
		d.Sleep = sleep
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{d: d, changed: make(chan struct{})}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "admq", Subsystem: "deploy", Name: "jobs_total",
		Help: "Deployment jobs finished, by type and final state.",
	}, []string{"type", "state"})
	e.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "admq", Subsystem: "deploy", Name: "job_duration_seconds",
		Help:    "Durations of finished deployment jobs, by type.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"type"})
	if d.Registerer != nil {
		d.Registerer.MustRegister(e.jobs, e.duration)
	}
	return e
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run lets jobs run until ctx is done, then cancels the running ones and
// waits for them. A job cut short stays "running" in the store, and the
// next Recover fails it.
func (e *Engine) Run(ctx context.Context) error {
	<-ctx.Done()
	e.cancel()
	e.wg.Wait()
	return nil
}

// Recover fails every job a previous run of the manager left pending or
// running, with ReasonRestarted, and sets the nodes it left deploying to
// "failed"; the config releases those jobs were applying fail with
// ReasonReleaseRestarted, the nodes they were applying to marked
// interrupted (the agents are asked how it ended when they connect).
func (e *Engine) Recover(ctx context.Context) error {
	jobs, err := e.d.Store.FailUnfinishedJobs(ctx, ReasonRestarted, e.d.Now())
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Type == TypeBootstrap {
			j.Reason = ReasonBootstrapRestarted
			if err := e.d.Store.UpdateJob(ctx, j); err != nil {
				return err
			}
		}
		e.d.Log.Warn("job failed: the manager restarted while it ran", "job", j.ID, "type", j.Type, "cluster", j.ClusterID, "server", j.ServerID)
		e.jobs.WithLabelValues(j.Type, JobFailed).Inc()
	}
	releases, err := e.d.Configs.RecoverReleases(ctx, ReasonReleaseRestarted)
	if err != nil {
		return err
	}
	for _, r := range releases {
		e.d.Log.Warn("config release failed: the manager restarted while it was applied; its agents are asked how it ended when they reconnect",
			"release", r.ID, "file", r.FileName, "number", r.Number)
	}
	return nil
}

// Changed returns a channel that is closed at the next change of any job
// or step this engine makes.
func (e *Engine) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Engine) notify() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Job returns the job with id and its steps, or ErrJobNotFound.
func (e *Engine) Job(ctx context.Context, id ids.ID) (Job, []Step, error) {
	j, err := e.d.Store.Job(ctx, id)
	if err != nil {
		return Job{}, nil, err
	}
	steps, err := e.d.Store.JobSteps(ctx, id)
	return j, steps, err
}

// Jobs returns one page of jobs, newest first, of a cluster (all when
// clusterID is zero), and the total.
func (e *Engine) Jobs(ctx context.Context, clusterID ids.ID, p paging.Page) ([]Job, int, error) {
	if !clusterID.IsZero() {
		if _, err := e.d.Clusters.Cluster(ctx, clusterID); err != nil {
			return nil, 0, err
		}
	}
	return e.d.Store.Jobs(ctx, clusterID, p)
}

// DeployCluster starts a job that deploys every node of the cluster.
// ErrNothingToDeploy when it has none; ErrNodeUnavailable, with nothing
// stored, when a node's agent is offline or a node is deploying.
func (e *Engine) DeployCluster(ctx context.Context, clusterID ids.ID, by string) (Job, error) {
	c, err := e.d.Clusters.Cluster(ctx, clusterID)
	if err != nil {
		return Job{}, err
	}
	all, err := e.d.Clusters.AllNodes(ctx, clusterID)
	if err != nil {
		return Job{}, err
	}
	if len(all) == 0 {
		return Job{}, fmt.Errorf("%w: cluster %s has no nodes", ErrNothingToDeploy, c.Name)
	}
	return e.start(ctx, TypeDeployCluster, c, all, all, 0, by)
}

// DeployNode starts a job that deploys one node. An unknown node is
// ErrNothingToDeploy; ErrNodeUnavailable as for DeployCluster.
func (e *Engine) DeployNode(ctx context.Context, nodeID ids.ID, by string) (Job, error) {
	n, err := e.d.Clusters.Node(ctx, nodeID)
	if errors.Is(err, cluster.ErrNodeNotFound) {
		return Job{}, fmt.Errorf("%w: node %s does not exist", ErrNothingToDeploy, nodeID)
	}
	if err != nil {
		return Job{}, err
	}
	c, err := e.d.Clusters.Cluster(ctx, n.ClusterID)
	if err != nil {
		return Job{}, err
	}
	all, err := e.d.Clusters.AllNodes(ctx, n.ClusterID)
	if err != nil {
		return Job{}, err
	}
	return e.start(ctx, TypeDeployNode, c, all, []cluster.Node{n}, n.ID, by)
}

func nodeLabel(n cluster.Node) string {
	return fmt.Sprintf("%s on %s (node %s)", n.NodeDir, n.ManagerIP, n.ID)
}

func (e *Engine) start(ctx context.Context, typ string, c cluster.Cluster, all, nodes []cluster.Node, nodeID ids.ID, by string) (Job, error) {
	var offline, busy []string
	for _, n := range nodes {
		if n.DeployState == cluster.DeployDeploying {
			busy = append(busy, nodeLabel(n))
		} else if !e.d.Agents.Online(n.ServerID) {
			offline = append(offline, nodeLabel(n))
		}
	}
	if len(offline) > 0 || len(busy) > 0 {
		var parts []string
		if len(offline) > 0 {
			parts = append(parts, "agent offline: "+strings.Join(offline, ", "))
		}
		if len(busy) > 0 {
			parts = append(parts, "already deploying: "+strings.Join(busy, ", "))
		}
		return Job{}, fmt.Errorf("%w: %s", ErrNodeUnavailable, strings.Join(parts, "; "))
	}
	now := e.d.Now()
	j := Job{ID: e.d.IDs.Next(), Type: typ, ClusterID: c.ID, NodeID: nodeID, State: JobPending, CreatedBy: by, CreatedAt: now}
	steps := map[ids.ID][]Step{}
	var flat []Step
	nodeIDs := make([]ids.ID, len(nodes))
	for i, n := range nodes {
		nodeIDs[i] = n.ID
		for _, name := range StepNames {
			s := Step{ID: e.d.IDs.Next(), JobID: j.ID, NodeID: n.ID, Name: name, State: StepPending}
			steps[n.ID] = append(steps[n.ID], s)
			flat = append(flat, s)
		}
	}
	rels, err := e.deployReleases(ctx, j, nodes)
	if err != nil {
		return Job{}, err
	}
	e.mu.Lock()
	err = e.d.Store.CreateJob(ctx, j, flat, nodeIDs, now)
	e.mu.Unlock()
	if err != nil {
		for _, id := range rels.ids() {
			if aerr := e.d.Configs.AbandonRelease(context.WithoutCancel(ctx), id); aerr != nil {
				e.d.Log.Error("abandon release of a refused deployment", "release", id, "err", aerr)
			}
		}
		return Job{}, err
	}
	e.d.Log.Info("deployment job created", "job", j.ID, "type", typ, "cluster", c.Name, "nodes", len(nodes), "by", by)
	e.notify()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.run(j, c, all, nodes, steps, rels)
	}()
	return j, nil
}

// deployReleases are a deployment's releases of config files, by node
// file: what the configure step writes and records.
type deployReleases map[ids.ID]config.ReleaseNode

func (r deployReleases) ids() []ids.ID {
	var out []ids.ID
	for _, n := range r {
		if !slices.Contains(out, n.ReleaseID) {
			out = append(out, n.ReleaseID)
		}
	}
	return out
}

// deployReleases releases, for a deployment, each config file whose
// content changes on one of its nodes: one release per file with the
// nodes it changes on.
func (e *Engine) deployReleases(ctx context.Context, j Job, nodes []cluster.Node) (deployReleases, error) {
	byFile := map[ids.ID][]ids.ID{} // layer file → nodes
	var order []ids.ID
	for _, n := range nodes {
		files, err := e.d.Configs.NodeFiles(ctx, n.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if _, ok := byFile[f.FileID]; !ok {
				order = append(order, f.FileID)
			}
			byFile[f.FileID] = append(byFile[f.FileID], n.ID)
		}
	}
	out := deployReleases{}
	for _, fid := range order {
		_, rns, err := e.d.Configs.NewRelease(ctx, config.NewRelease{FileID: fid, NodeIDs: byFile[fid], Kind: config.KindDeploy,
			By: j.CreatedBy, JobID: j.ID, Title: "deployment " + j.ID.String()})
		if errors.Is(err, config.ErrNoChange) {
			continue
		}
		if err != nil {
			for _, id := range out.ids() {
				_ = e.d.Configs.AbandonRelease(context.WithoutCancel(ctx), id)
			}
			return nil, err
		}
		for _, rn := range rns {
			out[rn.NodeFileID] = rn
		}
	}
	return out, nil
}

// tierOf orders components: coordinators, storage, brokers, then others.
func tierOf(component string) int {
	switch component {
	case cluster.Coordinator:
		return 0
	case cluster.Storage:
		return 1
	case cluster.Broker:
		return 2
	}
	return 3
}

// run runs the job to its end.
func (e *Engine) run(j Job, c cluster.Cluster, all, nodes []cluster.Node, steps map[ids.ID][]Step, rels deployReleases) {
	ctx := e.ctx
	j.State, j.StartedAt = JobRunning, e.d.Now()
	e.saveJob(ctx, j)

	tiers := make([][]cluster.Node, 4)
	for _, n := range nodes {
		t := tierOf(n.Component)
		tiers[t] = append(tiers[t], n)
	}
	var failure string
	for _, tier := range tiers {
		if len(tier) == 0 {
			continue
		}
		if failure != "" || ctx.Err() != nil {
			// When shutting down ctx can no longer write, but these nodes
			// were not touched: give them back their state now (Recover
			// could only fail them), with a context that still writes.
			wctx, why := context.WithoutCancel(ctx), failure
			if ctx.Err() != nil {
				// A node cut short failed with ctx's error: not the cause.
				why = NotRunStopping
			}
			for _, n := range tier {
				e.cancelNode(wctx, n, steps[n.ID], n.DeployState, "not run: "+why)
			}
			continue
		}
		var (
			wg    sync.WaitGroup
			abort atomic.Bool
			mu    sync.Mutex
		)
		for _, n := range tier {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.deployNode(ctx, j, c, n, all, steps[n.ID], &abort, rels); err != nil {
					abort.Store(true)
					mu.Lock()
					if failure == "" {
						failure = fmt.Sprintf("%s: %v", nodeLabel(n), err)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	if ctx.Err() != nil {
		// Shutting down: leave the job running; Recover fails it.
		return
	}
	for _, id := range rels.ids() {
		if _, err := e.d.Configs.FinishRelease(ctx, id, failure); err != nil {
			e.d.Log.Error("finish the release of a deployment", "release", id, "err", err)
		}
	}
	e.finishJob(ctx, j, failure)
}

// finishJob ends the job: failed with reason, or succeeded when there is
// none; it is written, counted and logged.
func (e *Engine) finishJob(ctx context.Context, j Job, reason string) {
	j.FinishedAt = e.d.Now()
	if reason != "" {
		j.State, j.Reason = JobFailed, truncate(reason, 8<<10)
	} else {
		j.State = JobSucceeded
	}
	e.saveJob(ctx, j)
	e.jobs.WithLabelValues(j.Type, j.State).Inc()
	e.duration.WithLabelValues(j.Type).Observe(j.FinishedAt.Sub(j.StartedAt).Seconds())
	e.d.Log.Info("job finished", "job", j.ID, "type", j.Type, "state", j.State, "reason", j.Reason)
}

func (e *Engine) saveJob(ctx context.Context, j Job) {
	if err := e.d.Store.UpdateJob(ctx, j); err != nil {
		e.d.Log.Error("write deployment job", "job", j.ID, "err", err)
	}
	e.notify()
}

func (e *Engine) saveStep(ctx context.Context, s Step) {
	if err := e.d.Store.UpdateStep(ctx, s); err != nil {
		e.d.Log.Error("write deployment step", "job", s.JobID, "node", s.NodeID, "step", s.Name, "err", err)
	}
	e.notify()
}

func (e *Engine) setNode(ctx context.Context, id ids.ID, deployState, runState string) {
	if err := e.d.Store.SetNodeStates(ctx, id, deployState, runState, e.d.Now()); err != nil {
		e.d.Log.Error("write node state", "node", id, "err", err)
	}
}

// cancelNode marks the node's pending steps cancelled and gives the node
// back its deploy state from before the job.
func (e *Engine) cancelNode(ctx context.Context, n cluster.Node, steps []Step, deployState, why string) {
	now := e.d.Now()
	for _, s := range steps {
		if s.State == StepPending {
			s.State, s.Detail, s.FinishedAt = StepCancelled, why, now
			e.saveStep(ctx, s)
		}
	}
	e.setNode(ctx, n.ID, deployState, "")
}

// errAborted: the node stopped between steps because another node of its
// tier failed.
var errAborted = errors.New("stopped: another node of the tier failed")

// OperationID is the agent operation id of a step of the node's deploy
// in the job: the same for every attempt of that job, node and step.
func OperationID(jobID, nodeID ids.ID, step string) string {
	return jobID.String() + ":" + nodeID.String() + ":" + step
}

// deployNode runs the node's steps in order. steps are the node's
// StepNames in order.
func (e *Engine) deployNode(ctx context.Context, j Job, c cluster.Cluster, n cluster.Node, all []cluster.Node, steps []Step, abort *atomic.Bool, rels deployReleases) error {
	var (
		p       pkg.Package
		comp    manifest.Component
		vars    config.Vars
		base    DeployRequest // the node's install request, without config
		files   []ConfigFile
		names   []string // the config files' names, by files
		changed []string // the names of the files the configure step changed
		ran     bool     // whether the start step was tried
		// progress replaces the running step's detail while it runs (a
		// transfer's bytes and rate), for those who follow the job.
		progress func(detail string)
	)
	fns := map[string]func() (detail string, skipped bool, err error){
		StepTransfer: func() (string, bool, error) {
			var err error
			if p, err = e.d.Packages.Package(ctx, n.PackageID); err != nil {
				return "", false, err
			}
			var ok bool
			if comp, ok = p.Manifest.Components[n.Component]; !ok {
				return "", false, fmt.Errorf("%w: package %s does not provide %s", cluster.ErrComponentNotInPackage, p.FileName, n.Component)
			}
			present, partial, err := e.d.Agents.HasPackage(ctx, n.ServerID, p.SHA256)
			if err != nil {
				return "", false, err
			}
			if present {
				return fmt.Sprintf("the agent holds %s already", p.FileName), true, nil
			}
			began := e.d.Now()
			last := began
			report := func(at int64) {
				now := e.d.Now()
				if now.Sub(last) < progressEvery {
					return
				}
				last = now
				progress(xfer.Sending(p.FileName, at, partial, p.Size, now.Sub(began)))
			}
			if err := e.push(ctx, n.ServerID, p, report); err != nil {
				return "", false, transferError(n, p, err)
			}
			rate := xfer.Rate(p.Size-partial, e.d.Now().Sub(began))
			if partial > 0 {
				return fmt.Sprintf("sent %s (%d bytes, resumed at %d)%s", p.FileName, p.Size, partial, rate), false, nil
			}
			return fmt.Sprintf("sent %s (%d bytes)%s", p.FileName, p.Size, rate), false, nil
		},
		StepInstall: func() (string, bool, error) {
			// comp was loaded by the transfer step, skipped or not.
			var err error
			if vars, err = e.d.Configs.Vars(ctx, n.ID); err != nil {
				return "", false, err
			}
			if base, err = deployRequest(n, p, comp, vars); err != nil {
				return "", false, err
			}
			r := base
			r.OperationID = OperationID(j.ID, n.ID, StepInstall)
			res, err := e.d.Agents.DeployNode(ctx, n.ServerID, r)
			if err != nil {
				return "", false, err
			}
			if res.Unpacked {
				return fmt.Sprintf("unpacked %s into %s", p.FileName, n.ProgramDir), false, nil
			}
			return fmt.Sprintf("%s holds %s already", n.ProgramDir, p.FileName), false, nil
		},
		StepConfigure: func() (string, bool, error) {
			nc, err := e.d.Configs.Render(ctx, n.ID)
			if err != nil {
				return "", false, err
			}
			for _, f := range nc.Files {
				content := f.Content
				if rn, ok := rels[f.NodeFileID]; ok && rn.NodeID == n.ID {
					// What the release records is what is written.
					content = rn.Content
					if err := e.d.Configs.Applying(ctx, rn.ReleaseID, n.ID); err != nil {
						return "", false, err
					}
				}
				files = append(files, ConfigFile{Path: f.Path, Content: content})
				names = append(names, f.Name)
			}
			if len(files) == 0 {
				return "no config files", false, nil
			}
			res, err := e.d.Agents.ApplyConfig(ctx, n.ServerID, ApplyRequest{
				OperationID: OperationID(j.ID, n.ID, StepConfigure), Name: base.Name,
				ProgramDir: n.ProgramDir, DataDir: n.DataDir, ConfigFiles: files, Restart: RestartNever,
			})
			written := changedNames(n, files, names, res.Changed)
			unreleased := map[ids.ID]string{}
			for _, f := range nc.Files {
				rn, ok := rels[f.NodeFileID]
				switch {
				case !ok && err == nil:
					unreleased[f.NodeFileID] = f.SHA256()
				case !ok:
				case err != nil:
					state, detail := applyOutcome(ApplyResult{}, err, false)
					e.settle(ctx, rn.ReleaseID, n.ID, state, detail)
				case slices.Contains(written, f.Name):
					e.settle(ctx, rn.ReleaseID, n.ID, config.NodeApplied, "written by the deployment's configure step")
				default:
					e.settle(ctx, rn.ReleaseID, n.ID, config.NodeUnchanged, "the node had this file already")
				}
			}
			if err != nil {
				return "", false, err
			}
			if len(unreleased) > 0 {
				if err := e.d.Configs.RecordApplied(ctx, unreleased); err != nil {
					return "", false, err
				}
			}
			changed = written
			if len(changed) == 0 {
				return "unchanged: " + strings.Join(names, ", "), false, nil
			}
			return fmt.Sprintf("wrote %s (%d of %d changed)", strings.Join(changed, ", "), len(changed), len(files)), false, nil
		},
		StepStart: func() (string, bool, error) {
			r := base
			r.OperationID, r.Start = OperationID(j.ID, n.ID, StepStart), true
			ran = true
			res, err := e.d.Agents.DeployNode(ctx, n.ServerID, r)
			if err != nil {
				return "", false, err
			}
			argv := strings.Join(r.Argv, " ")
			switch {
			case res.Restarted && len(changed) > 0:
				return fmt.Sprintf("restarted to apply the changed %s: %s", strings.Join(changed, ", "), argv), false, nil
			case res.Restarted:
				return "restarted to apply its changes: " + argv, false, nil
			case res.Started:
				return "started: " + argv, false, nil
			}
			return "already running with this package and config", false, nil
		},
		StepHealth: func() (string, bool, error) {
			return e.health(ctx, j, n, comp.Health, vars)
		},
	}
	for i, s := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if abort.Load() {
			e.cancelNode(ctx, n, steps[i:], cluster.DeployFailed, errAborted.Error())
			return nil
		}
		s.State, s.StartedAt = StepRunning, e.d.Now()
		e.saveStep(ctx, s)
		progress = func(detail string) {
			s.Detail = detail
			e.saveStep(ctx, s)
		}
		detail, skipped, err := fns[s.Name]()
		s.FinishedAt = e.d.Now()
		switch {
		case err != nil:
			s.State, s.Detail = StepFailed, truncate(err.Error(), 8<<10)
		case skipped:
			s.State, s.Detail = StepSkipped, detail
		default:
			s.State, s.Detail = StepSucceeded, detail
		}
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: Recover settles the step
		}
		steps[i] = s
		e.saveStep(ctx, s)
		if err != nil {
			run := ""
			if ran {
				run = cluster.RunFailed
			}
			for _, rest := range steps[i+1:] {
				rest.State, rest.Detail, rest.FinishedAt = StepCancelled, "not run: "+s.Name+" failed", s.FinishedAt
				e.saveStep(ctx, rest)
			}
			e.setNode(ctx, n.ID, cluster.DeployFailed, run)
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	e.setNode(ctx, n.ID, cluster.DeployDeployed, cluster.RunRunning)
	return nil
}

// changedNames returns the names of the files the agent reports written;
// it reports absolute paths, the files have theirs as the agent takes
// them (relative to the program dir, or absolute).
func changedNames(n cluster.Node, files []ConfigFile, names []string, written []string) []string {
	var out []string
	for i, f := range files {
		p := f.Path
		if !path.IsAbs(p) {
			p = path.Join(n.ProgramDir, p)
		}
		if slices.Contains(written, p) {
			out = append(out, names[i])
		}
	}
	return out
}

// deployRequest builds the agent's request from the manifest component,
// its templates filled in with the node's variables. The agent is asked to
// make sure the node's dataIp:serverPort is free before it starts the node.
func deployRequest(n cluster.Node, p pkg.Package, comp manifest.Component, vars config.Vars) (DeployRequest, error) {
	format := p.Ext
	if format == "tgz" {
		format = "tar.gz"
	}
	r := DeployRequest{
		Name: n.ID.String(), PackageSHA256: p.SHA256, PackageFormat: format,
		ProgramDir: n.ProgramDir, DataDir: n.DataDir, LogDir: path.Join(n.DataDir, "logs"),
	}
	if n.ServerPort > 0 {
		// {dataIp} as the node's templates see it: the server's data
		// address, else its manager address.
		ip := cmp.Or(vars["dataIp"], n.DataIP, n.ManagerIP)
		r.FreeAddrs = []string{net.JoinHostPort(ip, strconv.Itoa(n.ServerPort))}
		if n.Component == cluster.Coordinator {
			// The quorum and election ports {zkEnsemble} gives it.
			for _, off := range []int{config.QuorumPortOffset, config.ElectionPortOffset} {
				r.FreeAddrs = append(r.FreeAddrs, net.JoinHostPort(ip, strconv.Itoa(n.ServerPort+off)))
			}
		}
	}
	for i, a := range comp.Start {
		v, err := manifest.Expand(a, vars)
		if err != nil {
			return DeployRequest{}, fmt.Errorf("start[%d]: %w", i, err)
		}
		r.Argv = append(r.Argv, v)
	}
	keys := make([]string, 0, len(comp.Env))
	for k := range comp.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := manifest.Expand(comp.Env[k], vars)
		if err != nil {
			return DeployRequest{}, fmt.Errorf("env %s: %w", k, err)
		}
		r.Env = append(r.Env, k+"="+v)
	}
	wd := comp.WorkDir
	if wd == "" {
		wd = "{programDir}"
	}
	wd, err := manifest.Expand(wd, vars)
	if err != nil {
		return DeployRequest{}, fmt.Errorf("workDir: %w", err)
	}
	if !filepath.IsAbs(wd) {
		wd = path.Join(n.ProgramDir, wd)
	}
	r.WorkDir = path.Clean(wd)
	return r, nil
}

// health polls the agent's check of the node until it passes or the start
// time is up; a failure carries the last lines of the node's log.
func (e *Engine) health(ctx context.Context, j Job, n cluster.Node, h manifest.Health, vars config.Vars) (string, bool, error) {
	hc := HealthCheck{Timeout: time.Duration(h.TimeoutSeconds) * time.Second}
	var err error
	if h.TCP != "" {
		if hc.TCPAddr, err = manifest.Expand(h.TCP, vars); err != nil {
			return "", false, fmt.Errorf("health.tcp: %w", err)
		}
	}
	if h.HTTP != "" {
		if hc.HTTPURL, err = manifest.Expand(h.HTTP, vars); err != nil {
			return "", false, fmt.Errorf("health.http: %w", err)
		}
	}
	for i, a := range h.Command {
		v, err := manifest.Expand(a, vars)
		if err != nil {
			return "", false, fmt.Errorf("health.command[%d]: %w", i, err)
		}
		hc.Command = append(hc.Command, v)
	}
	interval := time.Duration(h.IntervalSeconds) * time.Second
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	limit := time.Duration(h.StartSeconds) * time.Second
	if limit <= 0 {
		limit = DefaultHealthStart
	}
	start := e.d.Now()
	last, msg := "", ""
	// A just-started process is checked often, then less: the wait
	// doubles from healthFirstWait up to the manifest's interval.
	wait := min(healthFirstWait, interval)
	for tries := 1; ; tries++ {
		ok, detail, err := e.d.Agents.CheckHealth(ctx, n.ServerID, hc)
		switch {
		case err != nil:
			last = err.Error()
		case ok:
			return fmt.Sprintf("healthy after %d check(s) in %s: %s", tries, e.d.Now().Sub(start).Round(time.Millisecond), detail), false, nil
		default:
			last = detail
		}
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		if why := e.crashLooping(ctx, n); why != "" {
			msg = fmt.Sprintf("not healthy: %s; last check: %s", why, last)
			// Left alone it would go on restarting, with backoff, for good.
			op := j.ID.String() + ":" + n.ID.String() + ":stop-crashing"
			if _, err := e.d.Agents.NodeCommand(ctx, n.ServerID, op, n.ID.String(), NodeStop); err != nil {
				msg += fmt.Sprintf("\n(could not stop it: %v)", err)
			} else {
				msg += "\nstopped it so that it does not keep restarting; fix the cause and deploy again"
			}
			break
		}
		if e.d.Now().Sub(start)+wait > limit {
			msg = fmt.Sprintf("not healthy within %s: %s", limit, last)
			break
		}
		if err := e.d.Sleep(ctx, wait); err != nil {
			return "", false, err
		}
		wait = min(2*wait, interval)
	}
	if logs, err := e.d.Agents.NodeLogs(ctx, n.ServerID, n.ID.String(), healthLogBytes); err != nil {
		msg += "\n(log unavailable: " + err.Error() + ")"
	} else if tail := lastLines(string(logs), healthLogLines); tail != "" {
		msg += "\nlast log lines:\n" + tail
	}
	return "", false, errors.New(msg)
}

// crashLooping says why waiting longer for the node to become healthy is
// pointless — its process keeps exiting — or "". An agent that cannot
// answer says nothing: the health checks decide.
func (e *Engine) crashLooping(ctx context.Context, n cluster.Node) string {
	states, err := e.d.Agents.NodeStatus(ctx, n.ServerID, []string{n.ID.String()})
	if err != nil || len(states) != 1 {
		return ""
	}
	st := states[0]
	if st.Running || st.Restarts < healthCrashLimit {
		return ""
	}
	return fmt.Sprintf("the process exited %d times since it was started (last: %s)", st.Restarts, st.LastExit)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// push streams the package file to the server's agent, calling report
// with how far into the file the transfer has read.
func (e *Engine) push(ctx context.Context, server ids.ID, p pkg.Package, report func(at int64)) error {
	f, err := os.Open(e.d.Packages.Path(p))
	if err != nil {
		return fmt.Errorf("open package file: %w", err)
	}
	defer f.Close()
	_, err = e.d.Agents.PushPackage(ctx, server, p.SHA256, p.Size, &readProgress{r: f, report: report})
	return err
}
