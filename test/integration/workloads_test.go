package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// These tests run real workloads (Debian's ZooKeeper and NATS) on three
// agents through the tunnel hub's node calls: the packages are built from
// the installed files, config files are rendered as the manager renders
// them (config.RenderFiles, {peers} from the component's peer template) and written to their targets (ZooKeeper's myid in the
// data dir), and each agent gets a
// loopback address of its own (127.0.83.x, 127.0.84.x: Linux answers the
// whole 127/8 without setup) so that every node uses the default ports.

// workloadCluster places one node of component per agent.
func workloadCluster(root, name, component string, ips []string, port int) config.Topology {
	return workloads.Cluster(name, component, filepath.Join(root, "nodes"), ips, port)
}

// healthCheck is the component's manifest health check for vars.
func healthCheck(t *testing.T, p *workloads.Package, component string, vars config.Vars) deploy.HealthCheck {
	t.Helper()
	h := p.Manifest.Components[component].Health
	hc := deploy.HealthCheck{Timeout: time.Duration(h.TimeoutSeconds) * time.Second}
	var err error
	switch {
	case h.Command != nil:
		hc.Command, err = workloads.Expand(h.Command, vars)
	case h.HTTP != "":
		var u []string
		u, err = workloads.Expand([]string{h.HTTP}, vars)
		hc.HTTPURL = u[0]
	default:
		var a []string
		a, err = workloads.Expand([]string{h.TCP}, vars)
		hc.TCPAddr = a[0]
	}
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

func TestWorkloadZooKeeperEnsemble(t *testing.T) {
	integrationTest(t)
	if why := workloads.HaveZooKeeper(); why != "" {
		t.Skip("ZooKeeper workload: " + why)
	}
	ctx := t.Context()
	root := t.TempDir()
	h := workloads.StartHub(t)
	built := time.Now()
	pkg, err := workloads.Load(workloads.ZooKeeperPackage(t, root))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: ZooKeeper package %s (%d bytes) built and checked in %v", filepath.Base(pkg.Path), pkg.Size, time.Since(built).Round(time.Millisecond))
	ips := []string{"127.0.83.1", "127.0.83.2", "127.0.83.3"}
	top := workloadCluster(root, "zk", workloads.ZooKeeperComponent, ips, 2181)
	nodes := top.Members
	agents := make([]*workloads.Agent, len(ips))
	for i, ip := range ips {
		agents[i] = h.StartAgent(t, filepath.Join(root, fmt.Sprintf("agent-%d", i+1)), ip)
	}
	addr := func(i int) string { return ips[i] + ":2181" }
	modes := func(idx ...int) map[string]int {
		m := map[string]int{}
		for _, i := range idx {
			mode, err := workloads.ZKMode(ctx, addr(i))
			if err != nil {
				mode = "down"
			}
			m[mode]++
		}
		return m
	}
	quorum := func(idx ...int) func() bool {
		return func() bool {
			m := modes(idx...)
			return m["leader"] == 1 && m["follower"] == len(idx)-1
		}
	}

	start := time.Now()
	zk := make([]*workloads.Node, len(ips))
	for i := range ips {
		var res deploy.DeployResult
		zk[i], res = h.Deploy(t, agents[i], pkg, workloads.ZooKeeperComponent, top, nodes[i])
		if !res.Unpacked || !res.State.Running || res.State.PID == 0 {
			t.Fatalf("deploy %s: %+v", nodes[i].NodeDir, res)
		}
	}
	testenv.Eventually(t, 90*time.Second, "one leader and two followers", quorum(0, 1, 2))
	t.Logf("timing: ZooKeeper ensemble from first DeployNode to one leader + two followers: %v", time.Since(start).Round(time.Millisecond))

	// The manifest's health check, run by each agent, passes.
	for i, n := range zk {
		ok, detail, err := h.CheckHealth(ctx, agents[i].ID, healthCheck(t, pkg, workloads.ZooKeeperComponent, n.Vars))
		if err != nil || !ok {
			t.Fatalf("health of %s: %v %q %v", n.Name, ok, detail, err)
		}
	}
	if out, err := workloads.FourLetter(ctx, addr(0), "ruok"); err != nil || out != "imok" {
		t.Fatalf("ruok: %q %v", out, err)
	}

	// A znode written through one node is read through another.
	if out, err := workloads.ZKCli(ctx, addr(0), "create", "/admq", "hello-from-zk1"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "Created /admq") {
		t.Fatalf("create /admq: %s", out)
	}
	if out, err := workloads.ZKCli(ctx, addr(2), "get", "/admq"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "hello-from-zk1") {
		t.Fatalf("get /admq on zk3: %s", out)
	}

	// Stopping a follower leaves a quorum; starting it again, it rejoins.
	f := -1
	for i := range ips {
		if m, _ := workloads.ZKMode(ctx, addr(i)); m == "follower" {
			f = i
			break
		}
	}
	if f < 0 {
		t.Fatal("no follower")
	}
	others := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == f })
	cmdStart := time.Now()
	if st := zk[f].Command(t, deploy.NodeStop); st.Running || st.Desired != "stopped" {
		t.Fatalf("stop %s: %+v", zk[f].Name, st)
	}
	t.Logf("timing: STOP of follower %s returned after %v", zk[f].Name, time.Since(cmdStart).Round(time.Millisecond))
	if m, err := workloads.ZKMode(ctx, addr(f)); err == nil {
		t.Fatalf("stopped %s still answers srvr: %s", zk[f].Name, m)
	}
	testenv.Eventually(t, 30*time.Second, "the other two to keep a leader and a follower", quorum(others...))
	if out, err := workloads.ZKCli(ctx, addr(others[0]), "set", "/admq", "written-without-"+zk[f].Name); err != nil {
		t.Fatalf("write with one node down: %v\n%s", err, out)
	}
	cmdStart = time.Now()
	if st := zk[f].Command(t, deploy.NodeStart); !st.Running {
		t.Fatalf("start %s: %+v", zk[f].Name, st)
	}
	testenv.Eventually(t, 60*time.Second, zk[f].Name+" to rejoin as follower", func() bool {
		m, _ := workloads.ZKMode(ctx, addr(f))
		return m == "follower"
	})
	t.Logf("timing: START of %s to follower again: %v", zk[f].Name, time.Since(cmdStart).Round(time.Millisecond))
	testenv.Eventually(t, 30*time.Second, "one leader and two followers after the restart", quorum(0, 1, 2))
	if out, err := workloads.ZKCli(ctx, addr(f), "get", "/admq"); err != nil || !strings.Contains(out, "written-without-"+zk[f].Name) {
		t.Fatalf("rejoined %s does not have the write made while it was down: %v\n%s", zk[f].Name, err, out)
	}

	// The agents restart: ZooKeeper keeps running and is adopted, same PIDs.
	pids := make([]int, len(zk))
	for i, n := range zk {
		pids[i] = n.State(t).PID
	}
	cmdStart = time.Now()
	for _, a := range agents {
		a.Restart(t)
	}
	t.Logf("timing: three agents restarted and reconnected in %v", time.Since(cmdStart).Round(time.Millisecond))
	for i, n := range zk {
		st := n.State(t)
		if !st.Running || st.PID != pids[i] || !st.Adopted {
			t.Fatalf("%s after the agent restart: %+v, want pid %d adopted", n.Name, st, pids[i])
		}
	}
	if !quorum(0, 1, 2)() {
		t.Fatalf("ensemble disturbed by the agent restarts: %v", modes(0, 1, 2))
	}
}

