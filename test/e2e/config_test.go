package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/admq/admq-manager/test/testenv"
)

// zkClient is a ZooKeeper client on a LAN host that writes and reads a
// znode again and again, counting the operations that fail, until stopped.
type zkClient struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	done       chan struct{}
}

// startZKClient connects from host h to the ensemble of nodes.
func startZKClient(t *testing.T, h *host, nodes []testenv.Node) *zkClient {
	t.Helper()
	var servers []string
	for _, n := range nodes {
		servers = append(servers, net.JoinHostPort(n.ManagerIP, fmt.Sprint(n.ServerPort)))
	}
	dial := func(_, addr string, timeout time.Duration) (net.Conn, error) { return h.dialFrom(addr, timeout) }
	conn, _, err := zk.Connect(servers, 10*time.Second, zk.WithDialer(dial), zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	c := &zkClient{stop: make(chan struct{}), done: make(chan struct{})}
	const path = "/admq-rollout"
	testenv.Eventually(t, 30*time.Second, "the ZooKeeper client to create "+path, func() bool {
		_, err := conn.Create(path, []byte("0"), 0, zk.WorldACL(zk.PermAll))
		return err == nil || err == zk.ErrNodeExists
	})
	go func() {
		defer close(c.done)
		defer conn.Close()
		for i := 1; ; i++ {
			select {
			case <-c.stop:
				return
			default:
			}
			v := []byte(fmt.Sprint(i))
			_, err := conn.Set(path, v, -1)
			if err == nil {
				var got []byte
				if got, _, err = conn.Get(path); err == nil && string(got) != string(v) {
					err = fmt.Errorf("read %q after writing %q", got, v)
				}
			}
			if err != nil {
				c.failed.Add(1)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			c.ok.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return c
}

// quiet drops the ZooKeeper client's log: its reconnects are expected.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// Stop ends the client and returns its counts.
func (c *zkClient) Stop() (ok, failed int64) {
	close(c.stop)
	<-c.done
	return c.ok.Load(), c.failed.Load()
}

// zooCfg reads node n's zoo.cfg (the hosts share this machine's disk).
func zooCfg(t *testing.T, n testenv.Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.ProgramDir, "conf", "zoo.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byStart returns the job's apply steps in the order they began, those
// that never began last.
func byStart(job testenv.Job) []testenv.Step {
	var out []testenv.Step
	for _, n := range job.Nodes {
		out = append(out, n.Steps...)
	}
	slices.SortStableFunc(out, func(a, b testenv.Step) int {
		switch {
		case a.StartTime == "" && b.StartTime != "":
			return 1
		case b.StartTime == "" && a.StartTime != "":
			return -1
		}
		return strings.Compare(a.StartTime, b.StartTime)
	})
	return out
}

// configRollouts is the acceptance test of config rollouts on the running
// ZooKeeper ensemble: a harmless change rolled out one node at a time, the
// leader last, while a client on the LAN reads and writes; a value that
// stops ZooKeeper, stopped at the first node, which is restored; a
// rollback to the release before the change; a diff of two releases.
func configRollouts(t *testing.T, c *testenv.Client, hosts []*host, clusterID string, zkNodes []testenv.Node) {
	t.Helper()
	layer := c.LayerFile(t, clusterID, "coordinator", "zoo.cfg")
	modes := zkModes(t, hosts[0], zkNodes)
	var leader string
	for _, n := range zkNodes {
		if modes[n.ManagerIP] == "leader" {
			leader = n.ID
		}
	}

	// 1. maxClientCnxns in the cluster layer, rolled out.
	c.SetLayerValue(t, layer.ID, "maxClientCnxns", "100")
	client := startZKClient(t, hosts[1], zkNodes)
	samples := watchQuorum(hosts[0], zkNodes)
	began := time.Now()
	ro := c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": clusterID, "configFileId": layer.ID, "title": "maxClientCnxns 100"})
	job := c.WaitJob(t, ro.JobID, 5*time.Minute)
	took := time.Since(began)
	ok, failed := client.Stop()
	quorum := samples()
	if job.State != "succeeded" || len(ro.NodeIDs) != 3 {
		t.Fatalf("maxClientCnxns rollout:\n%s", job)
	}
	steps := byStart(job)
	if steps[2].NodeID != leader {
		t.Fatalf("the leader %s was not last: %+v", leader, steps)
	}
	for i, s := range steps {
		if s.State != "succeeded" || s.Healthy == nil || !*s.Healthy || s.PidAfter == s.PidBefore {
			t.Fatalf("step %+v", s)
		}
		if i > 0 && s.StartTime < steps[i-1].FinishTime {
			t.Fatalf("two nodes restarted at once: %+v and %+v", steps[i-1], s)
		}
		t.Logf("figure: ZooKeeper node %s flushed, restarted and healthy in %d ms (pid %d → %d)", s.NodeID, s.DurationMs, s.PidBefore, s.PidAfter)
	}
	for _, n := range zkNodes {
		if cfg := zooCfg(t, n); !strings.Contains(cfg, "\nmaxClientCnxns=100\n") {
			t.Fatalf("%s zoo.cfg lacks maxClientCnxns=100:\n%s", n.NodeDir, cfg)
		}
	}
	if quorum.lost > 0 {
		t.Fatalf("the ensemble lost its majority during the rollout: %s", quorum)
	}
	t.Logf("figure: rolling flush of zoo.cfg over the 3-node ensemble, one at a time, leader last: %v; "+
		"client operations during it: %d ok, %d failed; samples: %s", took.Round(time.Millisecond), ok, failed, quorum)
	for _, n := range c.Nodes(t, clusterID) {
		if n.Component == "coordinator" && (n.SyncNodeConfigStatus != 0 || n.Mode != 1) {
			t.Fatalf("%s after the rollout: sync %d mode %d", n.NodeDir, n.SyncNodeConfigStatus, n.Mode)
		}
	}

	// 2. A tickTime ZooKeeper cannot start with: the first node fails its
	// health gate, gets its previous file back and rejoins; the others are
	// not touched; the quorum holds.
	before := map[string]string{}
	for _, n := range zkNodes {
		before[n.ID] = zooCfg(t, n)
	}
	c.SetLayerValue(t, layer.ID, "tickTime", "abc")
	samples = watchQuorum(hosts[0], zkNodes)
	began = time.Now()
	ro = c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": clusterID, "configFileId": layer.ID, "title": "bad tickTime"})
	job = c.WaitJob(t, ro.JobID, 5*time.Minute)
	restoredIn := time.Since(began)
	quorum = samples()
	if job.State != "failed" || !strings.Contains(job.Reason, "last log lines") {
		t.Fatalf("bad tickTime rollout:\n%s", job)
	}
	steps = byStart(job)
	first := steps[0]
	if first.State != "failed" || !strings.Contains(first.Detail, "previous file was put back") || first.NodeID == leader {
		t.Fatalf("the first node's step %+v", first)
	}
	for _, s := range steps[1:] {
		if s.State != "cancelled" {
			t.Fatalf("a node after the failure was touched: %+v", s)
		}
	}
	for _, n := range zkNodes {
		if got := zooCfg(t, n); got != before[n.ID] {
			t.Fatalf("%s zoo.cfg changed:\n%s\nwas\n%s", n.NodeDir, got, before[n.ID])
		}
	}
	rel := c.Release(t, ro.ReleaseID)
	if rel.State != "failed" {
		t.Fatalf("release %+v", rel)
	}
	testenv.Eventually(t, 60*time.Second, "the restored node to serve in the ensemble", func() bool {
		m := zkModesNow(hosts[0], zkNodes)
		return count(m, "leader") == 1 && count(m, "follower") == 2
	})
	if quorum.lost > 0 {
		t.Fatalf("the quorum broke during the bad rollout (the leader was never touched): %s", quorum)
	}
	t.Logf("figure: a bad tickTime to the node restored and healthy again: %v (the node's step: %d ms); samples: %s",
		restoredIn.Round(time.Millisecond), first.DurationMs, quorum)

	// 3. Back to the release before maxClientCnxns (the deployment's):
	// the old file on every node, and the draft with it.
	var deployRel testenv.Release
	for _, r := range c.Releases(t, layer.ID) {
		if r.Kind == "deploy" {
			deployRel = r
		}
	}
	ro = c.Rollout(t, "/cluster/config/rollback", map[string]any{"configFileId": layer.ID, "releaseId": deployRel.ID})
	if job := c.WaitJob(t, ro.JobID, 5*time.Minute); job.State != "succeeded" {
		t.Fatalf("rollback:\n%s", job)
	}
	for _, n := range zkNodes {
		if cfg := zooCfg(t, n); strings.Contains(cfg, "maxClientCnxns") || !strings.Contains(cfg, "\ntickTime=2000\n") {
			t.Fatalf("%s zoo.cfg after the rollback:\n%s", n.NodeDir, cfg)
		}
	}
	if items := c.Items(t, "/cluster/config", layer.ID); items["tickTime"].ConfigValue != "2000" {
		t.Fatalf("the draft after the rollback: tickTime %q", items["tickTime"].ConfigValue)
	}
	var diff struct {
		Layer struct {
			Added []struct {
				ConfigKey string  `json:"configKey"`
				To        *string `json:"to"`
			} `json:"added"`
		} `json:"layer"`
		Nodes []struct {
			Lines string `json:"lines"`
		} `json:"nodes"`
	}
	var maxRel testenv.Release
	for _, r := range c.Releases(t, layer.ID) {
		if r.Number == deployRel.Number+1 {
			maxRel = r
		}
	}
	c.OK(t, http.MethodGet, "/cluster/config/release/diff?from="+deployRel.ID+"&to="+maxRel.ID, nil, &diff)
	if len(diff.Layer.Added) != 1 || diff.Layer.Added[0].ConfigKey != "maxClientCnxns" || len(diff.Nodes) != 3 ||
		!strings.Contains(diff.Nodes[0].Lines, "+maxClientCnxns=100") {
		t.Fatalf("diff of releases %d and %d: %+v", deployRel.Number, maxRel.Number, diff)
	}
	testenv.Eventually(t, 60*time.Second, "one leader and two followers after the rollback", func() bool {
		m := zkModesNow(hosts[0], zkNodes)
		return count(m, "leader") == 1 && count(m, "follower") == 2
	})
}
