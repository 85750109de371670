package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

func TestJobs(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "a1")
	s1 := mustServer(t, db, area.ID, "10.3.0.1", "")
	p := mustPackage(t, db, "admq-zookeeper", "3.8.4", "x86")
	c := cluster.Cluster{ID: nextID(), Name: "c1", CreatedAt: base, UpdatedAt: base}
	nn := newTestNode(c, s1, p, 1, "a")
	if err := db.CreateCluster(ctx, &c, []cluster.NewNode{nn}, nextID); err != nil {
		t.Fatal(err)
	}
	node := nn.Node.ID

	j := deploy.Job{ID: nextID(), Type: deploy.TypeDeployCluster, ClusterID: c.ID, State: deploy.JobPending, CreatedBy: "admin", CreatedAt: base}
	var steps []deploy.Step
	for _, name := range deploy.StepNames {
		steps = append(steps, deploy.Step{ID: nextID(), JobID: j.ID, NodeID: node, Name: name, State: deploy.StepPending})
	}
	if err := db.CreateJob(ctx, j, steps, []ids.ID{node}, base); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Node(ctx, node); n.DeployState != cluster.DeployDeploying {
		t.Fatalf("deploy state %q", n.DeployState)
	}
	// A second job on a deploying node writes nothing.
	j2 := deploy.Job{ID: nextID(), Type: deploy.TypeDeployNode, ClusterID: c.ID, NodeID: node, State: deploy.JobPending, CreatedAt: base}
	if err := db.CreateJob(ctx, j2, nil, []ids.ID{node}, base); !errors.Is(err, deploy.ErrNodeUnavailable) {
		t.Fatalf("second job: %v", err)
	}
	if _, err := db.Job(ctx, j2.ID); !errors.Is(err, deploy.ErrJobNotFound) {
		t.Fatalf("second job stored: %v", err)
	}

	j.State, j.StartedAt = deploy.JobRunning, base.Add(time.Second)
	if err := db.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	steps[0].State, steps[0].Detail, steps[0].StartedAt, steps[0].FinishedAt = deploy.StepSkipped, "present", base, base
	if err := db.UpdateStep(ctx, steps[0]); err != nil {
		t.Fatal(err)
	}
	steps[1].State, steps[1].StartedAt = deploy.StepRunning, base
	if err := db.UpdateStep(ctx, steps[1]); err != nil {
		t.Fatal(err)
	}
	got, err := db.Job(ctx, j.ID)
	if err != nil || got.State != deploy.JobRunning || !got.StartedAt.Equal(j.StartedAt) || got.CreatedBy != "admin" || !got.NodeID.IsZero() {
		t.Fatalf("job %+v %v", got, err)
	}
	list, total, err := db.Jobs(ctx, c.ID, paging.Page{Num: 1, Size: 10})
	if err != nil || total != 1 || len(list) != 1 || list[0].ID != j.ID {
		t.Fatalf("jobs %v %d %v", list, total, err)
	}
	if _, total, _ := db.Jobs(ctx, 0, paging.Page{Num: 1, Size: 10}); total != 1 {
		t.Fatalf("all jobs %d", total)
	}

	now := base.Add(time.Minute)
	failed, err := db.FailUnfinishedJobs(ctx, deploy.ReasonRestarted, now)
	if err != nil || len(failed) != 1 || failed[0].ID != j.ID {
		t.Fatalf("failed %v %v", failed, err)
	}
	got, _ = db.Job(ctx, j.ID)
	if got.State != deploy.JobFailed || got.Reason != deploy.ReasonRestarted || !got.FinishedAt.Equal(now) {
		t.Fatalf("after recover %+v", got)
	}
	st, err := db.JobSteps(ctx, j.ID)
	if err != nil || len(st) != len(deploy.StepNames) {
		t.Fatalf("steps %v %v", st, err)
	}
	// The running step failed, the steps not begun are cancelled.
	if st[0].State != deploy.StepSkipped || st[0].Detail != "present" ||
		st[1].State != deploy.StepFailed || st[1].Detail != deploy.ReasonRestarted || !st[1].FinishedAt.Equal(now) {
		t.Fatalf("steps %+v", st)
	}
	for _, s := range st[2:] {
		if s.State != deploy.StepCancelled || s.Detail != "not run: "+deploy.ReasonRestarted || !s.FinishedAt.Equal(now) {
			t.Fatalf("step %s not begun before the restart: %+v", s.Name, s)
		}
	}
	if n, _ := db.Node(ctx, node); n.DeployState != cluster.DeployFailed {
		t.Fatalf("deploy state after recover %q", n.DeployState)
	}

	if err := db.SetNodeStates(ctx, node, cluster.DeployDeployed, "", now); err != nil {
		t.Fatal(err)
	}
	if err := db.SetNodeStates(ctx, node, "", cluster.RunRunning, now); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Node(ctx, node); n.DeployState != cluster.DeployDeployed || n.RunState != cluster.RunRunning {
		t.Fatalf("states %q %q", n.DeployState, n.RunState)
	}
	if err := db.SetNodeStates(ctx, nextID(), "", cluster.RunRunning, now); !errors.Is(err, cluster.ErrNodeNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	// Jobs go with their cluster.
	if err := db.DeleteCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Job(ctx, j.ID); !errors.Is(err, deploy.ErrJobNotFound) {
		t.Fatalf("job after cluster delete: %v", err)
	}
}
