package deploy_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/cluster/clustertest"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// deployed is newCluster deployed: every node's files applied.
func (f *fixture) deployed(t *testing.T) (cluster.Cluster, []cluster.Node) {
	t.Helper()
	c, nodes := f.newCluster(t, "c1")
	j, err := f.engine.DeployCluster(t.Context(), c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if j, steps := f.wait(t, j.ID); j.State != deploy.JobSucceeded {
		t.Fatalf("deploy %+v %+v", j, steps)
	}
	return c, nodes
}

// layerItem returns the cluster layer item key of the component's file.
func (f *fixture) layerItem(t *testing.T, c cluster.Cluster, component, file, key string) (config.File, config.Item) {
	t.Helper()
	files, _ := f.configs.Files(t.Context(), c.ID)
	for _, lf := range files {
		if lf.Component != component || lf.Name != file {
			continue
		}
		items, _ := f.configs.AllItems(t.Context(), lf.ID)
		for _, it := range items {
			if it.Key == key {
				return lf, it
			}
		}
	}
	t.Fatalf("no %s %s %s", component, file, key)
	return config.File{}, config.Item{}
}

func (f *fixture) setLayer(t *testing.T, c cluster.Cluster, key, value string) config.File {
	t.Helper()
	lf, it := f.layerItem(t, c, cluster.Coordinator, "zoo.cfg", key)
	if _, err := f.configs.UpdateItem(t.Context(), it.ID, config.Change{Value: &value}); err != nil {
		t.Fatal(err)
	}
	return lf
}

func coordinators(nodes []cluster.Node) []cluster.Node {
	var out []cluster.Node
	for _, n := range nodes {
		if n.Component == cluster.Coordinator {
			out = append(out, n)
		}
	}
	return out
}

// TestRolloutOneAtATimeLeaderLast: a change of the cluster layer goes to
// the coordinators one at a time, the leader last, each step with its
// release, pids, health and time; the release is applied and the nodes
// in sync.
func TestRolloutOneAtATimeLeaderLast(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.deployed(t)
	zk := coordinators(nodes)
	f.agents.set(func() { f.agents.leader = "10.0.0.1:2181"; f.agents.applies = nil })
	lf := f.setLayer(t, c, "tickTime", "3000")

	j, rel, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID, Title: "tick", By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Type != deploy.TypeRollout || rel.Number != 2 || rel.Kind != config.KindRollout {
		t.Fatalf("job %+v release %+v", j, rel)
	}
	j, steps := f.wait(t, j.ID)
	if j.State != deploy.JobSucceeded || len(steps) != 3 {
		t.Fatalf("job %+v steps %+v", j, steps)
	}
	var order []string
	for _, a := range f.agents.applied() {
		order = append(order, a.Name)
		if a.Restart != deploy.RestartIfChanged || !a.Restore || a.Health == nil || a.Health.TCPAddr == "" || len(a.ConfigFiles) != 1 ||
			!strings.Contains(string(a.ConfigFiles[0].Content), "tickTime=3000") || a.OperationID != deploy.ReleaseOp(rel.ID, ids.ID(mustParse(a.Name))) {
			t.Fatalf("apply %+v", a)
		}
	}
	if want := []string{zk[1].ID.String(), zk[2].ID.String(), zk[0].ID.String()}; !slices.Equal(order, want) {
		t.Fatalf("apply order %v, want the leader %s last: %v", order, zk[0].ID, want)
	}
	if f.agents.maxRunning != 1 {
		t.Fatalf("%d applies at once", f.agents.maxRunning)
	}
	for _, s := range steps {
		if s.Name != deploy.StepApply || s.State != deploy.StepSucceeded || s.ReleaseID != rel.ID || s.PIDBefore != 100 || s.PIDAfter != 200 ||
			s.Healthy == nil || !*s.Healthy || s.Duration == 0 || !strings.Contains(s.Detail, "pid 100 → 200") {
			t.Fatalf("step %+v", s)
		}
	}
	rel, rns, _ := f.configs.Release(ctx, rel.ID)
	if rel.State != config.ReleaseApplied || len(rns) != 3 {
		t.Fatalf("release %+v", rel)
	}
	sync, _ := f.configs.SyncStatus(ctx, []ids.ID{zk[0].ID, zk[1].ID, zk[2].ID})
	for id, s := range sync {
		if s != config.SyncInSync {
			t.Fatalf("node %s sync %d", id, s)
		}
	}
	// Nothing changed since: nothing to roll out.
	if _, _, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID}); !errors.Is(err, config.ErrNoChange) {
		t.Fatalf("second rollout: %v", err)
	}
	// A flush of one unchanged node: nothing done, no job.
	files, _ := f.configs.NodeFiles(ctx, zk[1].ID)
	res, err := f.engine.Flush(ctx, deploy.FlushRequest{NodeFileID: files[0].ID, NodeID: zk[1].ID, ClusterID: c.ID})
	if err != nil || res.Outcome != "unchanged" || !res.Job.ID.IsZero() {
		t.Fatalf("unchanged flush %+v %v", res, err)
	}
}

