package api

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

// Deployer runs deployments, node commands and teardown; *deploy.Engine
// implements it.
type Deployer interface {
	DeployCluster(ctx context.Context, clusterID ids.ID, by string) (deploy.Job, error)
	DeployNode(ctx context.Context, nodeID ids.ID, by string) (deploy.Job, error)
	Job(ctx context.Context, id ids.ID) (deploy.Job, []deploy.Step, error)
	Jobs(ctx context.Context, clusterID ids.ID, p paging.Page) ([]deploy.Job, int, error)
	Changed() <-chan struct{}
	Command(ctx context.Context, nodeID ids.ID, cmd string) (deploy.NodeState, error)
	Logs(ctx context.Context, nodeID ids.ID, maxBytes int) ([]byte, error)
	LiveRunStates(ctx context.Context, nodes []cluster.Node) map[ids.ID]deploy.LiveState
	Cleanups(ctx context.Context, serverID ids.ID, p paging.Page) ([]deploy.Cleanup, int, error)
	Flush(ctx context.Context, r deploy.FlushRequest) (deploy.FlushResult, error)
	DeleteCluster(ctx context.Context, id ids.ID) (cluster.Cluster, []cluster.Uncleaned, error)
	Rollout(ctx context.Context, r deploy.RolloutRequest) (deploy.Job, config.Release, error)
}

// jobEventInterval is how often the event stream rereads a job when no
// change is signalled (changes made by this manager wake it at once).
var jobEventInterval = 500 * time.Millisecond

func (a *API) deployer() (Deployer, error) {
	if a.d.Deploy == nil {
		return nil, errors.New("api: no deploy engine configured")
	}
	return a.d.Deploy, nil
}

// deployClusterRequest deploys every node of a cluster (seed 2.3.0.3).
type deployClusterRequest struct {
	ClusterID ids.ID `json:"clusterId"`
}

// deployNodeRequest deploys one node (seed 2.3.0.2); clusterId, when
// given, must be the node's cluster.
type deployNodeRequest struct {
	ClusterID ids.ID `json:"clusterId,omitempty"`
	NodeID    ids.ID `json:"nodeId"`
}

// cmdRequest runs a command on a node (seed 2.3.0.10).
type cmdRequest struct {
	ID  ids.ID `json:"id"`
	Cmd string `json:"cmd"`
}

type jobView struct {
	ID        ids.ID `json:"id"`
	Type      string `json:"type"`      // deploy_cluster, deploy_node, config_flush, config_rollout, config_rollback, rolling_restart, server_bootstrap
	ClusterID ids.ID `json:"clusterId"` // null for a server_bootstrap job
	ServerID  ids.ID `json:"serverId"`  // the server of a server_bootstrap job, else null
	NodeID    ids.ID `json:"nodeId"`    // null for a cluster job
	State     string `json:"state"`     // pending, running, succeeded, failed
	Reason    string `json:"reason"`
	// Code and ErrorData: what POST /server would have answered for the
	// error a failed server_bootstrap job ended with (0 and null otherwise).
	Code       int            `json:"code"`
	ErrorData  map[string]any `json:"errorData"`
	CreatedBy  string         `json:"createdBy"`
	CreateTime apiTime        `json:"createTime"`
	StartTime  apiTime        `json:"startTime"`
	FinishTime apiTime        `json:"finishTime"`
}

func toJobView(j deploy.Job) jobView {
	return jobView{ID: j.ID, Type: j.Type, ClusterID: j.ClusterID, ServerID: j.ServerID, NodeID: j.NodeID, State: j.State, Reason: j.Reason,
		Code: j.Code, ErrorData: j.ErrorData, CreatedBy: j.CreatedBy, CreateTime: apiTime(j.CreatedAt), StartTime: apiTime(j.StartedAt),
		FinishTime: apiTime(j.FinishedAt)}
}

type stepView struct {
	ID     ids.ID `json:"id"`
	JobID  ids.ID `json:"jobId"`
	NodeID ids.ID `json:"nodeId"`
	// Name is transfer, install, configure, start or health for a
	// deployment; apply (write the file, restart, check) or restart for a
	// rollout; connect, detect, upload, install or online for a
	// server_bootstrap (whose steps have no nodeId).
	Name       string  `json:"name"`
	State      string  `json:"state"` // pending, running, succeeded, failed, skipped, cancelled
	Detail     string  `json:"detail"`
	StartTime  apiTime `json:"startTime"`
	FinishTime apiTime `json:"finishTime"`
	// A rollout's step: the release it applied, the node's pid before and
	// after, whether it was healthy after the restart (null: not
	// restarted), and how long the agent took.
	ReleaseID  ids.ID `json:"releaseId"`
	PidBefore  int    `json:"pidBefore"`
	PidAfter   int    `json:"pidAfter"`
	Healthy    *bool  `json:"healthy"`
	DurationMs int64  `json:"durationMs"`
}

