package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// TestKillManagerMidRollingFlush kills the manager with SIGKILL during a
// rolling flush of a config file over three nodes on three hosts, one node
// at a time, once the first node is done and its agent is applying the
// second (the new file written, the node restarting: it ignores SIGTERM,
// so that takes the 10 s stop grace). After the restart the database is
// intact, the job is failed saying why, the release's nodes all end
// settled (the second from its agent's record: the agent finished the
// apply without the manager), each file is wholly the old or the new
// version, the third node was not touched, no node was restarted twice,
// and flushing again completes the rollout.
func TestKillManagerMidRollingFlush(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	agents := []*agent{e.startAgent(t), e.startAgent(t), e.startAgent(t)}
	root := t.TempDir()
	var place []testenv.ClusterNode
	for _, a := range agents {
		place = append(place, a.place(root, 7100))
	}
	const name = "app.properties"
	p := e.c.UploadPackage(t, nodePackage(t, "1.0", true, map[string]string{name: "version=1\n"}))
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-flush", PackageID: p.ID, BrokerList: place})
	if job := e.c.WaitJob(t, e.c.DeployCluster(t, cl.ID), 3*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy:\n%s", job)
	}
	nodes := e.c.Nodes(t, cl.ID)
	file := func(n testenv.Node) string {
		b, err := os.ReadFile(filepath.Join(n.ProgramDir, "conf", name))
		must(t, err)
		return string(b)
	}
	oldText := file(nodes[0])

	layer := e.c.LayerFile(t, cl.ID, "broker", name)
	e.c.SetLayerValue(t, layer.ID, "version", "2")
	ro := e.c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": cl.ID, "configFileId": layer.ID})
	if ro.Outcome != "started" || len(ro.NodeIDs) != 3 {
		t.Fatalf("rolling flush: %+v", ro)
	}
	byID := map[string]testenv.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	// The first node done, the second's new file written: kill.
	var second testenv.Node
	testenv.Eventually(t, 2*time.Minute, "the rollout to be applying its second node", func() bool {
		rel := e.c.Release(t, ro.ReleaseID)
		applied, applying := 0, ""
		for _, rn := range rel.Nodes {
			switch rn.State {
			case "applied":
				applied++
			case "applying":
				applying = rn.NodeID
			}
		}
		if applied == 1 && applying != "" && strings.Contains(file(byID[applying]), "version=2") {
			second = byID[applying]
			return true
		}
		return false
	})
	e.m.Kill()
	t.Logf("manager killed (SIGKILL) while the agent applied node %s", second.NodeDir)
	integrityCheck(t, e.m.DBPath())
	e.m.Start()
	c := e.m.Client(t, testenv.WithTimeout(2*time.Minute))
	job := c.WaitJob(t, ro.JobID, time.Minute)
	t.Logf("the rollout's job after the restart:\n%s", job)
	if job.State != "failed" || !strings.Contains(job.Reason, "manager restarted") {
		t.Fatalf("job across the crash: %s %q; want failed, saying the manager restarted", job.State, job.Reason)
	}
	var rel testenv.Release
	testenv.Eventually(t, 90*time.Second, "every node of the release to be settled", func() bool {
		rel = c.Release(t, ro.ReleaseID)
		for _, rn := range rel.Nodes {
			if rn.State == "pending" || rn.State == "applying" || rn.State == "interrupted" {
				return false
			}
		}
		return true
	})
	applied := 0
	for _, rn := range rel.Nodes {
		n := byID[rn.NodeID]
		got := file(n)
		t.Logf("node %s: %s %s", n.NodeDir, rn.State, rn.Detail)
		switch rn.State {
		case "applied":
			applied++
			if got != rn.Content {
				t.Errorf("node %s applied, but its file is not the release's:\n%s", n.NodeDir, got)
			}
			if s := starts(t, n.DataDir); len(s) != 2 {
				t.Errorf("node %s applied with %d starts (%v); want the deploy's and one restart", n.NodeDir, len(s), s)
			}
		case "cancelled":
			if got != oldText {
				t.Errorf("node %s not reached, but its file changed:\n%s", n.NodeDir, got)
			}
			if s := starts(t, n.DataDir); len(s) != 1 {
				t.Errorf("node %s not reached, but started %d times", n.NodeDir, len(s))
			}
		default:
			t.Errorf("node %s ended %s: %s", n.NodeDir, rn.State, rn.Detail)
		}
	}
	if applied != 2 {
		t.Errorf("%d nodes applied; want the first and the one being applied when the manager died", applied)
	}
	for _, j := range jobs(t, c) {
		if j.State == "running" || j.State == "pending" {
			t.Errorf("job %s still %s after the restart", j.ID, j.State)
		}
	}

	// Flushing again finishes the rollout: only the node not reached
	// changes and restarts.
	again := c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": cl.ID, "configFileId": layer.ID})
	if j := c.WaitJob(t, again.JobID, 2*time.Minute); j.State != "succeeded" {
		t.Fatalf("flush after the crash:\n%s", j)
	}
	for _, n := range c.Nodes(t, cl.ID) {
		if got := file(n); !strings.Contains(got, "version=2") {
			t.Errorf("node %s after the second flush:\n%s", n.NodeDir, got)
		}
		if s := starts(t, n.DataDir); len(s) != 2 || n.RunStatus != "running" || n.SyncNodeConfigStatus != 0 {
			t.Errorf("node %s: %d starts (%v), run %s, sync %d; want one restart in all, running, in sync", n.NodeDir, len(s), s, n.RunStatus, n.SyncNodeConfigStatus)
		}
	}
}