func mustParse(s string) int64 {
	id, _ := ids.Parse(s)
	return int64(id)
}

// TestRolloutStopsAtTheFirstFailure: the node that does not come back gets
// its previous file, the rollout stops, the rest are not touched; with a
// failure budget it goes on.
func TestRolloutStopsAtTheFirstFailure(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.deployed(t)
	zk := coordinators(nodes)
	f.agents.set(func() { f.agents.applies, f.agents.restarted = nil, nil; f.agents.sickApply[zk[0].ID.String()] = true })
	lf := f.setLayer(t, c, "tickTime", "abc")
	j, rel, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID})
	if err != nil {
		t.Fatal(err)
	}
	j, steps := f.wait(t, j.ID)
	if j.State != deploy.JobFailed || !strings.Contains(j.Reason, "coordinator-1") || !strings.Contains(j.Reason, "FATAL invalid tickTime") ||
		!strings.Contains(j.Reason, "failure budget 0") {
		t.Fatalf("job %+v", j)
	}
	if got := f.agents.restarted; len(got) != 1 || got[0] != zk[0].ID.String() {
		t.Fatalf("restarted %v: only the first node may be", got)
	}
	if s := stepOf(steps, zk[0].ID, deploy.StepApply); s.State != deploy.StepFailed || s.Healthy == nil || *s.Healthy ||
		!strings.Contains(s.Detail, "previous file was put back") {
		t.Fatalf("failed node's step %+v", s)
	}
	for _, n := range zk[1:] {
		if s := stepOf(steps, n.ID, deploy.StepApply); s.State != deploy.StepCancelled {
			t.Fatalf("untouched node's step %+v", s)
		}
	}
	rel, rns, _ := f.configs.Release(ctx, rel.ID)
	if rel.State != config.ReleaseFailed || rns[0].State != config.NodeRestored || rns[1].State != config.NodeCancelled || rel.Reason == "" {
		t.Fatalf("release %+v nodes %v %v", rel, rns[0].State, rns[1].State)
	}
	// The failed node has its previous file: in sync with nothing new,
	// differing from the draft like the others.
	sync, _ := f.configs.SyncStatus(ctx, []ids.ID{zk[0].ID, zk[1].ID})
	if sync[zk[0].ID] != config.SyncDiffers || sync[zk[1].ID] != config.SyncDiffers {
		t.Fatalf("sync %v", sync)
	}

	// A failure budget of 1: the other two are applied.
	j, _, err = f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID, FailureBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	j, steps = f.wait(t, j.ID)
	ok := 0
	for _, s := range steps {
		if s.State == deploy.StepSucceeded {
			ok++
		}
	}
	if j.State != deploy.JobFailed || ok != 2 {
		t.Fatalf("with a budget of 1: job %s, %d succeeded", j.State, ok)
	}
}

