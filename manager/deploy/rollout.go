package deploy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/fleet"
)

// A rollout applies one change to many nodes, a batch at a time: a config
// file (a flush, a rolling flush, a rollback: a release the agents write,
// restarting the node and checking its health, and putting the previous
// file back when it is unhealthy) or a restart alone. Each batch's nodes
// go in parallel; the next batch waits for the one before to be healthy.
// The first failure stops it (or the one past the failure budget): the
// nodes not reached are left as they are. A component that keeps a quorum
// (coordinators, or a manifest's "quorum") never has more than f of its
// 2f+1 nodes down, counting nodes down already, and its leader (found by
// the manifest's role probe) goes last.

// RolloutRequest is what Rollout rolls out.
type RolloutRequest struct {
	ClusterID ids.ID
	// FileID is the cluster layer of the config file to release; zero for
	// a rolling restart with no config change.
	FileID ids.ID
	// RollbackTo is an earlier release of FileID to go back to.
	RollbackTo ids.ID
	// NodeIDs are the nodes; empty: every node of the file's component
	// (for a restart: of Component).
	NodeIDs []ids.ID
	// Component names the nodes of a restart when NodeIDs does not.
	Component string
	// BatchSize is how many nodes go at once (0: 1); AllAtOnce takes them
	// all in one batch. A quorum caps both.
	BatchSize int
	AllAtOnce bool
	// FailureBudget is how many nodes may fail before the rollout stops
	// (default 0: at the first).
	FailureBudget int
	Title         string
	Comment       string
	By            string
	// KeepUnchanged releases to the nodes whose file would not change too,
	// so that a release is made even when nothing changed (Apollo's
	// publish of an unchanged namespace): those nodes are sent the file,
	// which their agent finds unchanged, and nothing restarts.
	KeepUnchanged bool

	typ string // TypeFlush for the seed's flush of one node
}

// Limits of a rollout request.
const (
	maxBatch         = 10000
	applyLogTail     = 4 << 10
	reconcileTimeout = 2 * time.Minute
)

// rollout is a rollout under way.
type rollout struct {
	job       Job
	cluster   cluster.Cluster
	comp      manifest.Component
	component string
	// ensemble is the quorum component's nodes; nil when it keeps none.
	ensemble []cluster.Node
	targets  []cluster.Node
	steps    map[ids.ID]Step
	release  config.Release
	files    map[ids.ID]config.ReleaseNode // by node
	restart  bool
	batch    int
	budget   int
}