func toStepView(s deploy.Step) stepView {
	return stepView{ID: s.ID, JobID: s.JobID, NodeID: s.NodeID, Name: s.Name, State: s.State, Detail: s.Detail,
		StartTime: apiTime(s.StartedAt), FinishTime: apiTime(s.FinishedAt), ReleaseID: s.ReleaseID, PidBefore: s.PIDBefore,
		PidAfter: s.PIDAfter, Healthy: s.Healthy, DurationMs: s.Duration.Milliseconds()}
}

type jobNodeView struct {
	NodeID ids.ID     `json:"nodeId"`
	Steps  []stepView `json:"steps"`
}

type jobDetailView struct {
	jobView
	Nodes []jobNodeView `json:"nodes"`
}

func toJobDetail(j deploy.Job, steps []deploy.Step) jobDetailView {
	v := jobDetailView{jobView: toJobView(j), Nodes: []jobNodeView{}}
	at := map[ids.ID]int{}
	for _, s := range steps {
		i, ok := at[s.NodeID]
		if !ok {
			i = len(v.Nodes)
			at[s.NodeID] = i
			v.Nodes = append(v.Nodes, jobNodeView{NodeID: s.NodeID})
		}
		v.Nodes[i].Steps = append(v.Nodes[i].Steps, toStepView(s))
	}
	return v
}

type nodeStateView struct {
	NodeID    ids.ID  `json:"nodeId"`
	RunStatus string  `json:"runStatus"` // running, stopped, failed
	Running   bool    `json:"running"`
	Pid       int     `json:"pid"`
	StartTime apiTime `json:"startTime"`
	Restarts  int     `json:"restarts"`
	LastExit  string  `json:"lastExit"`
	Desired   string  `json:"desired"`
}

type nodeLogView struct {
	Log string `json:"log"`
}

type notCleanedView struct {
	NodeID    ids.ID `json:"nodeId"`
	ManagerIP string `json:"managerIp"`
	Reason    string `json:"reason"`
	// Queued: the node's removal is queued (GET /cluster/cleanup) and sent
	// when its agent reconnects; otherwise the node is left on its host.
	Queued bool `json:"queued"`
	// KeptDirs: the node was removed, but these dirs of it were kept.
	KeptDirs []string `json:"keptDirs,omitempty"`
}

type deleteClusterView struct {
	// NotCleaned are the nodes whose agent was offline or failed to remove
	// them: their processes and dirs are still on the host, until the
	// agent reconnects for those queued.
	NotCleaned []notCleanedView `json:"notCleaned"`
}

func (a *API) deployCluster(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	var r deployClusterRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ClusterID.IsZero() {
		return invalid.Field("clusterId", "is required")
	}
	detail(c, "cluster=%s", r.ClusterID)
	j, err := eng.DeployCluster(c.Request().Context(), r.ClusterID, userOf(c).Username)
	if err != nil {
		return err
	}
	detail(c, "cluster=%s job=%s", r.ClusterID, j.ID)
	return ok(c, toJobView(j))
}

func (a *API) deployClusterNode(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	var r deployNodeRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.NodeID.IsZero() {
		return invalid.Field("nodeId", "is required")
	}
	detail(c, "cluster=%s node=%s", r.ClusterID, r.NodeID)
	if !r.ClusterID.IsZero() && a.d.Clusters != nil {
		n, err := a.d.Clusters.Node(c.Request().Context(), r.NodeID)
		if err == nil && n.ClusterID != r.ClusterID {
			return invalid.Field("clusterId", "node %s belongs to cluster %s, not %s", r.NodeID, n.ClusterID, r.ClusterID)
		}
	}
	j, err := eng.DeployNode(c.Request().Context(), r.NodeID, userOf(c).Username)
	if err != nil {
		return err
	}
	detail(c, "node=%s job=%s", r.NodeID, j.ID)
	return ok(c, toJobView(j))
}