// TestRolloutRefusals: offline agents, held nodes and an ensemble that
// cannot spare a node are refused with nothing recorded.
func TestRolloutRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.deployed(t)
	zk := coordinators(nodes)
	lf := f.setLayer(t, c, "tickTime", "4000")
	releases := func() int {
		_, total, _ := f.configs.Releases(ctx, lf.ID, 0, paging.Page{Num: 1, Size: 10})
		return total
	}
	before := releases()

	f.agents.set(func() { f.agents.offline[zk[2].ServerID] = true })
	if _, _, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID}); !errors.Is(err, fleet.ErrAgentNotOnline) {
		t.Fatalf("offline: %v", err)
	}
	files, _ := f.configs.NodeFiles(ctx, zk[2].ID)
	if _, err := f.engine.Flush(ctx, deploy.FlushRequest{NodeFileID: files[0].ID, NodeID: zk[2].ID}); !errors.Is(err, fleet.ErrAgentNotOnline) {
		t.Fatalf("flush offline: %v", err)
	}
	if releases() != before {
		t.Fatal("a refused rollout recorded a release")
	}
	// Node 3 down: the ensemble cannot spare another.
	f.agents.set(func() { f.agents.offline[zk[2].ServerID] = false; f.agents.sick["10.0.0.3:2181"] = true })
	if _, _, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID, NodeIDs: []ids.ID{zk[0].ID}}); !errors.Is(err, deploy.ErrQuorum) {
		t.Fatalf("quorum: %v", err)
	}
	f.agents.set(func() { f.agents.sick["10.0.0.3:2181"] = false })
	if releases() != before {
		t.Fatal("a refused rollout recorded a release")
	}

	// A rollout holds its nodes: a second one, and a deploy, are refused.
	gate := make(chan struct{})
	f.agents.set(func() { f.agents.gate = gate })
	j, _, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID})
	if err != nil {
		t.Fatal(err)
	}
	restart := deploy.RolloutRequest{ClusterID: c.ID, NodeIDs: []ids.ID{zk[1].ID}}
	if _, _, err := f.engine.Rollout(ctx, restart); !errors.Is(err, deploy.ErrNodeHeld) || !strings.Contains(err.Error(), j.ID.String()) {
		t.Fatalf("second rollout: %v", err)
	}
	if _, err := f.engine.DeployNode(ctx, zk[1].ID, "carol"); !errors.Is(err, deploy.ErrNodeHeld) {
		t.Fatalf("deploy of a held node: %v", err)
	}
	close(gate)
	f.agents.set(func() { f.agents.gate = nil })
	if j, _ := f.wait(t, j.ID); j.State != deploy.JobSucceeded {
		t.Fatalf("held rollout %+v", j)
	}
	// Let go: a rolling restart now goes, every node restarted.
	j, rel, err := f.engine.Rollout(ctx, restart)
	if err != nil || !rel.ID.IsZero() || j.Type != deploy.TypeRestart {
		t.Fatalf("restart %+v %+v %v", j, rel, err)
	}
	if j, steps := f.wait(t, j.ID); j.State != deploy.JobSucceeded || steps[0].Name != deploy.StepRestart {
		t.Fatalf("restart %+v %+v", j, steps)
	}
}

// TestRolloutAllAtOnce: brokers keep no quorum: all at once asked, all at
// once done.
func TestRolloutAllAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.deployed(t)
	gate := make(chan struct{})
	f.agents.set(func() { f.agents.gate, f.agents.maxRunning = gate, 0 })
	j, _, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, Component: cluster.Broker, AllAtOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	brokers := len(nodes) - len(coordinators(nodes))
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.agents.mu.Lock()
		running := f.agents.running
		f.agents.mu.Unlock()
		if running == brokers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d brokers at once", running, brokers)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	if j, _ := f.wait(t, j.ID); j.State != deploy.JobSucceeded {
		t.Fatalf("job %+v", j)
	}
}