// Rollout starts a job that rolls a config file (or a restart) out over
// nodes and returns it with its release (none for a restart). Nothing is
// recorded when the request is refused: a node's agent offline
// (fleet.ErrAgentNotOnline), a node held by another job (ErrNodeHeld), a
// quorum that the first batch would break (ErrQuorum), no node whose
// file would change (config.ErrNoChange), a release of another file
// (config.ErrOtherFile), bad input (*invalid.Error).
func (e *Engine) Rollout(ctx context.Context, r RolloutRequest) (Job, config.Release, error) {
	ro, err := e.planRollout(ctx, &r)
	if err != nil {
		return Job{}, config.Release{}, err
	}
	j := Job{ID: e.d.IDs.Next(), Type: r.typ, ClusterID: ro.cluster.ID, State: JobPending, CreatedBy: r.By, CreatedAt: e.d.Now()}
	if r.typ == TypeFlush {
		j.NodeID = ro.targets[0].ID
	}
	if !ro.restart {
		kind := config.KindRollout
		switch r.typ {
		case TypeFlush:
			kind = config.KindFlush
		case TypeRollback:
			kind = config.KindRollback
		}
		targets := nodeIDs(ro.targets)
		if !r.RollbackTo.IsZero() && len(r.NodeIDs) == 0 {
			targets = nil // the nodes of the release rolled back to that are still here
		}
		rel, nodes, err := e.d.Configs.NewRelease(ctx, config.NewRelease{FileID: r.FileID, NodeIDs: targets, Kind: kind,
			Title: r.Title, Comment: r.Comment, By: r.By, JobID: j.ID, RollbackTo: r.RollbackTo, All: r.KeepUnchanged})
		if err != nil {
			return Job{}, config.Release{}, err
		}
		ro.release, ro.files = rel, map[ids.ID]config.ReleaseNode{}
		for _, n := range nodes {
			ro.files[n.NodeID] = n
		}
		// Only the nodes whose file changes are touched.
		ro.targets = slices.DeleteFunc(ro.targets, func(n cluster.Node) bool { _, ok := ro.files[n.ID]; return !ok })
	}
	name := StepApply
	if ro.restart {
		name = StepRestart
	}
	ro.steps = map[ids.ID]Step{}
	var flat []Step
	for _, n := range ro.targets {
		s := Step{ID: e.d.IDs.Next(), JobID: j.ID, NodeID: n.ID, Name: name, State: StepPending, ReleaseID: ro.release.ID}
		ro.steps[n.ID], flat = s, append(flat, s)
	}
	e.mu.Lock()
	err = e.d.Store.CreateJob(ctx, j, flat, nodeIDs(ro.targets), j.CreatedAt)
	e.mu.Unlock()
	if err != nil {
		if !ro.release.ID.IsZero() {
			if aerr := e.d.Configs.AbandonRelease(context.WithoutCancel(ctx), ro.release.ID); aerr != nil {
				e.d.Log.Error("abandon release of a refused rollout", "release", ro.release.ID, "err", aerr)
			}
		}
		return Job{}, config.Release{}, err
	}
	ro.job = j
	e.d.Log.Info("rollout job created", "job", j.ID, "type", j.Type, "cluster", ro.cluster.Name, "nodes", len(ro.targets),
		"release", ro.release.Number, "by", r.By)
	e.notify()
	done := e.doneChan(j.ID)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.closeDone(j.ID, done)
		e.runRollout(ro)
	}()
	return j, ro.release, nil
}

