package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestClusterOnFirewalledHosts is the acceptance test of clusters: three
// hosts whose firewall drops every inbound connection except from each
// other (ZooKeeper's quorum ports and NATS's routes are host to host), the
// manager outside them, each host running admq-agent, which connects out.
// Everything after the agents start goes through the console API only:
// a ZooKeeper ensemble and a NATS cluster are deployed, controlled, and
// removed, and checked from inside the hosts the way a client there would.
func TestClusterOnFirewalledHosts(t *testing.T) {
	needHosts(t)
	for _, why := range []string{workloads.HaveZooKeeper(), workloads.HaveNATS()} {
		if why != "" {
			t.Skip(why)
		}
	}
	tm := startManager(t)
	c := tm.Client(t, testenv.WithTimeout(2*time.Minute))
	_, tunnelPort, err := net.SplitHostPort(tm.TunnelAddr())
	if err != nil {
		t.Fatal(err)
	}

	hosts := newLAN(t, 3)
	tok := c.CreateToken(t, len(hosts), 3600)
	agents := make([]*nsAgent, len(hosts))
	for i, h := range hosts {
		agents[i] = startNSAgent(t, h, tunnelPort, tok.Token)
	}
	for i, h := range hosts {
		testenv.Eventually(t, 30*time.Second, "agent on "+h.NS+" to enroll", func() bool {
			_, err := os.Stat(filepath.Join(agents[i].stateDir, "agent.id"))
			return err == nil
		})
		c.WaitStatus(t, agents[i].serverID(t), "online", 30*time.Second)
		if s := c.MustServer(t, agents[i].serverID(t)); s.ManagerIP != h.IP {
			t.Fatalf("server of %s has managerIp %s, want %s", h.NS, s.ManagerIP, h.IP)
		}
	}

	root := t.TempDir()
	place := func(port int) []testenv.ClusterNode {
		var out []testenv.ClusterNode
		for _, h := range hosts {
			out = append(out, testenv.ClusterNode{ManagerIP: h.IP, ServerPort: port,
				ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"})
		}
		return out
	}

	// ZooKeeper: upload, create, deploy in one call.
	began := time.Now()
	zkPkg := c.UploadPackage(t, workloads.ZooKeeperPackage(t, t.TempDir()))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "e2e", PackageID: zkPkg.ID, ZkList: place(2181)})
	deployed := time.Now()
	job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 4*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("ZooKeeper deploy:\n%s", job)
	}
	t.Logf("figure: 3-node ZooKeeper ensemble healthy %v after the upload began (deploy job %v)",
		time.Since(began).Round(time.Millisecond), time.Since(deployed).Round(time.Millisecond))

	zk := nodesOf(t, c, cl.ID, "coordinator")
	if len(zk) != 3 {
		t.Fatalf("coordinators: %+v", zk)
	}
	zkHost := func(n testenv.Node) *host { return hostByIP(t, hosts, n.ManagerIP) }
	for _, n := range zk {
		if n.DeployStatus != "deployed" || n.RunStatus != "running" || n.Pid == 0 {
			t.Fatalf("node %s after deploy: deploy %s run %s pid %d", n.NodeDir, n.DeployStatus, n.RunStatus, n.Pid)
		}
	}
	modes := zkModes(t, hosts[0], zk)
	if count(modes, "leader") != 1 || count(modes, "follower") != 2 {
		t.Fatalf("ensemble modes %v: want one leader and two followers", modes)
	}
	t.Logf("ensemble: %v", modes)

	// The manager's side reaches no host: only the agents' outbound
	// connections carry the work.
	for _, h := range hosts {
		if h.reachable(2181, time.Second) {
			t.Fatalf("%s:2181 accepts connections from the manager's side: the firewall is not in place", h.IP)
		}
	}

	zkCli(t, hosts[0], hosts[0].IP+":2181", "create", "/admq-e2e", "written-on-"+hosts[0].NS)
	if out := zkCli(t, hosts[2], hosts[2].IP+":2181", "get", "/admq-e2e"); !strings.Contains(out, "written-on-"+hosts[0].NS) {
		t.Fatalf("znode written on %s not read on %s:\n%s", hosts[0].NS, hosts[2].NS, out)
	}

	// NATS: three brokers added to the cluster, routed to each other, and
	// the whole cluster deployed again in one call, which leaves the
	// running coordinators alone.
	// Config of the running ensemble, changed as an operator would.
	configRollouts(t, c, hosts, cl.ID, zk)
	zk = nodesOf(t, c, cl.ID, "coordinator")
	modes = zkModes(t, hosts[0], zk) // the leader restarted last: another leads

	zkPIDs := pids(zk)
	natsPkg := c.UploadPackage(t, workloads.NATSPackage(t, t.TempDir()))
	c.AddNodes(t, cl.ID, "broker", natsPkg.ID, place(4222))
	job = c.WaitJob(t, c.DeployCluster(t, cl.ID), 4*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("cluster deploy with brokers:\n%s", job)
	}
	if got := pids(nodesOf(t, c, cl.ID, "coordinator")); !maps.Equal(got, zkPIDs) {
		t.Fatalf("redeploying the cluster restarted coordinators: pids %v, were %v", got, zkPIDs)
	}
	natsPubSub(t, hosts[0], hosts[2])
	transferFigures(t, c, hosts[1], root)

	// Stop the leader: the other two keep a quorum and elect a new one.
	var leader testenv.Node
	for _, n := range zk {
		if modes[n.ManagerIP] == "leader" {
			leader = n
		}
	}
	if st := c.Cmd(t, leader.ID, "stop"); st.Running || st.RunStatus != "stopped" {
		t.Fatalf("stop answered %+v", st)
	}
	if n := c.Node(t, cl.ID, leader.ID); n.RunStatus != "stopped" || n.Pid != 0 {
		t.Fatalf("stopped node listed as run %s pid %d", n.RunStatus, n.Pid)
	}
	var rest []testenv.Node
	for _, n := range zk {
		if n.ID != leader.ID {
			rest = append(rest, n)
		}
	}
	testenv.Eventually(t, 60*time.Second, "the two remaining coordinators to elect a leader", func() bool {
		m := zkModesNow(hosts[0], rest)
		return count(m, "leader") == 1 && count(m, "follower") == 1
	})
	survivor := zkHost(rest[0])
	zkCli(t, survivor, survivor.IP+":2181", "set", "/admq-e2e", "written-without-"+zkHost(leader).NS)

	began = time.Now()
	if st := c.Cmd(t, leader.ID, "start"); !st.Running || st.Pid == 0 {
		t.Fatalf("start answered %+v", st)
	}
	answered := time.Since(began)
	testenv.Eventually(t, 60*time.Second, "the restarted coordinator to rejoin", func() bool {
		m := zkModesNow(hosts[0], zk)
		return count(m, "leader") == 1 && count(m, "follower") == 2
	})
	t.Logf("figure: start of a stopped coordinator answered in %v, serving in the ensemble after %v",
		answered.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	back := zkHost(leader)
	if out := zkCli(t, back, back.IP+":2181", "get", "/admq-e2e"); !strings.Contains(out, "written-without-"+back.NS) {
		t.Fatalf("the rejoined coordinator does not see the write made while it was down:\n%s", out)
	}

	// A restart command on a follower: a new process, back in the ensemble.
	follower := rest[0]
	if modes := zkModesNow(hosts[0], zk); modes[follower.ManagerIP] != "follower" {
		follower = rest[1]
	}
	before := c.Node(t, cl.ID, follower.ID).Pid
	began = time.Now()
	st := c.Cmd(t, follower.ID, "restart")
	answered = time.Since(began)
	if !st.Running || st.Pid == 0 || st.Pid == before {
		t.Fatalf("restart answered %+v (pid before %d)", st, before)
	}
	testenv.Eventually(t, 60*time.Second, "the restarted follower to serve", func() bool {
		m := zkModesNow(hosts[0], zk)
		return count(m, "leader") == 1 && count(m, "follower") == 2
	})
	t.Logf("figure: restart command answered in %v (pid %d → %d), node serving again after %v",
		answered.Round(time.Millisecond), before, st.Pid, time.Since(began).Round(time.Millisecond))

	// Agents die and come back: the nodes they supervise keep running,
	// with the same PIDs, and are adopted.
	all := nodesOf(t, c, cl.ID, "")
	beforeKill := pids(all)
	for _, a := range agents {
		a.kill()
	}
	for _, a := range agents {
		c.WaitStatus(t, a.serverID(t), "offline", 30*time.Second)
	}
	for id, pid := range beforeKill {
		if !alive(pid) {
			t.Fatalf("node %s (pid %d) died with its agent", id, pid)
		}
	}
	for _, a := range agents {
		a.restart(t)
	}
	for _, a := range agents {
		c.WaitStatus(t, a.serverID(t), "online", 60*time.Second)
	}
	after := pids(nodesOf(t, c, cl.ID, ""))
	if !maps.Equal(after, beforeKill) {
		t.Fatalf("after the agents restarted, node pids %v, were %v", after, beforeKill)
	}
	if m := zkModesNow(hosts[0], zk); count(m, "leader") != 1 || count(m, "follower") != 2 {
		t.Fatalf("ensemble after agent restarts: %v", m)
	}

	// Delete: every node stopped, its dirs gone.
	all = nodesOf(t, c, cl.ID, "")
	if d := c.DeleteCluster(t, cl.ID); len(d.NotCleaned) != 0 {
		t.Fatalf("delete left nodes not cleaned: %+v", d.NotCleaned)
	}
	for _, n := range all {
		if alive(n.Pid) {
			t.Errorf("node %s on %s: pid %d still runs after the cluster was deleted", n.NodeDir, n.ManagerIP, n.Pid)
		}
		for _, d := range []string{n.ProgramDir, n.DataDir} {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("node %s on %s: %s still exists (%v)", n.NodeDir, n.ManagerIP, d, err)
			}
		}
	}
	if _, list := clustersNamed(t, c, "e2e"); list != 0 {
		t.Errorf("the deleted cluster is still listed")
	}
	if h := hosts[0]; h.reachable(2181, 500*time.Millisecond) {
		t.Errorf("something still serves %s:2181", h.IP)
	}
}

