package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// These tests change nodes' config through the console API on a real
// manager and real admq-agent processes on loopback, and look at the
// nodes' files on disk. The nodes run a small program that reads its
// config when it starts: "mode=bad" makes it exit at once (a value the
// server refuses), anything else makes it copy its config to the data dir
// and sleep; its health check compares that copy with the config, so a
// node is healthy only once it runs on the file it has.

// configurableManifest is that program's package manifest: a broker
// (no quorum) with conf/app.properties. delay seconds pass before the
// node is healthy.
func configurableManifest(name string, port, delay int) manifest.Manifest {
	script := fmt.Sprintf(`rm -f {dataDir}/started; if grep -q '^mode=bad' conf/app.properties; then echo "refusing $(grep mode= conf/app.properties)"; exit 3; fi; `+
		`sleep %d; cp conf/app.properties {dataDir}/started.tmp && mv {dataDir}/started.tmp {dataDir}/started; exec sleep 3600`, delay)
	return manifest.Manifest{
		ManifestVersion: 1, Name: name, Version: "1.0", MqType: 3, Description: "reads its config, for config tests",
		Components: map[string]manifest.Component{"broker": {
			Start:       []string{"/bin/sh", "-c", script},
			ConfigFiles: []manifest.ConfigFile{{Name: "app.properties", Path: "conf/app.properties"}},
			ServerPort:  port,
			Health: manifest.Health{Command: []string{"cmp", "-s", "{dataDir}/started", "{programDir}/conf/app.properties"},
				TimeoutSeconds: 2, IntervalSeconds: 1, StartSeconds: 8},
		}},
	}
}

const appProperties = "# the node's mode\nmode=good\nport={serverPort}\nname={node}\n"

// configEnv is a manager with agents on ips and a deployed cluster of one
// configurable broker per agent.
type configEnv struct {
	tm     *testenv.Manager
	c      *testenv.Client
	agents []*testenv.Agent
	ips    []string
	root   string
	pkg    testenv.Package
	cl     testenv.Cluster
	nodes  []testenv.Node
}