// planRollout checks the request and finds its cluster, nodes, component
// and quorum.
func (e *Engine) planRollout(ctx context.Context, r *RolloutRequest) (*rollout, error) {
	switch {
	case r.BatchSize < 0 || r.BatchSize > maxBatch:
		return nil, invalid.Field("batchSize", "must be from 1 to %d (0: 1)", maxBatch)
	case r.FailureBudget < 0 || r.FailureBudget > maxBatch:
		return nil, invalid.Field("failureBudget", "must be from 0 to %d", maxBatch)
	case !r.RollbackTo.IsZero() && r.FileID.IsZero():
		return nil, invalid.Field("configFileId", "is required with a release to roll back to")
	}
	if r.typ == "" {
		r.typ = TypeRollout
		switch {
		case r.FileID.IsZero():
			r.typ = TypeRestart
		case !r.RollbackTo.IsZero():
			r.typ = TypeRollback
		}
	}
	c, err := e.d.Clusters.Cluster(ctx, r.ClusterID)
	if err != nil {
		return nil, err
	}
	all, err := e.d.Clusters.AllNodes(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	ro := &rollout{cluster: c, restart: r.FileID.IsZero(), budget: r.FailureBudget, component: r.Component}
	if !ro.restart {
		f, err := e.d.Configs.File(ctx, r.FileID)
		if err != nil {
			return nil, err
		}
		if f.ClusterID != c.ID {
			return nil, invalid.Field("configFileId", "file %s (%s) belongs to cluster %s, not %s", f.ID, f.Name, f.ClusterID, c.ID)
		}
		ro.component = f.Component
	}
	for _, id := range r.NodeIDs {
		i := slices.IndexFunc(all, func(n cluster.Node) bool { return n.ID == id })
		if i < 0 {
			return nil, fmt.Errorf("%w: %s is not a node of cluster %s", cluster.ErrNodeNotFound, id, c.Name)
		}
		if ro.component == "" {
			ro.component = all[i].Component
		}
		if all[i].Component != ro.component {
			return nil, invalid.Field("nodeIds", "%s is a %s node; a rollout goes over nodes of one component (%s)", all[i].NodeDir, all[i].Component, ro.component)
		}
		if !slices.ContainsFunc(ro.targets, func(n cluster.Node) bool { return n.ID == id }) {
			ro.targets = append(ro.targets, all[i])
		}
	}
	if ro.component == "" {
		return nil, invalid.Field("component", "name the component (or nodeIds) to restart")
	}
	for _, n := range all {
		if n.Component != ro.component {
			continue
		}
		if len(r.NodeIDs) == 0 {
			ro.targets = append(ro.targets, n)
		}
		ro.ensemble = append(ro.ensemble, n)
	}
	if len(ro.targets) == 0 {
		return nil, fmt.Errorf("%w: cluster %s has no %s node", ErrNothingToDeploy, c.Name, ro.component)
	}
	var offline []string
	for _, n := range ro.targets {
		if !e.d.Agents.Online(n.ServerID) {
			offline = append(offline, nodeLabel(n))
		}
	}
	if len(offline) > 0 {
		return nil, fmt.Errorf("%w: the agent of %s is offline; nothing was released or recorded", fleet.ErrAgentNotOnline, strings.Join(offline, ", "))
	}
	p, err := e.d.Packages.Package(ctx, ro.targets[0].PackageID)
	if err != nil {
		return nil, err
	}
	var ok bool
	if ro.comp, ok = p.Manifest.Components[ro.component]; !ok {
		return nil, fmt.Errorf("%w: package %s does not provide %s", cluster.ErrComponentNotInPackage, p.FileName, ro.component)
	}
	if !ro.comp.Quorum && ro.component != cluster.Coordinator {
		ro.ensemble = nil
	}
	ro.batch = max(r.BatchSize, 1)
	if r.AllAtOnce {
		ro.batch = len(ro.targets)
	}
	if ro.ensemble != nil {
		// Refused now, rather than after a release, when not even the
		// first node could go.
		members := e.probe(ctx, ro)
		if _, err := nextBatch(nodeIDs(ro.targets), members, ro.batch); err != nil {
			return nil, err
		}
	}
	return ro, nil
}

func nodeIDs(nodes []cluster.Node) []ids.ID {
	out := make([]ids.ID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

// runRollout runs the rollout's batches to the end, a stop or a failure.
func (e *Engine) runRollout(ro *rollout) {
	ctx := e.ctx
	j := ro.job
	j.State, j.StartedAt = JobRunning, e.d.Now()
	e.saveJob(ctx, j)
	remaining := nodeIDs(ro.targets)
	byID := map[ids.ID]cluster.Node{}
	for _, n := range ro.targets {
		byID[n.ID] = n
	}
	var (
		failed []string
		stop   string
	)
	for len(remaining) > 0 && stop == "" {
		var members []Member
		if ro.ensemble != nil {
			members = e.probe(ctx, ro)
		}
		if ctx.Err() != nil {
			return // shutting down: Recover settles the job and release
		}
		batch, err := nextBatch(remaining, members, ro.batch)
		if err != nil {
			stop = err.Error()
			break
		}
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for _, id := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if why := e.applyOne(ctx, ro, byID[id]); why != "" {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s: %s", nodeLabel(byID[id]), why))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		remaining = slices.DeleteFunc(remaining, func(id ids.ID) bool { return slices.Contains(batch, id) })
		if len(failed) > ro.budget {
			stop = fmt.Sprintf("stopped after %d failed node(s) (failure budget %d)", len(failed), ro.budget)
		}
	}
	reason := ""
	if stop != "" || len(failed) > 0 {
		reason = strings.Join(append(failed, stop), "; ")
		reason = strings.TrimSuffix(reason, "; ")
	}
	now := e.d.Now()
	for _, id := range remaining {
		s := ro.steps[id]
		s.State, s.Detail, s.FinishedAt = StepCancelled, "not run: "+firstLine(stop), now
		e.saveStep(ctx, s)
	}
	if !ro.release.ID.IsZero() {
		if _, err := e.d.Configs.FinishRelease(ctx, ro.release.ID, reason); err != nil {
			e.d.Log.Error("finish release", "release", ro.release.ID, "err", err)
		}
	}
	e.finishJob(ctx, j, reason)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// applyOne has the node's agent apply its file of the release (or
// restart it), records the outcome in its step and the release, and says
// why the node failed ("" when it did not).
func (e *Engine) applyOne(ctx context.Context, ro *rollout, n cluster.Node) string {
	s := ro.steps[n.ID]
	s.State, s.StartedAt = StepRunning, e.d.Now()
	e.saveStep(ctx, s)
	req, err := e.applyRequest(ctx, ro, n)
	if err == nil && !ro.release.ID.IsZero() {
		err = e.d.Configs.Applying(ctx, ro.release.ID, n.ID)
	}
	if err != nil {
		s.State, s.Detail, s.FinishedAt = StepFailed, truncate(err.Error(), 8<<10), e.d.Now()
		e.saveStep(ctx, s)
		e.settle(ctx, ro.release.ID, n.ID, config.NodeFailed, err.Error())
		return err.Error()
	}
	res, err := e.d.Agents.ApplyConfig(ctx, n.ServerID, req)
	if ctx.Err() != nil {
		return "" // shutting down: Recover settles it, the agent finishes it
	}
	state, detail := applyOutcome(res, err, ro.restart)
	s.FinishedAt, s.Detail = e.d.Now(), truncate(detail, 8<<10)
	if err == nil {
		healthy := res.Healthy
		s.PIDBefore, s.PIDAfter, s.Duration = res.PIDBefore, res.PIDAfter, res.Duration
		if res.Restarted {
			s.Healthy = &healthy
		}
		e.setNode(ctx, n.ID, "", RunState(res.State))
	}
	ok := state == config.NodeApplied || state == config.NodeUnchanged
	s.State = StepSucceeded
	if !ok {
		s.State = StepFailed
	}
	e.saveStep(ctx, s)
	e.settle(ctx, ro.release.ID, n.ID, state, detail)
	if ok {
		return ""
	}
	return detail
}

// settle records a node's outcome in the release, if there is one.
func (e *Engine) settle(ctx context.Context, releaseID, nodeID ids.ID, state config.NodeState, detail string) {
	if releaseID.IsZero() {
		return
	}
	if _, err := e.d.Configs.Settle(ctx, releaseID, nodeID, state, detail); err != nil {
		e.d.Log.Error("record release outcome", "release", releaseID, "node", nodeID, "state", state, "err", err)
	}
}

// ReleaseOp is the agent operation id of a release's node: the same for
// every attempt, so that a retry (or a manager asking after a restart)
// gets the recorded result.
func ReleaseOp(releaseID, nodeID ids.ID) string {
	return "release:" + releaseID.String() + ":" + nodeID.String()
}

// applyRequest builds the agent's request for node n of the rollout.
func (e *Engine) applyRequest(ctx context.Context, ro *rollout, n cluster.Node) (ApplyRequest, error) {
	vars, err := e.d.Configs.Vars(ctx, n.ID)
	if err != nil {
		return ApplyRequest{}, err
	}
	hc, start, interval, err := healthCheck(ro.comp.Health, vars)
	if err != nil {
		return ApplyRequest{}, err
	}
	r := ApplyRequest{
		Name: n.ID.String(), ProgramDir: n.ProgramDir, DataDir: n.DataDir, Health: &hc,
		HealthStart: start, HealthInterval: interval, LogTailBytes: applyLogTail,
	}
	if ro.restart {
		r.OperationID, r.Restart = OperationID(ro.job.ID, n.ID, StepRestart), RestartAlways
		return r, nil
	}
	f := ro.files[n.ID]
	r.OperationID, r.Restart, r.Restore = ReleaseOp(f.ReleaseID, n.ID), RestartIfChanged, true
	r.ConfigFiles = []ConfigFile{{Path: f.Path, Content: f.Content}}
	return r, nil
}

// healthCheck is the manifest's health check with a node's variables,
// and how long the node may take to pass it and the longest wait between
// two checks.
func healthCheck(h manifest.Health, vars config.Vars) (HealthCheck, time.Duration, time.Duration, error) {
	hc := HealthCheck{Timeout: time.Duration(h.TimeoutSeconds) * time.Second}
	var err error
	if h.TCP != "" {
		if hc.TCPAddr, err = manifest.Expand(h.TCP, vars); err != nil {
			return hc, 0, 0, fmt.Errorf("health.tcp: %w", err)
		}
	}
	if h.HTTP != "" {
		if hc.HTTPURL, err = manifest.Expand(h.HTTP, vars); err != nil {
			return hc, 0, 0, fmt.Errorf("health.http: %w", err)
		}
	}
	for i, a := range h.Command {
		v, err := manifest.Expand(a, vars)
		if err != nil {
			return hc, 0, 0, fmt.Errorf("health.command[%d]: %w", i, err)
		}
		hc.Command = append(hc.Command, v)
	}
	interval := time.Duration(h.IntervalSeconds) * time.Second
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	interval = min(interval, time.Minute)
	limit := time.Duration(h.StartSeconds) * time.Second
	if limit <= 0 {
		limit = DefaultHealthStart
	}
	return hc, limit, interval, nil
}

// applyOutcome is the release state an agent's answer means and the words
// that say so.
func applyOutcome(res ApplyResult, err error, restart bool) (config.NodeState, string) {
	switch {
	case err != nil && errors.Is(err, fleet.ErrAgentNotOnline):
		return config.NodeInterrupted, fmt.Sprintf("the agent went away during the apply (%v): the node's file is its old or its new version; "+
			"the outcome is asked of the agent when it reconnects, or flush again", err)
	case err != nil:
		return config.NodeFailed, err.Error()
	case res.Interrupted:
		return config.NodeInterrupted, "the agent was restarted during the apply: the node's file is its old or its new version; flush again"
	}
	var b strings.Builder
	pids := fmt.Sprintf("pid %d → %d", res.PIDBefore, res.PIDAfter)
	switch {
	case res.Stopped:
		fmt.Fprintf(&b, "written; the node is stopped, so it was neither restarted nor checked")
	case !res.Restarted && len(res.Changed) == 0:
		b.WriteString("unchanged: the node has this file already; not restarted")
	case res.Restarted && res.Healthy:
		what := "restarted"
		if !restart {
			what = "written and restarted"
		}
		fmt.Fprintf(&b, "%s (%s), healthy after %d check(s) in %s: %s", what, pids, res.HealthChecks,
			res.Duration.Round(time.Millisecond), firstLine(res.HealthDetail))
	default:
		fmt.Fprintf(&b, "not healthy after the restart: %s", res.HealthDetail)
	}
	state := config.NodeApplied
	switch {
	case !res.Restarted && len(res.Changed) == 0 && !res.Stopped:
		state = config.NodeUnchanged
	case res.Restarted && !res.Healthy && res.Restored:
		state = config.NodeRestored
		if res.RestoredHealthy {
			fmt.Fprintf(&b, "\nthe previous file was put back and the node restarted: healthy again (%s)", firstLine(res.RestoreDetail))
		} else {
			fmt.Fprintf(&b, "\nthe previous file was put back and the node restarted, and it is still not healthy: %s", res.RestoreDetail)
		}
		if strings.HasPrefix(res.RestoreDetail, "restore failed") {
			state = config.NodeInterrupted
		}
	case res.Restarted && !res.Healthy:
		state = config.NodeFailed
	}
	if tail := lastLines(string(res.LogTail), healthLogLines); tail != "" && state != config.NodeApplied && state != config.NodeUnchanged {
		b.WriteString("\nlast log lines:\n" + tail)
	}
	return state, b.String()
}

// probe asks every node of the rollout's ensemble, in parallel, whether
// it is healthy and whether it leads.
func (e *Engine) probe(ctx context.Context, ro *rollout) []Member {
	out := make([]Member, len(ro.ensemble))
	var wg sync.WaitGroup
	for i, n := range ro.ensemble {
		out[i] = Member{ID: n.ID, Name: n.NodeDir, Ordinal: n.Ordinal}
		if !e.d.Agents.Online(n.ServerID) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			vars, err := e.d.Configs.Vars(ctx, n.ID)
			if err != nil {
				return
			}
			if hc, _, _, err := healthCheck(ro.comp.Health, vars); err == nil {
				ok, _, err := e.d.Agents.CheckHealth(ctx, n.ServerID, hc)
				out[i].Up = err == nil && ok
			}
			if out[i].Up && !ro.comp.RoleProbe.IsZero() {
				out[i].Leader = e.leads(ctx, n, ro.comp.RoleProbe, vars)
			}
		}()
	}
	wg.Wait()
	return out
}

// leads runs the role probe on node n.
func (e *Engine) leads(ctx context.Context, n cluster.Node, p manifest.RoleProbe, vars config.Vars) bool {
	hc := HealthCheck{Send: []byte(p.Send), Timeout: time.Duration(p.TimeoutSeconds) * time.Second}
	var err error
	if p.TCP != "" {
		if hc.TCPAddr, err = manifest.Expand(p.TCP, vars); err != nil {
			return false
		}
	}
	for _, a := range p.Command {
		v, err := manifest.Expand(a, vars)
		if err != nil {
			return false
		}
		hc.Command = append(hc.Command, v)
	}
	re, err := regexp.Compile("(?m)" + p.Leader)
	if err != nil {
		return false
	}
	ok, detail, err := e.d.Agents.CheckHealth(ctx, n.ServerID, hc)
	return err == nil && ok && re.MatchString(detail)
}

// doneChan returns a channel closed when the job's run ends.
func (e *Engine) doneChan(id ids.ID) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done == nil {
		e.done = map[ids.ID]chan struct{}{}
	}
	ch := make(chan struct{})
	e.done[id] = ch
	return ch
}

func (e *Engine) closeDone(id ids.ID, ch chan struct{}) {
	e.mu.Lock()
	delete(e.done, id)
	e.mu.Unlock()
	close(ch)
}

// FlushRequest is the console's flush of one node's config file (seed
// 2.3.0.9).
type FlushRequest struct {
	NodeFileID ids.ID
	NodeID     ids.ID
	ClusterID  ids.ID
	Title      string
	Comment    string
	By         string
}

// FlushResult is how a flush ended.
type FlushResult struct {
	// Job is the flush's job; zero when the node had the file already.
	Job     Job
	Release config.Release
	// Outcome is the node's state in the release: applied, unchanged,
	// restored, failed or interrupted; "running" when the caller stopped
	// waiting first.
	Outcome string
	Step    Step
	Detail  string
}

// Flush releases one node's config file and applies it on the node as a
// rollout of that node, and waits for it: written atomically (the previous
// version kept), the node restarted and checked, the previous file put
// back when it is unhealthy. A node whose file would not change is left
// alone (Outcome unchanged, no job, nothing recorded); an offline agent
// is fleet.ErrAgentNotOnline with nothing recorded.
func (e *Engine) Flush(ctx context.Context, r FlushRequest) (FlushResult, error) {
	nf, err := e.d.Configs.NodeFile(ctx, r.NodeFileID)
	if err != nil {
		return FlushResult{}, err
	}
	if !r.NodeID.IsZero() && nf.NodeID != r.NodeID {
		return FlushResult{}, invalid.Field("nodeId", "config file %s (%s) is node %s's, not %s's", nf.ID, nf.Name, nf.NodeID, r.NodeID)
	}
	n, err := e.d.Clusters.Node(ctx, nf.NodeID)
	if err != nil {
		return FlushResult{}, err
	}
	if !r.ClusterID.IsZero() && n.ClusterID != r.ClusterID {
		return FlushResult{}, invalid.Field("clusterId", "node %s belongs to cluster %s, not %s", n.ID, n.ClusterID, r.ClusterID)
	}
	j, rel, err := e.Rollout(ctx, RolloutRequest{ClusterID: n.ClusterID, FileID: nf.FileID, NodeIDs: []ids.ID{n.ID},
		Title: r.Title, Comment: r.Comment, By: r.By, typ: TypeFlush})
	if errors.Is(err, config.ErrNoChange) {
		return FlushResult{Outcome: string(config.NodeUnchanged), Detail: "the node has this file already: nothing was done"}, nil
	}
	if err != nil {
		return FlushResult{}, err
	}
	e.mu.Lock()
	done := e.done[j.ID]
	e.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	res := FlushResult{Outcome: "running", Release: rel}
	if res.Job, _, err = e.Job(context.WithoutCancel(ctx), j.ID); err != nil {
		return FlushResult{}, err
	}
	steps, err := e.d.Store.JobSteps(context.WithoutCancel(ctx), j.ID)
	if err != nil {
		return FlushResult{}, err
	}
	if len(steps) == 1 {
		res.Step, res.Detail = steps[0], steps[0].Detail
	}
	if r, nodes, err := e.d.Configs.Release(context.WithoutCancel(ctx), rel.ID); err == nil {
		res.Release = r
		for _, rn := range nodes {
			if rn.NodeID == n.ID && rn.State.Settled() {
				res.Outcome, res.Detail = string(rn.State), rn.Detail
			}
		}
	}
	return res, nil
}

// reconcile asks the agent of a server that came back how the applies it
// was given before the manager restarted (or before it went away) ended,
// and records them.
func (e *Engine) reconcile(server ids.ID) {
	ctx, cancel := context.WithTimeout(e.ctx, reconcileTimeout)
	defer cancel()
	nodes, err := e.d.Clusters.NodesOnServers(ctx, []ids.ID{server})
	if err != nil || len(nodes) == 0 {
		return
	}
	left, err := e.d.Configs.Interrupted(ctx, nodeIDs(nodes))
	if err != nil {
		e.d.Log.Warn("interrupted applies", "server", server, "err", err)
		return
	}
	for _, rn := range left {
		res, err := e.d.Agents.ApplyConfig(ctx, server, ApplyRequest{OperationID: ReleaseOp(rn.ReleaseID, rn.NodeID),
			Name: rn.NodeID.String(), RecordedOnly: true})
		var state config.NodeState
		var detail string
		switch {
		case errors.Is(err, ErrNodeNotInstalled):
			state, detail = config.NodeFailed, "not applied: the agent never began it (asked after it reconnected)"
		case err != nil:
			e.d.Log.Warn("ask an agent how an apply ended", "server", server, "node", rn.NodeID, "err", err)
			continue
		case res.Interrupted:
			continue // the agent itself does not know: it stays unknown
		default:
			state, detail = applyOutcome(res, nil, false)
			detail += "\n(settled from the agent's record after the apply was interrupted)"
		}
		if _, err := e.d.Configs.Settle(ctx, rn.ReleaseID, rn.NodeID, state, detail); err != nil {
			e.d.Log.Warn("record a settled apply", "release", rn.ReleaseID, "node", rn.NodeID, "err", err)
			continue
		}
		e.d.Log.Info("interrupted apply settled from the agent's record", "release", rn.ReleaseID, "node", rn.NodeID, "state", state)
		e.notify()
	}
}