// nodesOf lists the cluster's nodes of a component ("" for all).
func nodesOf(t testing.TB, c *testenv.Client, clusterID, component string) []testenv.Node {
	t.Helper()
	var out []testenv.Node
	for _, n := range c.Nodes(t, clusterID) {
		if component == "" || n.Component == component {
			out = append(out, n)
		}
	}
	return out
}

func clustersNamed(t testing.TB, c *testenv.Client, name string) (testenv.Cluster, int) {
	t.Helper()
	var page struct {
		List []testenv.Cluster `json:"list"`
	}
	c.OK(t, "GET", "/admq/cluster?pageSize=500", nil, &page)
	n := 0
	var found testenv.Cluster
	for _, cl := range page.List {
		if cl.Name == name {
			found = cl
			n++
		}
	}
	return found, n
}

func hostByIP(t testing.TB, hosts []*host, ip string) *host {
	t.Helper()
	for _, h := range hosts {
		if h.IP == ip {
			return h
		}
	}
	t.Fatalf("no host has %s", ip)
	return nil
}

func pids(nodes []testenv.Node) map[string]int {
	m := map[string]int{}
	for _, n := range nodes {
		m[n.ID] = n.Pid
	}
	return m
}

func count(m map[string]string, v string) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for its reaper has).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return syscall.Kill(pid, 0) == nil
}