func startConfigEnv(t *testing.T, name string, ips []string, port, delay int) *configEnv {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		if pids := killProcsUnder(root); len(pids) > 0 {
			t.Logf("cleanup: killed node processes %v left running under %s", pids, root)
		}
	})
	tm := testenv.StartManager(t)
	c := tm.Client(t, testenv.WithTimeout(2*time.Minute))
	tok := c.CreateToken(t, len(ips), 0).Token
	e := &configEnv{tm: tm, c: c, ips: ips, root: root}
	for _, ip := range ips {
		a, _ := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok, AdvertiseIP: ip})
		e.agents = append(e.agents, a)
	}
	e.pkg = c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-"+name+"-V1.0-x86.tar.gz", configurableManifest("admq-"+name, port, delay),
		workloads.Entry{Name: "conf/app.properties", Data: []byte(appProperties)}))
	var list []testenv.ClusterNode
	for _, ip := range ips {
		list = append(list, testenv.ClusterNode{ManagerIP: ip, ServerPort: port,
			ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"})
	}
	e.cl = c.CreateCluster(t, testenv.NewCluster{Name: name, PackageID: e.pkg.ID, BrokerList: list})
	if job := c.WaitJob(t, c.DeployCluster(t, e.cl.ID), 2*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy:\n%s", job)
	}
	e.nodes = c.Nodes(t, e.cl.ID)
	return e
}

// file returns node i's app.properties on disk.
func (e *configEnv) file(t *testing.T, i int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.nodes[i].ProgramDir, "conf", "app.properties"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigOverridesOnAgents: one edit of the cluster layer reaches every
// node, a node's override only that node, through the seed's flush and a
// rolling flush; a value that stops the node is put back; an offline
// agent is refused with nothing recorded; a rollback restores the older
// release; a diff says what changed.
func TestConfigOverridesOnAgents(t *testing.T) {
	integrationTest(t)
	e := startConfigEnv(t, "cfg", []string{"127.0.95.1", "127.0.95.2", "127.0.95.3"}, 18095, 0)
	c := e.c
	layer := c.LayerFile(t, e.cl.ID, "broker", "app.properties")
	files := make([]testenv.ConfigFile, 3)
	for i, n := range e.nodes {
		files[i] = c.NodeFile(t, n.ID, "app.properties")
		if n.SyncNodeConfigStatus != 0 || n.Mode != 1 {
			t.Fatalf("node %s after deploy: sync %d mode %d", n.NodeDir, n.SyncNodeConfigStatus, n.Mode)
		}
	}
	releases := c.Releases(t, layer.ID)
	if len(releases) != 1 || releases[0].Kind != "deploy" || releases[0].State != "applied" {
		t.Fatalf("releases after deploy %+v", releases)
	}

	// The layer gets limit=10; node 2 overrides it, node 3 switches name off.
	c.SetLayerValue(t, layer.ID, "limit", "10")
	over := c.Items(t, "/cluster/node/config", files[1].ID)["limit"]
	c.OK(t, http.MethodPut, "/cluster/node/config", map[string]any{"id": over.ID, "configValue": "20"}, nil)
	name3 := c.Items(t, "/cluster/node/config", files[2].ID)["name"]
	c.OK(t, http.MethodPut, "/cluster/node/config/status", map[string]any{"id": name3.ID, "effective": 0}, nil)
	for _, n := range c.Nodes(t, e.cl.ID) {
		if n.SyncNodeConfigStatus != 1 || n.Mode != 0 {
			t.Fatalf("node %s with its draft changed: sync %d mode %d", n.NodeDir, n.SyncNodeConfigStatus, n.Mode)
		}
	}

	// The seed's flush of node 2, then a rolling flush of the others.
	began := time.Now()
	r := c.Flush(t, e.cl.ID, e.nodes[1].ID, files[1].ID)
	took := time.Since(began)
	if r.Outcome != "applied" || r.JobID == "" || r.ReleaseNumber != 2 || r.PidBefore == 0 || r.PidAfter == r.PidBefore || r.Healthy == nil || !*r.Healthy {
		t.Fatalf("flush of node 2: %+v", r)
	}
	t.Logf("figure: one flush + restart + healthy of a small node over the tunnel: %v (agent side %d ms)", took.Round(time.Millisecond), r.DurationMs)
	if job := c.Job(t, r.JobID); job.Type != "config_flush" || job.State != "succeeded" || job.Step(e.nodes[1].ID, "apply").State != "succeeded" {
		t.Fatalf("flush job %s", job)
	}
	ro := c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": e.cl.ID, "configFileId": layer.ID, "title": "limit"})
	if ro.Outcome != "started" || len(ro.NodeIDs) != 2 || ro.ReleaseNumber != 3 {
		t.Fatalf("rollout %+v: want nodes 1 and 3 only", ro)
	}
	if job := c.WaitJob(t, ro.JobID, time.Minute); job.State != "succeeded" {
		t.Fatalf("rollout:\n%s", job)
	}
	want := []string{"mode=good\nport=18095\nname=broker-1\nlimit=10\n", "mode=good\nport=18095\nname=broker-2\nlimit=20\n", "mode=good\nport=18095\nlimit=10\n"}
	for i := range e.nodes {
		if got := e.file(t, i); !strings.HasSuffix(got, want[i]) {
			t.Errorf("node %d app.properties:\n%s\nwant it to end with\n%s", i+1, got, want[i])
		}
	}
	for _, n := range c.Nodes(t, e.cl.ID) {
		if n.SyncNodeConfigStatus != 0 || n.Mode != 1 {
			t.Fatalf("node %s after the flushes: sync %d mode %d", n.NodeDir, n.SyncNodeConfigStatus, n.Mode)
		}
	}
	// Unchanged: nothing done.
	if r := c.Flush(t, e.cl.ID, e.nodes[0].ID, files[0].ID); r.Outcome != "unchanged" || r.JobID != "" {
		t.Fatalf("unchanged flush %+v", r)
	}

	// A value node 1 cannot start with: restored, the job failed with the
	// node's words.
	mode1 := c.Items(t, "/cluster/node/config", files[0].ID)["mode"]
	c.OK(t, http.MethodPut, "/cluster/node/config", map[string]any{"id": mode1.ID, "configValue": "bad"}, nil)
	before := e.file(t, 0)
	began = time.Now()
	r = c.Flush(t, e.cl.ID, e.nodes[0].ID, files[0].ID)
	if r.Outcome != "restored" || !strings.Contains(r.Detail, "refusing mode=bad") || r.Healthy == nil || *r.Healthy {
		t.Fatalf("bad flush %+v", r)
	}
	t.Logf("figure: a bad value to the node restored and healthy: %v", time.Since(began).Round(time.Millisecond))
	if got := e.file(t, 0); got != before {
		t.Fatalf("node 1's file after the restore:\n%s\nwant\n%s", got, before)
	}
	if rel := c.Release(t, r.ReleaseID); rel.State != "failed" || rel.Nodes[0].State != "restored" {
		t.Fatalf("release of the bad value %+v", rel)
	}
	if n := c.Node(t, e.cl.ID, e.nodes[0].ID); n.RunStatus != "running" || n.SyncNodeConfigStatus != 1 {
		t.Fatalf("node 1 after the restore: %+v", n)
	}
	c.OK(t, http.MethodDelete, "/cluster/node/config", map[string]any{"id": mode1.ID}, nil)

	// An offline agent: 1253, nothing recorded.
	e.agents[2].Kill()
	c.WaitStatus(t, e.agents[2].ID(t), "offline", 30*time.Second)
	c.SetLayerValue(t, layer.ID, "limit", "30")
	nReleases := len(c.Releases(t, layer.ID))
	env, status := c.Do(t, http.MethodPost, "/cluster/node/config/flush", map[string]any{"configFileId": files[2].ID, "clusterId": e.cl.ID, "nodeId": e.nodes[2].ID})
	if status != http.StatusBadGateway || env.Code != 1253 {
		t.Fatalf("flush of an offline node: HTTP %d %+v", status, env)
	}
	if got := len(c.Releases(t, layer.ID)); got != nReleases {
		t.Fatalf("a refused flush recorded a release: %d, was %d", got, nReleases)
	}

	// Roll nodes 1 and 2 back to release 1, the deployment's.
	ro = c.Rollout(t, "/cluster/config/rollback", map[string]any{"configFileId": layer.ID, "releaseId": releaseNumbered(t, c, layer.ID, 1).ID,
		"nodeIds": []string{e.nodes[0].ID, e.nodes[1].ID}})
	if job := c.WaitJob(t, ro.JobID, time.Minute); job.State != "succeeded" {
		t.Fatalf("rollback:\n%s", job)
	}
	if got := e.file(t, 0); strings.Contains(got, "limit=") || !strings.Contains(got, "name=broker-1") {
		t.Fatalf("node 1 after the rollback to release 1:\n%s", got)
	}
	var diff struct {
		Layer struct {
			Added []struct{ ConfigKey string } `json:"added"`
		} `json:"layer"`
		Nodes []struct {
			NodeDir string `json:"nodeDir"`
			Lines   string `json:"lines"`
		} `json:"nodes"`
	}
	c.OK(t, http.MethodGet, "/cluster/config/release/diff?from="+releaseNumbered(t, c, layer.ID, 1).ID+"&to="+releaseNumbered(t, c, layer.ID, 3).ID, nil, &diff)
	if len(diff.Layer.Added) != 1 || diff.Layer.Added[0].ConfigKey != "limit" || len(diff.Nodes) != 3 || !strings.Contains(diff.Nodes[0].Lines, "+limit=10") {
		t.Fatalf("diff of releases 1 and 3: %+v", diff)
	}
	// A rollback to another file's release is refused.
	other := c.CreateCluster(t, testenv.NewCluster{Name: "cfg2", PackageID: e.pkg.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: e.ips[0], ServerPort: 18096, ProgramDir: e.root + "/opt/{cluster}/{nodeDir}", DataDir: e.root + "/data/{cluster}/{nodeDir}"}}})
	otherLayer := c.LayerFile(t, other.ID, "broker", "app.properties")
	env, status = c.Do(t, http.MethodPost, "/cluster/config/rollback", map[string]any{"configFileId": otherLayer.ID, "releaseId": releaseNumbered(t, c, layer.ID, 1).ID})
	if status != http.StatusBadRequest || env.Code != 1413 {
		t.Fatalf("rollback to another file's release: HTTP %d %+v", status, env)
	}
}

// releaseNumbered returns the file's release with number n.
func releaseNumbered(t testing.TB, c *testenv.Client, fileID string, n int) testenv.Release {
	t.Helper()
	for _, r := range c.Releases(t, fileID) {
		if r.Number == n {
			return r
		}
	}
	t.Fatalf("file %s has no release %d", fileID, n)
	return testenv.Release{}
}
