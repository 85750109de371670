package integration

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestDeployPortInUse: a node whose port another process holds on its
// server is not started; the job's start step says which address is taken
// and why, the agent logs it, and once the port is free the same cluster
// deploys and passes its health check.
func TestDeployPortInUse(t *testing.T) {
	integrationTest(t)
	py := portsPython(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	// A loopback address of its own (Linux answers all of 127/8), so that
	// no other test's listener or connection is in the way.
	const ip = "127.0.86.1"
	a, _ := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token, AdvertiseIP: ip})

	held, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	port := held.Addr().(*net.TCPAddr).Port

	pkg := c.UploadPackage(t, portsWebPackage(t, t.TempDir(), py))
	root := t.TempDir()
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "ports", PackageID: pkg.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: ip, ServerPort: port,
		ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}",
	}}})
	nodes := c.Nodes(t, cl.ID)
	if len(nodes) != 1 || nodes[0].ServerPort != port {
		t.Fatalf("cluster nodes %+v: want one broker on port %d", nodes, port)
	}
	n := nodes[0]

	// Deploy onto the taken port: refused before the node starts.
	began := time.Now()
	job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute)
	failedIn := time.Since(began)
	if job.State != "failed" {
		t.Fatalf("deploy onto %s, which the test holds: want a failed job, got\n%s", addr, job)
	}
	start := job.Step(n.ID, "start")
	want := addr + " is already in use on this server (address already in use); another process listens there"
	if start.State != "failed" || !strings.Contains(start.Detail, want) {
		t.Fatalf("start step %+v: want failed, saying %q\n%s", start, want, job)
	}
	if h := job.Step(n.ID, "health"); h.State != "cancelled" {
		t.Errorf("health step %+v: want cancelled", h)
	}
	t.Logf("figure: deploy onto a taken port failed in %v; start step: %s", failedIn.Round(time.Millisecond), start.Detail)
	got := c.Node(t, cl.ID, n.ID)
	if got.RunStatus == "running" || got.Pid != 0 || got.DeployStatus != "failed" {
		t.Errorf("node after the refused deploy: deploy %s run %s pid %d: want failed, not running, no pid", got.DeployStatus, got.RunStatus, got.Pid)
	}
	if log := c.NodeLog(t, n.ID, 4096); log != "" {
		t.Errorf("node log after the refused deploy: %q, want nothing (no process started)", log)
	}
	var why string
	for _, l := range strings.Split(a.Log(), "\n") {
		if strings.Contains(l, "not free") && strings.Contains(l, want) {
			why = l
		}
	}
	if why == "" {
		t.Errorf("agent log does not say why the node was not started (want %q):\n%s", want, a.Log())
	}
	t.Logf("agent log: %s", why)
	// The test's listener is untouched: still the one answering.
	probe, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("the held port stopped answering: %v", err)
	}
	probe.Close()

	// The port freed, the same cluster deploys and is healthy.
	held.Close()
	began = time.Now()
	job = c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy with the port free:\n%s", job)
	}
	if h := job.Step(n.ID, "health"); h.State != "succeeded" {
		t.Fatalf("health step %+v\n%s", h, job)
	}
	t.Logf("figure: deploy with the port free succeeded in %v (health: %s)", time.Since(began).Round(time.Millisecond), job.Step(n.ID, "health").Detail)
	got = c.Node(t, cl.ID, n.ID)
	if got.RunStatus != "running" || got.Pid == 0 || got.DeployStatus != "deployed" {
		t.Fatalf("node after the deploy: deploy %s run %s pid %d", got.DeployStatus, got.RunStatus, got.Pid)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET http://%s/: %s", addr, resp.Status)
	}
	testenv.Eventually(t, 10*time.Second, "the node's log to show it serving", func() bool {
		return strings.Contains(c.NodeLog(t, n.ID, 4096), "Serving HTTP on")
	})
	// A redeploy of the running node is not refused: the port it holds is
	// its own.
	job = c.WaitJob(t, c.DeployNode(t, n.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("redeploy of the running node:\n%s", job)
	}
	if again := c.Node(t, cl.ID, n.ID); again.Pid != got.Pid {
		t.Errorf("redeploy of the running node changed its pid %d to %d", got.Pid, again.Pid)
	}
	if d := c.DeleteCluster(t, cl.ID); len(d.NotCleaned) != 0 {
		t.Errorf("delete cluster left %+v", d.NotCleaned)
	}
}

// portsPython is a python3 the node can run without the test's
// environment (a pyenv shim may need it), or the test is skipped.
func portsPython(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "/usr/local/bin/python3"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to serve HTTP as the test's node")
	}
	return p
}

// portsWebPackage writes admq-web-V1.0-x86.tar.gz into dir: one broker,
// python3's http.server on {dataIp}:{serverPort}, healthy when it answers
// HTTP.
func portsWebPackage(t testing.TB, dir, python string) string {
	t.Helper()
	m := manifest.Manifest{
		ManifestVersion: 1, Name: "admq-web", Version: "1.0", MqType: 3,
		Description: "python3 http.server, for tests",
		Components: map[string]manifest.Component{"broker": {
			Start:      []string{python, "-u", "-m", "http.server", "--bind", "{dataIp}", "{serverPort}"},
			ServerPort: 8080,
			Health: manifest.Health{HTTP: "http://{dataIp}:{serverPort}/", TimeoutSeconds: 2,
				IntervalSeconds: 1, StartSeconds: 30},
		}},
	}
	return workloads.Build(t, dir, "admq-web-V1.0-x86.tar.gz", m, workloads.Entry{Name: "index.html", Data: []byte("<p>admq-web</p>\n")})
}
