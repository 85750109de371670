package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// reasonRestarted is what deploy.ReasonRestarted says, in the words a user
// reads: what happened and what to do.
var reasonRestarted = []string{"manager restarted while the job was running", "deploy again"}

// TestRestartMidDeployFailsTheJob: the manager is stopped while a job
// waits for a storage node to become healthy, with a broker of the next
// tier still pending. Once it is back, the job is failed, saying why and
// what to do, with no step left running or pending and no node left
// "deploying"; its event stream ends with "done"; the agent reconnects on
// its own, still supervising the node the job started; and deploying
// again succeeds without restarting that node.
func TestRestartMidDeployFailsTheJob(t *testing.T) {
	integrationTest(t)
	const (
		ip          = "127.0.90.1"
		storagePort = 18092
		brokerPort  = 18093
	)
	e := startFaultEnv(t, ip, t.TempDir())
	c := e.c
	serverID := e.a.ID(t)
	agentPid := e.a.PID()

	// The storage node is healthy once {dataDir}/ready exists: until the
	// test makes it, the job sits in the node's health step (60s allowed).
	m := sleeperManifest("admq-ready", brokerPort)
	m.Description = "storage waits for a ready file, for restart tests"
	m.Components["storage"] = manifest.Component{
		Start:      []string{"/bin/sh", "-c", "exec sleep 3600"},
		ServerPort: storagePort,
		Health: manifest.Health{Command: []string{"/bin/sh", "-c", "test -e {dataDir}/ready"},
			TimeoutSeconds: 5, IntervalSeconds: 1, StartSeconds: 60},
	}
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-ready-V1.0-x86.tar.gz", m))
	dirs := func(port int) testenv.ClusterNode {
		return testenv.ClusterNode{ManagerIP: ip, ServerPort: port,
			ProgramDir: e.root + "/opt/{cluster}/{nodeDir}", DataDir: e.root + "/data/{cluster}/{nodeDir}"}
	}
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "restart", PackageID: pkg.ID,
		StorageList: []testenv.ClusterNode{dirs(storagePort)}, BrokerList: []testenv.ClusterNode{dirs(brokerPort)}})
	var st, br testenv.Node
	for _, n := range c.Nodes(t, cl.ID) {
		switch n.Component {
		case "storage":
			st = n
		case "broker":
			br = n
		}
	}
	if st.ID == "" || br.ID == "" {
		t.Fatalf("cluster nodes %+v: want one storage node and one broker", c.Nodes(t, cl.ID))
	}

	// Deploy, and wait until the storage node's health step runs.
	jobID := c.DeployCluster(t, cl.ID)
	var job testenv.Job
	waited := testenv.Eventually(t, 60*time.Second, "the storage node's health step to run", func() bool {
		job = c.Job(t, jobID)
		if job.State == "succeeded" || job.State == "failed" {
			t.Fatalf("the job ended before the restart:\n%s", job)
		}
		return job.Step(st.ID, "health").State == "running"
	})
	for _, s := range job.Steps(br.ID) {
		if s.State != "pending" {
			t.Fatalf("broker step %s is %s before the restart, want pending (next tier):\n%s", s.Name, s.State, job)
		}
	}
	before := c.Node(t, cl.ID, st.ID)
	if before.DeployStatus != "deploying" || before.RunStatus != "running" || before.Pid == 0 {
		t.Fatalf("storage node in its health step: deploy %s run %s pid %d, want deploying, running, a pid",
			before.DeployStatus, before.RunStatus, before.Pid)
	}
	t.Logf("figure: health step running %v after the deploy began; job %s; storage node pid %d",
		waited.Round(time.Millisecond), job.State, before.Pid)

	// A console follows the job across the restart.
	type streamEnd struct {
		events []testenv.Event
		err    error
		at     time.Time
	}
	sctx, scancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer scancel()
	first := make(chan struct{})
	ended := make(chan streamEnd, 1)
	var once sync.Once
	go func() {
		evs, err := c.JobEvents(sctx, jobID, func(testenv.Event) { once.Do(func() { close(first) }) })
		ended <- streamEnd{evs, err, time.Now()}
	}()
	select {
	case <-first:
	case r := <-ended:
		t.Fatalf("the job's event stream ended before the restart: %v %+v", r.err, r.events)
	case <-time.After(30 * time.Second):
		t.Fatal("no event from GET /job/events in 30s")
	}

	// The restart. The ready file is made while the manager is down, so
	// that the job cannot pass its health step before it stops, and so that
	// whichever deploy comes next finds the node healthy.
	stopBegan := time.Now()
	e.tm.Stop()
	stopped := time.Now()
	stopTook := stopped.Sub(stopBegan)
	var old streamEnd
	select {
	case old = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream of the job outlived the manager by 10s")
	}
	// The open stream does not hold the shutdown for its grace (5s here).
	if stopTook > 3*time.Second {
		t.Errorf("the manager took %v to stop with a job event stream open", stopTook)
	}
	if n := len(old.events); n > 0 && old.events[n-1].Name == "done" {
		t.Errorf("the old manager sent \"done\" for a job it left running: %+v", old.events[n-1])
	}
	t.Logf("figure: manager stopped in %v; the event stream it served ended %v after the stop began (%d events, err %v)",
		stopTook.Round(time.Millisecond), old.at.Sub(stopBegan).Round(time.Millisecond), len(old.events), old.err)
	if err := os.WriteFile(filepath.Join(st.DataDir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.tm.Start()
	restarted := time.Now()

	// Right after the restart: the job is failed, saying why and what to do.
	job = c.Job(t, jobID)
	t.Logf("figure: right after the restart (%v after Start returned) the job is %s: %q",
		time.Since(restarted).Round(time.Millisecond), job.State, job.Reason)
	if job.State != "failed" {
		t.Fatalf("job after the restart: want failed:\n%s", job)
	}
	for _, want := range reasonRestarted {
		if !strings.Contains(job.Reason, want) {
			t.Errorf("job reason %q does not say %q", job.Reason, want)
		}
	}
	// No step is left running or pending: the interrupted one failed with
	// the job's reason, those that never ran were cancelled.
	for _, n := range []testenv.Node{st, br} {
		for _, s := range job.Steps(n.ID) {
			if s.State == "running" || s.State == "pending" {
				t.Errorf("node %s (%s) step %s is still %s after the restart", n.ID, n.Component, s.Name, s.State)
			}
		}
	}
	if h := job.Step(st.ID, "health"); h.State != "failed" || !strings.Contains(h.Detail, reasonRestarted[0]) {
		t.Errorf("storage health step %+v: want failed, saying the manager restarted", h)
	}
	for _, name := range []string{"transfer", "install", "configure", "start"} {
		if s := job.Step(st.ID, name); s.State != "succeeded" && s.State != "skipped" {
			t.Errorf("storage step %s %+v: it finished before the restart and must stay as it was", name, s)
		}
	}
	// (Stopped gracefully, the manager cancels them itself, saying it
	// stopped; after a crash Recover does, with the job's reason.)
	for _, s := range job.Steps(br.ID) {
		if s.State != "cancelled" || !strings.HasPrefix(s.Detail, "not run: ") || !strings.Contains(s.Detail, "manager") {
			t.Errorf("broker step %s %+v: want cancelled, saying it was not run because of the manager", s.Name, s)
		}
	}
	t.Logf("job after the restart:\n%s", job)
	// No node is left deploying: the storage node, cut short, is failed;
	// the broker, never reached, is as it was before the job.
	for _, n := range c.Nodes(t, cl.ID) {
		t.Logf("node %s (%s) after the restart: deploy %s run %s", n.ID, n.Component, n.DeployStatus, n.RunStatus)
		switch {
		case n.DeployStatus == "deploying":
			t.Errorf("node %s (%s) is still deploying after the restart", n.ID, n.Component)
		case n.ID == st.ID && n.DeployStatus != "failed":
			t.Errorf("storage node deploy status %q after the restart, want failed (its deploy was cut short)", n.DeployStatus)
		case n.ID == br.ID && n.DeployStatus != br.DeployStatus:
			t.Errorf("broker deploy status %q after the restart, want %q as before the job (it was not touched)", n.DeployStatus, br.DeployStatus)
		}
	}

	// Its event stream ends at once, with "done".
	ectx, ecancel := context.WithTimeout(t.Context(), 10*time.Second)
	began := time.Now()
	evs, err := c.JobEvents(ectx, jobID, nil)
	ecancel()
	if err != nil || len(evs) == 0 || evs[len(evs)-1].Name != "done" {
		t.Fatalf("GET /job/events of the failed job: err %v, events %+v: want a stream ending with \"done\"", err, evs)
	}
	var done struct{ State, Reason string }
	if err := json.Unmarshal([]byte(evs[len(evs)-1].Data), &done); err != nil || done.State != "failed" || done.Reason != job.Reason {
		t.Errorf("done event %s (%v): want the failed job with its reason", evs[len(evs)-1].Data, err)
	}
	t.Logf("figure: GET /job/events of the failed job ended with \"done\" in %v (%d events)", time.Since(began).Round(time.Millisecond), len(evs))

	// A deploy of the node is not refused as "already deploying"; until
	// the agent is back it may be refused as offline.
	var redeploy string
	env, status := c.Do(t, http.MethodPost, "/admq/cluster/node/deploy", map[string]string{"nodeId": st.ID})
	switch {
	case status == http.StatusOK && env.Code == 0:
		var j testenv.Job
		testenv.Decode(t, env.Data, &j)
		redeploy = j.ID
		t.Logf("a deploy right after the restart was accepted (the agent was back already): job %s", redeploy)
	case env.Code == 1407 && strings.Contains(env.Message, "agent offline: "+st.NodeDir) && !strings.Contains(env.Message, "already deploying: "+st.NodeDir):
		t.Logf("a deploy right after the restart, before the agent is back: HTTP %d code %d %s", status, env.Code, env.Message)
	default:
		t.Fatalf("deploy right after the restart: HTTP %d code %d (%s) %s: want accepted, or refused only because the agent is offline",
			status, env.Code, env.Msg, env.Message)
	}

	// The agent reconnects on its own: the same process.
	c.WaitStatus(t, serverID, "online", 90*time.Second)
	t.Logf("figure: the agent was online again %v after the manager restarted (%v after the stop began)",
		time.Since(restarted).Round(time.Millisecond), time.Since(stopBegan).Round(time.Millisecond))
	if e.a.Exited() || e.a.PID() != agentPid {
		t.Fatalf("the agent did not survive the manager restart: exited %v (%v)", e.a.Exited(), e.a.WaitErr())
	}
	// The manager marks the server online when the session is up; the
	// agent logs its side a moment later.
	testenv.Eventually(t, 30*time.Second, "the agent to log a reconnect", func() bool {
		return strings.Count(e.a.Log(), "connected to manager") >= 2
	})
	if got := c.Node(t, cl.ID, st.ID); got.Pid != before.Pid || got.RunStatus != "running" {
		t.Errorf("storage node with the agent back: run %s pid %d, want running with pid %d as before", got.RunStatus, got.Pid, before.Pid)
	}

	// Deploying again succeeds, and leaves the running node alone.
	if redeploy == "" {
		redeploy = c.DeployNode(t, st.ID)
	}
	began = time.Now()
	job = c.WaitJob(t, redeploy, 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy of the storage node after the restart:\n%s", job)
	}
	t.Logf("figure: redeploy of the storage node succeeded in %v", time.Since(began).Round(time.Millisecond))
	if s := job.Step(st.ID, "start"); !strings.Contains(s.Detail, "already running with this package and config") {
		t.Errorf("start step of the redeploy %+v: want the node left running as it was", s)
	}
	after := c.Node(t, cl.ID, st.ID)
	if after.DeployStatus != "deployed" || after.RunStatus != "running" || after.Pid != before.Pid {
		t.Errorf("storage node after the redeploy: deploy %s run %s pid %d, want deployed, running, pid %d (the process the first job started)",
			after.DeployStatus, after.RunStatus, after.Pid, before.Pid)
	}
	if err := syscall.Kill(before.Pid, 0); err != nil {
		t.Errorf("process %d that the first job started: %v", before.Pid, err)
	}

	// And the whole cluster: the broker the first job never reached starts.
	job = c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy of the cluster after the restart:\n%s", job)
	}
	for _, n := range c.Nodes(t, cl.ID) {
		if n.DeployStatus != "deployed" || n.RunStatus != "running" {
			t.Errorf("node %s (%s) after the cluster deploy: deploy %s run %s", n.ID, n.Component, n.DeployStatus, n.RunStatus)
		}
		if n.ID == st.ID && n.Pid != before.Pid {
			t.Errorf("the cluster deploy restarted the storage node: pid %d, was %d", n.Pid, before.Pid)
		}
	}
	if d := c.DeleteCluster(t, cl.ID); len(d.NotCleaned) != 0 {
		t.Errorf("delete cluster left %+v", d.NotCleaned)
	}
}