// zkModes asks every coordinator for its mode from host from (a client on
// the LAN) until all answer, and returns them by IP.
func zkModes(t testing.TB, from *host, nodes []testenv.Node) map[string]string {
	t.Helper()
	var m map[string]string
	testenv.Eventually(t, 60*time.Second, "every coordinator to report its mode", func() bool {
		m = zkModesNow(from, nodes)
		return len(m) == len(nodes)
	})
	return m
}

// zkModesNow asks each coordinator for its mode once; those that do not
// answer are left out.
func zkModesNow(from *host, nodes []testenv.Node) map[string]string {
	m := map[string]string{}
	for _, n := range nodes {
		c, err := from.dialFrom(net.JoinHostPort(n.ManagerIP, strconv.Itoa(n.ServerPort)), 2*time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "srvr")
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if mode, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
				m[n.ManagerIP] = strings.TrimSpace(mode)
			}
		}
		c.Close()
	}
	return m
}

// zkCli runs Debian's zkCli.sh on host h against server.
func zkCli(t testing.TB, h *host, server string, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := h.enter(workloads.ZooKeeperCli, append([]string{"-server", server}, cmd...)...)
	x := exec.CommandContext(ctx, "nsenter", args...)
	x.Env = append(testenv.CleanEnv(), "ZOO_LOG_DIR="+t.TempDir(), "JVMFLAGS=-Xmx64m")
	out, err := x.CombinedOutput()
	if err != nil {
		t.Fatalf("zkCli.sh on %s: %s: %v\n%s", h.NS, strings.Join(cmd, " "), err, out)
	}
	return string(out)
}

