package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestApolloRolloutOnFirewalledHosts changes a ZooKeeper ensemble's
// configuration through the Apollo-compatible Open API only, as an
// ApolloOpenApiClient would: maxClientCnxns on the default cluster,
// published (a rolling flush that keeps the quorum), read back as the
// latest release, rolled back; every node's zoo.cfg follows. Then a bad
// value: the rollout stops at the first node, which gets its previous file
// back and rejoins, and the release is marked failed in the history. The
// cluster itself is set up through the console API.
func TestApolloRolloutOnFirewalledHosts(t *testing.T) {
	needHosts(t)
	if why := workloads.HaveZooKeeper(); why != "" {
		t.Skip(why)
	}
	tm := startManager(t)
	c := tm.Client(t, testenv.WithTimeout(2*time.Minute))
	_, tunnelPort, err := net.SplitHostPort(tm.TunnelAddr())
	if err != nil {
		t.Fatal(err)
	}
	hosts := newLAN(t, 3)
	tok := c.CreateToken(t, len(hosts), 3600)
	for _, h := range hosts {
		a := startNSAgent(t, h, tunnelPort, tok.Token)
		testenv.Eventually(t, 30*time.Second, "agent on "+h.NS+" to enroll", func() bool {
			_, err := os.Stat(filepath.Join(a.stateDir, "agent.id"))
			return err == nil
		})
		c.WaitStatus(t, a.serverID(t), "online", 30*time.Second)
	}
	root := t.TempDir()
	var zkList []testenv.ClusterNode
	for _, h := range hosts {
		zkList = append(zkList, testenv.ClusterNode{ManagerIP: h.IP, ServerPort: 2181,
			ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"})
	}
	pkg := c.UploadPackage(t, workloads.ZooKeeperPackage(t, t.TempDir()))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "zk", PackageID: pkg.ID, ZkList: zkList})
	if job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 4*time.Minute); job.State != "succeeded" {
		t.Fatalf("ZooKeeper deploy:\n%s", job)
	}
	zk := nodesOf(t, c, cl.ID, "coordinator")
	if m := zkModes(t, hosts[0], zk); count(m, "leader") != 1 || count(m, "follower") != 2 {
		t.Fatalf("ensemble modes %v", m)
	}
	var consumer struct{ ID, Token string }
	c.OK(t, "POST", "/consumer", map[string]any{"appId": "ops-pipeline", "name": "ops", "orgId": "ops", "orgName": "Ops",
		"ownerName": "admin", "ownerEmail": "admin@example.com"}, &consumer)
	c.OK(t, "POST", "/consumer/grant", map[string]any{"consumerId": consumer.ID, "appId": "zk", "namespaceName": "zoo.cfg",
		"modify": true, "release": true}, nil)

	// From here on, the Apollo Open API only.
	api := tm.Apollo(consumer.Token, testenv.ApolloJava)
	ns := func(more ...string) []string { return testenv.NS("PRO", "zk", "default", "zoo.cfg", more...) }
	// The package's zoo.cfg leaves maxClientCnxns to ZooKeeper's default:
	// the key is added, then taken away again by the rollback.
	if a, _ := api.Send("GET", ns("items", "maxClientCnxns"), nil, nil); a.Status != 404 {
		t.Fatalf("maxClientCnxns before the change: %s, want a 404", a)
	}
	const old = ""
	zooCfg := func(n testenv.Node) string {
		b, err := os.ReadFile(filepath.Join(n.ProgramDir, "conf", "zoo.cfg"))
		if err != nil {
			t.Fatalf("zoo.cfg of %s: %v", n.NodeDir, err)
		}
		return string(b)
	}
	valueOn := func(n testenv.Node, key string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=(.*)$`).FindStringSubmatch(zooCfg(n))
		if m == nil {
			return ""
		}
		return m[1]
	}
	for _, n := range zk {
		if v := valueOn(n, "maxClientCnxns"); v != old {
			t.Fatalf("%s has maxClientCnxns=%s before the change", n.NodeDir, v)
		}
	}

	api.Must(t, 200, "PUT", ns("items", "maxClientCnxns"), [][2]string{{"createIfNotExists", "true"}},
		testenv.ApolloItem{Key: "maxClientCnxns", Value: "77", DataChangeCreatedBy: "admin", DataChangeLastModifiedBy: "admin"})
	watch := watchQuorum(hosts[0], zk)
	began := time.Now()
	rel := publishAndWait(t, api, ns(), "maxClientCnxns 77", "applied")
	quorum := watch()
	t.Logf("figure: rolling publish of zoo.cfg over the 3-node ensemble through the Open API: %v (publish call %v); quorum samples %s",
		time.Since(began).Round(time.Millisecond), rel.took.Round(time.Millisecond), quorum)
	if quorum.lost > 0 {
		t.Fatalf("the quorum was lost during the rollout: %s", quorum)
	}
	for _, n := range zk {
		if v := valueOn(n, "maxClientCnxns"); v != "77" {
			t.Fatalf("%s has maxClientCnxns=%s after the publish", n.NodeDir, v)
		}
	}
	var latest map[string]any
	api.Get(t, ns("releases", "latest"), nil, &latest)
	if testenv.ApolloID(t, latest["id"]) != rel.id || latest["configurations"].(map[string]any)["maxClientCnxns"] != "77" {
		t.Fatalf("releases/latest = %v, want release %d with maxClientCnxns 77", latest, rel.id)
	}

	// Roll back: the previous release's content on every node, and in the
	// draft.
	api.Must(t, 200, "PUT", []string{"envs", "PRO", "releases", fmt.Sprint(rel.id), "rollback"}, [][2]string{{"operator", "admin"}}, nil)
	back := waitHistory(t, api, ns(), func(h historyEntry) bool { return h.Operation == 1 && h.state() == "applied" })
	for _, n := range zk {
		if v := valueOn(n, "maxClientCnxns"); v != old {
			t.Fatalf("%s has maxClientCnxns=%s after the rollback, want it gone", n.NodeDir, v)
		}
	}
	if a, _ := api.Send("GET", ns("items", "maxClientCnxns"), nil, nil); a.Status != 404 {
		t.Errorf("the draft after the rollback: maxClientCnxns %s, want it gone (404)", a)
	}
	t.Logf("rollback release %d applied", back.ReleaseID)

	// A value ZooKeeper cannot start with: the first node fails its health
	// gate, gets its previous file back and rejoins; the rollout stops.
	before := pids(nodesOf(t, c, cl.ID, "coordinator"))
	files := map[string]string{}
	for _, n := range zk {
		files[n.NodeDir] = zooCfg(n)
	}
	api.Must(t, 200, "PUT", ns("items", "tickTime"), nil, testenv.ApolloItem{Key: "tickTime", Value: "not-a-number", DataChangeLastModifiedBy: "admin"})
	watch = watchQuorum(hosts[0], zk)
	began = time.Now()
	bad := publishAndWait(t, api, ns(), "bad tickTime", "failed")
	quorum = watch()
	t.Logf("figure: bad value published, rollout stopped and node restored after %v; quorum samples %s", time.Since(began).Round(time.Millisecond), quorum)
	if quorum.lost > 0 {
		t.Fatalf("the quorum was lost during the failed rollout: %s", quorum)
	}
	h := bad.history
	if !h.IsReleaseAbandoned || h.OperationContext["reason"] == nil {
		t.Fatalf("failed release in the history: %+v", h)
	}
	var restored, untouched int
	for _, rn := range h.nodes() {
		switch rn["state"] {
		case "restored":
			restored++
		case "cancelled":
			untouched++
		}
	}
	if restored != 1 || untouched != 2 {
		t.Fatalf("release nodes %v: want one restored and two never touched", h.nodes())
	}
	after := pids(nodesOf(t, c, cl.ID, "coordinator"))
	for _, n := range zk {
		if got := zooCfg(n); got != files[n.NodeDir] {
			t.Errorf("%s's zoo.cfg changed by the failed rollout:\n%s", n.NodeDir, got)
		}
	}
	changed := 0
	for id, pid := range before {
		if after[id] != pid {
			changed++
		}
	}
	if changed != 1 {
		t.Errorf("pids %v → %v: want only the restored node restarted", before, after)
	}
	testenv.Eventually(t, 60*time.Second, "the restored node to rejoin the ensemble", func() bool {
		m := zkModesNow(hosts[0], zk)
		return count(m, "leader") == 1 && count(m, "follower") == 2
	})
	api.Get(t, ns("releases", "latest"), nil, &latest)
	if testenv.ApolloID(t, latest["id"]) == bad.id {
		t.Errorf("releases/latest is the failed release")
	}
}

// published is a release made through the Open API, with its history
// entry once it settled.
type published struct {
	id      int64
	took    time.Duration
	history historyEntry
}

// historyEntry is one entry of the release history (Apollo's
// ReleaseHistoryBO).
type historyEntry struct {
	ReleaseID          int64          `json:"releaseId"`
	Operation          int            `json:"operation"`
	IsReleaseAbandoned bool           `json:"isReleaseAbandoned"`
	OperationContext   map[string]any `json:"operationContext"`
}

func (h historyEntry) state() string { return fmt.Sprint(h.OperationContext["state"]) }

func (h historyEntry) nodes() []map[string]any {
	var out []map[string]any
	if l, ok := h.OperationContext["nodes"].([]any); ok {
		for _, n := range l {
			if m, ok := n.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// publishAndWait publishes the namespace at path and waits until the
// release settles in state.
func publishAndWait(t *testing.T, api *testenv.ApolloClient, path []string, title, state string) published {
	t.Helper()
	began := time.Now()
	a := api.Must(t, 200, "POST", append(path, "releases"), nil, testenv.ApolloRelease{ReleaseTitle: title, ReleasedBy: "admin"})
	took := time.Since(began)
	var rel struct{ ID int64 }
	if err := json.Unmarshal(a.Body, &rel); err != nil || rel.ID == 0 {
		t.Fatalf("publish answered %s", a.Body)
	}
	h := waitHistory(t, api, path, func(h historyEntry) bool {
		return h.ReleaseID == rel.ID && h.state() != "pending" && h.state() != "applying"
	})
	if h.state() != state {
		t.Fatalf("release %d settled %s, want %s: %+v", rel.ID, h.state(), state, h)
	}
	return published{id: rel.ID, took: took, history: h}
}

// waitHistory polls the namespace's release history until an entry
// satisfies ok.
func waitHistory(t *testing.T, api *testenv.ApolloClient, path []string, ok func(historyEntry) bool) historyEntry {
	t.Helper()
	hp := append([]string{"apps", path[3], "envs", path[1], "clusters", path[5], "namespaces", path[7]}, "releases", "histories")
	var found historyEntry
	testenv.Eventually(t, 4*time.Minute, "the release to settle", func() bool {
		var list []historyEntry
		api.Get(t, hp, [][2]string{{"page", "0"}, {"size", "5"}}, &list)
		for _, h := range list {
			if ok(h) {
				found = h
				return true
			}
		}
		return false
	})
	return found
}

// quorumSamples counts, while a rollout runs, how often a majority of the
// ensemble's nodes was up (accepting connections) and how often not, and
// how often no node said it led (an election under way).
type quorumSamples struct{ kept, lost, leaderless int }

func (q quorumSamples) String() string {
	return fmt.Sprintf("%d with a majority up, %d without, %d during an election", q.kept, q.lost, q.leaderless)
}

// watchQuorum samples the ensemble's modes from host from until the
// returned function is called, which returns the counts.
func watchQuorum(from *host, zk []testenv.Node) func() quorumSamples {
	var (
		mu   sync.Mutex
		q    quorumSamples
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			up := 0
			for _, n := range zk {
				if c, err := from.dialFrom(net.JoinHostPort(n.ManagerIP, fmt.Sprint(n.ServerPort)), time.Second); err == nil {
					c.Close()
					up++
				}
			}
			leaders := count(zkModesNow(from, zk), "leader")
			mu.Lock()
			if up > len(zk)/2 {
				q.kept++
			} else {
				q.lost++
			}
			if leaders == 0 {
				q.leaderless++
			}
			mu.Unlock()
		}
	}()
	return func() quorumSamples {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return q
	}
}