func (a *API) listJobs(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	cid, err := queryID(c, "clusterId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := eng.Jobs(c.Request().Context(), cid, p)
	if err != nil {
		return err
	}
	views := make([]jobView, len(list))
	for i, j := range list {
		views[i] = toJobView(j)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) jobDetail(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	j, steps, err := eng.Job(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return ok(c, toJobDetail(j, steps))
}

// jobEvents streams a job's progress as server-sent events: first "job"
// with the job and one "step" per step, then one event per change, until
// the job is done ("done" with the final job) or the client goes away. A
// manager shutting down ends the stream without "done": the job goes on
// (or is failed as interrupted) in the next run, which a client reaches by
// following the job again.
func (a *API) jobEvents(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	changed := eng.Changed()
	j, steps, err := eng.Job(ctx, id)
	if err != nil {
		return err
	}
	send := startEvents(c).send
	sentJob := toJobView(j)
	if err := send("job", sentJob); err != nil {
		return nil
	}
	sent := map[ids.ID]stepView{}
	for _, s := range steps {
		v := toStepView(s)
		sent[s.ID] = v
		if err := send("step", v); err != nil {
			return nil
		}
	}
	tick := time.NewTicker(jobEventInterval)
	defer tick.Stop()
	for !j.Done() {
		select {
		case <-ctx.Done():
			return nil
		case <-a.stopping:
			return nil
		case <-changed:
		case <-tick.C:
		}
		changed = eng.Changed()
		if j, steps, err = eng.Job(ctx, id); err != nil {
			if !errors.Is(err, deploy.ErrJobNotFound) && ctx.Err() == nil {
				a.d.Log.Warn("job events", "job", id, "err", err)
			}
			return nil
		}
		for _, s := range steps {
			v := toStepView(s)
			if old, seen := sent[s.ID]; seen && sameStep(old, v) {
				continue
			}
			sent[s.ID] = v
			if err := send("step", v); err != nil {
				return nil
			}
		}
		if v := toJobView(j); !sameJob(v, sentJob) && !j.Done() {
			sentJob = v
			if err := send("job", v); err != nil {
				return nil
			}
		}
	}
	_ = send("done", toJobView(j))
	return nil
}

// sameJob compares what changes in a job that is not done.
func sameJob(a, b jobView) bool {
	return a.State == b.State && a.Reason == b.Reason && time.Time(a.StartTime).Equal(time.Time(b.StartTime)) &&
		time.Time(a.FinishTime).Equal(time.Time(b.FinishTime))
}

func sameStep(a, b stepView) bool {
	return a.State == b.State && a.Detail == b.Detail && time.Time(a.StartTime).Equal(time.Time(b.StartTime)) &&
		time.Time(a.FinishTime).Equal(time.Time(b.FinishTime))
}

func (a *API) nodeCommand(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	var r cmdRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ID.IsZero() {
		return invalid.Field("id", "is required")
	}
	detail(c, "node=%s cmd=%q", r.ID, truncate(r.Cmd, 16))
	st, err := eng.Command(c.Request().Context(), r.ID, r.Cmd)
	if err != nil {
		return err
	}
	return ok(c, nodeStateView{NodeID: r.ID, RunStatus: deploy.RunState(st), Running: st.Running, Pid: st.PID,
		StartTime: apiTime(st.StartedAt), Restarts: st.Restarts, LastExit: st.LastExit, Desired: st.Desired})
}

func (a *API) nodeLog(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	max, err := intParam(c, "maxBytes", deploy.DefaultLogBytes, 1, deploy.MaxLogBytes)
	if err != nil {
		return err
	}
	b, err := eng.Logs(c.Request().Context(), id, max)
	if err != nil {
		return err
	}
	return ok(c, nodeLogView{Log: string(b)})
}

// liveRunStatus replaces each view's runStatus with what the agents report
// now, when a deploy engine is configured.
func (a *API) liveRunStatus(c echo.Context, nodes []cluster.Node, views []nodeView) {
	if a.d.Deploy == nil || len(nodes) == 0 {
		return
	}
	live := a.d.Deploy.LiveRunStates(c.Request().Context(), nodes)
	for i, n := range nodes {
		if s, ok := live[n.ID]; ok {
			views[i].RunStatus = s.Run
			views[i].Pid = s.Node.PID
			views[i].StartTime = apiTime(s.Node.StartedAt)
			views[i].Restarts = s.Node.Restarts
			views[i].LastExit = s.Node.LastExit
		}
	}
}

func toDeleteClusterView(u []cluster.Uncleaned) deleteClusterView {
	v := deleteClusterView{NotCleaned: []notCleanedView{}}
	for _, n := range u {
		v.NotCleaned = append(v.NotCleaned, notCleanedView{NodeID: n.NodeID, ManagerIP: n.ManagerIP, Reason: n.Reason, Queued: n.Queued, KeptDirs: n.Dirs})
	}
	return v
}