func TestWorkloadNATSCluster(t *testing.T) {
	integrationTest(t)
	if why := workloads.HaveNATS(); why != "" {
		t.Skip("NATS workload: " + why)
	}
	ctx := t.Context()
	root := t.TempDir()
	h := workloads.StartHub(t)
	built := time.Now()
	pkg, err := workloads.Load(workloads.NATSPackage(t, root))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: NATS package %s (%d bytes) built and checked in %v", filepath.Base(pkg.Path), pkg.Size, time.Since(built).Round(time.Millisecond))
	ips := []string{"127.0.84.1", "127.0.84.2", "127.0.84.3"}
	top := workloadCluster(root, "nats", workloads.NATSComponent, ips, 4222)
	nodes := top.Members
	start := time.Now()
	brokers := make([]*workloads.Node, len(ips))
	for i, ip := range ips {
		a := h.StartAgent(t, filepath.Join(root, fmt.Sprintf("agent-%d", i+1)), ip)
		var res deploy.DeployResult
		brokers[i], res = h.Deploy(t, a, pkg, workloads.NATSComponent, top, nodes[i])
		if !res.State.Running {
			t.Fatalf("deploy %s: %+v", nodes[i].NodeDir, res)
		}
	}
	testenv.Eventually(t, 60*time.Second, "every broker to route to the other two", func() bool {
		for _, ip := range ips {
			if n, err := workloads.NATSNumRoutes(ctx, ip); err != nil || n != len(ips)-1 {
				return false
			}
		}
		return true
	})
	t.Logf("timing: NATS cluster from first DeployNode to num_routes=2 on every broker: %v", time.Since(start).Round(time.Millisecond))
	for i, b := range brokers {
		ok, detail, err := h.CheckHealth(ctx, b.Agent.ID, healthCheck(t, pkg, workloads.NATSComponent, b.Vars))
		if err != nil || !ok {
			t.Fatalf("health of broker %d: %v %q %v", i+1, ok, detail, err)
		}
	}

	// Published on broker 3, received on broker 1.
	sub, err := workloads.DialNATS(ips[0] + ":4222")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Sub("admq.test", "1"); err != nil {
		t.Fatal(err)
	}
	pub, err := workloads.DialNATS(ips[2] + ":4222")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	start = time.Now()
	var got string
	for attempt := 0; got == "" && time.Since(start) < 20*time.Second; attempt++ {
		// The subscription reaches the other brokers asynchronously:
		// publish again until one arrives.
		if err := pub.Pub("admq.test", fmt.Sprintf("hello %d", attempt)); err != nil {
			t.Fatal(err)
		}
		if subj, payload, err := sub.Next(500 * time.Millisecond); err == nil && subj == "admq.test" {
			got = payload
		}
	}
	if !strings.HasPrefix(got, "hello ") {
		t.Fatal("no message from broker 3 reached a subscriber on broker 1")
	}
	t.Logf("timing: first message across the cluster after %v (%q)", time.Since(start).Round(time.Millisecond), got)
}