// TestRolloutManagerRestart: a manager stopped during an apply leaves the
// job failed and the node interrupted; when the agent reconnects, its
// record settles the node.
func TestRolloutManagerRestart(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.deployed(t)
	zk := coordinators(nodes)
	lf := f.setLayer(t, c, "tickTime", "5000")
	gen, _ := ids.NewGenerator(8)
	runCtx, stop := context.WithCancel(context.Background())
	eng := deploy.New(deploy.Deps{Store: f.db, Clusters: f.clusters, Configs: f.configs, Packages: f.pkgs, Agents: f.agents, IDs: gen,
		Now: f.clock.Now, Sleep: f.clock.Sleep, Log: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { eng.Run(runCtx); close(done) }()
	gate := make(chan struct{})
	f.agents.set(func() { f.agents.gate, f.agents.applies = gate, nil })
	j, rel, err := eng.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID})
	if err != nil {
		t.Fatal(err)
	}
	for len(f.agents.applied()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	first := f.agents.applied()[0].Name
	stop() // the manager stops while the agent applies
	<-done
	close(gate) // the agent finishes on its own and records it
	f.agents.set(func() { f.agents.gate = nil })

	next := deploy.New(deploy.Deps{Store: f.db, Clusters: f.clusters, Configs: f.configs, Packages: f.pkgs, Agents: f.agents, IDs: gen,
		Now: f.clock.Now, Sleep: f.clock.Sleep, Registerer: prometheus.NewRegistry()})
	if err := next.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	j, _, _ = next.Job(ctx, j.ID)
	if j.State != deploy.JobFailed || j.Reason != deploy.ReasonRestarted {
		t.Fatalf("job after the restart %+v", j)
	}
	rel, rns, _ := f.configs.Release(ctx, rel.ID)
	var firstNode config.ReleaseNode
	for _, rn := range rns {
		if rn.NodeID.String() == first {
			firstNode = rn
		} else if rn.State != config.NodeCancelled {
			t.Fatalf("a node not begun: %s", rn.State)
		}
	}
	if rel.State != config.ReleaseFailed || firstNode.State != config.NodeInterrupted {
		t.Fatalf("release %s, node %s", rel.State, firstNode.State)
	}
	if s, _ := f.configs.SyncStatus(ctx, []ids.ID{firstNode.NodeID}); s[firstNode.NodeID] != config.SyncUnknown {
		t.Fatalf("sync of the interrupted node: %v", s)
	}
	// Its agent reconnects: the recorded result settles it.
	runCtx2, stop2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { next.Run(runCtx2); close(done2) }()
	defer func() { stop2(); <-done2 }()
	var n cluster.Node
	for _, z := range zk {
		if z.ID == firstNode.NodeID {
			n = z
		}
	}
	next.AgentConnected(n.ServerID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, rns, _ := f.configs.Release(ctx, rel.ID)
		st := rns[slices.IndexFunc(rns, func(r config.ReleaseNode) bool { return r.NodeID == n.ID })]
		if st.State == config.NodeApplied {
			if !strings.Contains(st.Detail, "settled from the agent's record") {
				t.Fatalf("detail %q", st.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted node was not settled: %s", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s, _ := f.configs.SyncStatus(ctx, []ids.ID{n.ID}); s[n.ID] != config.SyncInSync {
		t.Fatalf("sync after it was settled: %v", s)
	}
}

// TestRollbackSkipsNodesAddedSince: a rollback without node ids goes to
// the nodes of the release rolled back to that are still in the cluster;
// one added since is left alone.
func TestRollbackSkipsNodesAddedSince(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, _ := f.deployed(t)
	lf := f.setLayer(t, c, "tickTime", "2500")
	j, rel, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID})
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := f.wait(t, j.ID); j.State != deploy.JobSucceeded {
		t.Fatalf("rollout %+v", j)
	}
	s := fleet.Server{ID: 9009, ManagerIP: "10.0.0.9"}
	if err := f.db.CreateServer(ctx, &s); err != nil {
		t.Fatal(err)
	}
	added, err := f.clusters.AddNodes(ctx, c.ID, cluster.Coordinator, f.zk.ID, clustertest.Specs("10.0.0.9"), "")
	if err != nil {
		t.Fatal(err)
	}
	list, _, _ := f.configs.Releases(ctx, lf.ID, 0, paging.Page{Num: 1, Size: 10})
	first := list[len(list)-1] // the deployment's, before the rollout's
	if first.Kind != config.KindDeploy || rel.Number != first.Number+1 {
		t.Fatalf("releases %+v", list)
	}
	j, back, err := f.engine.Rollout(ctx, deploy.RolloutRequest{ClusterID: c.ID, FileID: lf.ID, RollbackTo: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	j, steps := f.wait(t, j.ID)
	if j.State != deploy.JobSucceeded || j.Type != deploy.TypeRollback || back.RollbackOf != first.ID || len(steps) != 3 {
		t.Fatalf("rollback %+v %+v, %d steps", j, back, len(steps))
	}
	for _, st := range steps {
		if st.NodeID == added[0].ID {
			t.Fatalf("the node added since was rolled back: %+v", st)
		}
	}
}