// natsPubSub proves that the brokers route: a subscriber on one host's
// broker gets a message published on another host's broker.
func natsPubSub(t testing.TB, subHost, pubHost *host) {
	t.Helper()
	dial := func(h *host) *workloads.NATSConn {
		var nc *workloads.NATSConn
		if err := h.inNS(func() error {
			var err error
			nc, err = workloads.DialNATS(net.JoinHostPort(h.IP, "4222"))
			return err
		}); err != nil {
			t.Fatalf("connect to the broker on %s: %v", h.NS, err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	sub, pub := dial(subHost), dial(pubHost)
	if err := sub.Sub("admq.e2e", "1"); err != nil {
		t.Fatal(err)
	}
	want := "from " + pubHost.NS
	var got string
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("a message published on %s to reach %s", pubHost.NS, subHost.NS), func() bool {
		if err := pub.Pub("admq.e2e", want); err != nil {
			t.Fatalf("publish: %v", err)
		}
		_, payload, err := sub.Next(time.Second)
		if err != nil {
			return false
		}
		got = payload
		return true
	})
	if got != want {
		t.Fatalf("subscriber on %s got %q, want %q", subHost.NS, got, want)
	}
}

// transferFigures deploys a package of 64 MiB of incompressible bytes to
// one host through the tunnel, copies as many bytes over a plain TCP
// connection that host opens to the manager's side (the tunnel's
// direction), and logs both rates. The package's cluster is deleted after.
func transferFigures(t *testing.T, c *testenv.Client, h *host, root string) {
	t.Helper()
	const size = 64 << 20
	m := manifest.Manifest{ManifestVersion: 1, Name: "admq-bulk", Version: "1.0", MqType: 3,
		Components: map[string]manifest.Component{"broker": {
			Start: []string{"/bin/sleep", "3600"}, ServerPort: 7999,
			Health: manifest.Health{Command: []string{"/bin/true"}},
		}}}
	p := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-bulk-V1.0-x86.tar", m, workloads.Entry{Name: "blob", Random: size}))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "e2e-bulk", PackageID: p.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: h.IP, ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}}})
	job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("bulk deploy:\n%s", job)
	}
	n := nodesOf(t, c, cl.ID, "")[0]
	transfer := job.Step(n.ID, "transfer").Detail

	ln, err := net.Listen("tcp", net.JoinHostPort(lanManagerIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1<<20)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	began := time.Now()
	conn, err := h.dialFrom(ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, conn)
	conn.Close()
	if err != nil || got != size {
		t.Fatalf("plain copy: %d bytes, %v", got, err)
	}
	secs := time.Since(began).Seconds()
	t.Logf("figure: 64 MiB to %s over the LAN: tunnel transfer step %q; plain TCP copy %.1f MB/s", h.NS, transfer, size/1e6/secs)
	if d := c.DeleteCluster(t, cl.ID); len(d.NotCleaned) != 0 {
		t.Fatalf("delete bulk cluster: %+v", d.NotCleaned)
	}
}
