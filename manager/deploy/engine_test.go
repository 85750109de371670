package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/cluster/clustertest"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

const zkManifest = `{"name": "zookeeper", "version": "3.8.4", "mqType": 1, "components": {"coordinator": {
  "start": ["{programDir}/bin/zkServer.sh", "start-foreground", "{dataDir}"],
  "env": {"ZOO_MYID": "{myid}"},
  "configFiles": [{"name": "zoo.cfg", "path": "conf/zoo.cfg"}, {"name": "myid", "path": "conf/myid.tpl", "format": "raw", "target": "{dataDir}/myid"}],
  "serverPort": 2181,
  "roleProbe": {"tcp": "{managerIp}:{serverPort}", "send": "srvr", "leader": "^Mode: leader$"},
  "health": {"tcp": "{managerIp}:{serverPort}", "intervalSeconds": 1, "startSeconds": 5}}}}`

const natsManifest = `{"name": "nats", "version": "2.10.0", "mqType": 2, "components": {"broker": {
  "start": ["{programDir}/nats-server", "-c", "{programDir}/nats.conf"],
  "configFiles": [{"name": "nats.conf", "path": "nats.conf", "format": "raw"}],
  "serverPort": 4222, "peer": "nats-route://{managerIp}:6222",
  "health": {"tcp": "{managerIp}:{serverPort}"}}}}`

// clock is a fake clock that Sleep advances.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

// agents is a fake of the nodes' agents that records what it is asked.
type agents struct {
	mu       sync.Mutex
	offline  map[ids.ID]bool
	present  map[string]bool // sha256 the agents hold
	sick     map[string]bool // health addresses that fail
	crashing map[string]int  // node name → crash restarts it reports
	// results: node name → what its deploy reports
	results map[string]deploy.DeployResult
	pushed  []string
	deploys []deploy.DeployRequest
	applies []deploy.ApplyRequest
	files   map[string]string // path → content the applies wrote
	// recorded are the applies' results by operation id, as an agent's
	// journal keeps them.
	recorded map[string]deploy.ApplyResult
	// sickApply: node name → unhealthy after an apply's restart.
	sickApply map[string]bool
	// leader is the address whose role probe answers "Mode: leader".
	leader string
	// gate, when set, holds every apply until it is closed.
	gate                chan struct{}
	running, maxRunning int
	restarted           []string
	events              []string // "deploy <name>", "healthy <addr>"
	removed             []deploy.RemoveRequest
	commands            []string
	// removeErr: node name → the error its removal fails with.
	removeErr map[string]error
	// kept: node name → the dirs its removal keeps.
	kept map[string][]deploy.KeptDir
}

func newAgents() *agents {
	return &agents{sickApply: map[string]bool{}, offline: map[ids.ID]bool{}, present: map[string]bool{}, sick: map[string]bool{}, crashing: map[string]int{}, results: map[string]deploy.DeployResult{}, removeErr: map[string]error{}}
}

func (a *agents) Online(id ids.ID) bool { a.mu.Lock(); defer a.mu.Unlock(); return !a.offline[id] }
func (a *agents) HasPackage(_ context.Context, _ ids.ID, sha string) (bool, int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.present[sha], 0, nil
}
func (a *agents) PushPackage(_ context.Context, _ ids.ID, sha string, _ int64, _ io.ReaderAt) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pushed = append(a.pushed, sha)
	return 0, nil
}
func (a *agents) DeployNode(_ context.Context, _ ids.ID, r deploy.DeployRequest) (deploy.DeployResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deploys = append(a.deploys, r)
	a.events = append(a.events, "deploy "+r.Name)
	return a.results[r.Name], nil
}
func (a *agents) ApplyConfig(ctx context.Context, _ ids.ID, r deploy.ApplyRequest) (deploy.ApplyResult, error) {
	a.mu.Lock()
	if r.RecordedOnly {
		defer a.mu.Unlock()
		res, ok := a.recorded[r.OperationID]
		if !ok {
			return deploy.ApplyResult{}, fmt.Errorf("apply config on agent 1: %w", deploy.ErrNodeNotInstalled)
		}
		res.Replayed = true
		return res, nil
	}
	a.applies = append(a.applies, r)
	a.events = append(a.events, "apply "+r.Name)
	a.running++
	a.maxRunning = max(a.maxRunning, a.running)
	gate := a.gate
	a.mu.Unlock()
	if gate != nil {
		// A test holds the apply here: the manager waits on the agent.
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
	if a.files == nil {
		a.files = map[string]string{}
	}
	res := deploy.ApplyResult{PIDBefore: 100, PIDAfter: 100}
	var old []string
	for _, f := range r.ConfigFiles {
		p := f.Path
		if !strings.HasPrefix(p, "/") {
			p = r.ProgramDir + "/" + p
		}
		if a.files[p] != string(f.Content) {
			old = append(old, p, a.files[p])
			a.files[p] = string(f.Content)
			res.Changed = append(res.Changed, p)
		}
	}
	res.Restarted = r.Restart == deploy.RestartAlways || (r.Restart == deploy.RestartIfChanged && len(res.Changed) > 0)
	res.Healthy = true
	if res.Restarted {
		res.PIDAfter, res.HealthChecks, res.HealthDetail, res.Duration = 200, 1, "connected", 5*time.Millisecond
		a.restarted = append(a.restarted, r.Name)
		if a.sickApply[r.Name] {
			res.Healthy, res.HealthDetail = false, "not healthy within 5s: connection refused"
			res.LogTail = []byte("log line 1 of " + r.Name + "\nFATAL invalid tickTime\n")
			if r.Restore {
				res.Restored, res.RestoredHealthy, res.RestoreDetail = true, true, "connected"
				for i := 0; i < len(old); i += 2 {
					a.files[old[i]] = old[i+1]
				}
			}
		}
	}
	if a.recorded == nil {
		a.recorded = map[string]deploy.ApplyResult{}
	}
	a.recorded[r.OperationID] = res
	if ctx.Err() != nil {
		return deploy.ApplyResult{}, ctx.Err()
	}
	return res, nil
}
func (a *agents) NodeCommand(_ context.Context, _ ids.ID, opID, name string, cmd deploy.NodeCommand) (deploy.NodeState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.commands = append(a.commands, opID+" "+name+" "+cmd.String())
	return deploy.NodeState{Name: name, Running: cmd != deploy.NodeStop, Desired: map[bool]string{true: "running", false: "stopped"}[cmd != deploy.NodeStop]}, nil
}
func (a *agents) NodeStatus(_ context.Context, _ ids.ID, names []string) ([]deploy.NodeState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []deploy.NodeState
	for _, n := range names {
		if r := a.crashing[n]; r > 0 {
			out = append(out, deploy.NodeState{Name: n, Desired: "running", Restarts: r, LastExit: "exit status 3"})
			continue
		}
		out = append(out, deploy.NodeState{Name: n, Running: true, Desired: "running"})
	}
	return out, nil
}
func (a *agents) NodeLogs(_ context.Context, _ ids.ID, name string, max int) ([]byte, error) {
	var b bytes.Buffer
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "log line %02d of %s\n", i, name)
	}
	return b.Bytes(), nil
}
func (a *agents) RemoveNode(_ context.Context, _ ids.ID, r deploy.RemoveRequest) ([]deploy.KeptDir, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removed = append(a.removed, r)
	return a.kept[r.Name], a.removeErr[r.Name]
}
func (a *agents) CheckHealth(_ context.Context, _ ids.ID, h deploy.HealthCheck) (bool, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if string(h.Send) == "srvr" {
		if h.TCPAddr == a.leader {
			return true, "Zookeeper version: 3.8\nMode: leader\n", nil
		}
		return true, "Zookeeper version: 3.8\nMode: follower\n", nil
	}
	if a.sick[h.TCPAddr] {
		return false, "connection refused", nil
	}
	a.events = append(a.events, "healthy "+h.TCPAddr)
	return true, "connected", nil
}

func (a *agents) snapshot() (events []string, deploys []deploy.DeployRequest, pushed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events), slices.Clone(a.deploys), slices.Clone(a.pushed)
}

type fixture struct {
	db       *store.DB
	clusters *cluster.Service
	configs  *config.Service
	pkgs     *pkg.Service
	zk, nats pkg.Package
	agents   *agents
	clock    *clock
	engine   *deploy.Engine
	servers  []fleet.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := clustertest.New(t, 5)
	db, gen := e.DB, e.IDs
	f := &fixture{db: db, agents: newAgents(), clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		pkgs: e.Packages, clusters: e.Clusters, configs: e.Configs}
	f.zk = e.Upload(t, "zookeeper-V3.8.4-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", zkManifest),
		at.File("conf/zoo.cfg", "tickTime=2000\ndataDir={dataDir}/zk\n{zkEnsemble}\n"),
		at.File("conf/myid.tpl", "{myid}\n"),
		at.File("bin/zkServer.sh", "#!/bin/sh\n"),
	))
	f.nats = e.Upload(t, "nats-V2.10.0-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", natsManifest),
		at.File("nats-server", "bin"),
		at.File("nats.conf", "port: {serverPort}\nzk: \"{zkServers}\"\ncluster {\n  routes: [{peers}]\n}\n"),
	))
	f.servers = e.AddServers(t, 3, false)
	f.engine = deploy.New(deploy.Deps{
		Store: db, Clusters: f.clusters, Configs: f.configs, Packages: f.pkgs, Agents: f.agents, Cleanups: db, IDs: gen,
		Now: f.clock.Now, Sleep: f.clock.Sleep, Registerer: prometheus.NewRegistry(),
	})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.engine.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// newCluster makes a cluster of three coordinators and two brokers.
func (f *fixture) newCluster(t *testing.T, name string) (cluster.Cluster, []cluster.Node) {
	t.Helper()
	c, nodes, err := f.clusters.Create(t.Context(), cluster.NewCluster{
		Name: name, Packages: map[string]ids.ID{cluster.Coordinator: f.zk.ID, cluster.Broker: f.nats.ID},
		Coordinators: clustertest.Specs("10.0.0.1", "10.0.0.2", "10.0.0.3"), Brokers: clustertest.Specs("10.0.0.1", "10.0.0.2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, nodes
}

// wait waits for the job to finish and returns it with its steps.
func (f *fixture) wait(t *testing.T, id ids.ID) (deploy.Job, []deploy.Step) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, steps, err := f.engine.Job(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Done() {
			return j, steps
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s: %+v", j.State, steps)
		}
		select {
		case <-f.engine.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stepOf(steps []deploy.Step, node ids.ID, name string) deploy.Step {
	for _, s := range steps {
		if s.NodeID == node && s.Name == name {
			return s
		}
	}
	return deploy.Step{}
}

func TestDeployClusterTiersInOrder(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	f.agents.present[f.zk.SHA256] = true // the zk package is on the agents already

	j, err := f.engine.DeployCluster(ctx, c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != deploy.JobPending || j.CreatedBy != "alice" || j.Type != deploy.TypeDeployCluster {
		t.Fatalf("job %+v", j)
	}
	j, steps := f.wait(t, j.ID)
	if j.State != deploy.JobSucceeded || j.Reason != "" || j.StartedAt.IsZero() || j.FinishedAt.IsZero() {
		t.Fatalf("job %+v", j)
	}
	if len(steps) != len(deploy.StepNames)*len(nodes) {
		t.Fatalf("%d steps", len(steps))
	}
	events, deploys, pushed := f.agents.snapshot()
	// Every coordinator is healthy before any broker is deployed.
	lastCoord, firstBroker := -1, len(events)
	for i, ev := range events {
		if strings.HasSuffix(ev, ":2181") {
			lastCoord = i
		}
		if strings.HasPrefix(ev, "deploy ") {
			for _, n := range nodes {
				if n.Component == cluster.Broker && ev == "deploy "+n.ID.String() {
					firstBroker = min(firstBroker, i)
				}
			}
		}
	}
	if lastCoord < 0 || lastCoord > firstBroker {
		t.Fatalf("tiers out of order: %v", events)
	}
	// Transfer skipped where the agent held the package.
	if !slices.Equal(pushed, []string{f.nats.SHA256, f.nats.SHA256}) {
		t.Fatalf("pushed %v", pushed)
	}
	for _, n := range nodes {
		tr := stepOf(steps, n.ID, deploy.StepTransfer)
		want := deploy.StepSucceeded
		if n.Component == cluster.Coordinator {
			want = deploy.StepSkipped
		}
		if tr.State != want {
			t.Fatalf("%s transfer %+v", n.NodeDir, tr)
		}
		for _, name := range []string{deploy.StepInstall, deploy.StepConfigure, deploy.StepStart, deploy.StepHealth} {
			if s := stepOf(steps, n.ID, name); s.State != deploy.StepSucceeded {
				t.Fatalf("%s %s %+v", n.NodeDir, name, s)
			}
		}
		got, _ := f.clusters.Node(ctx, n.ID)
		if got.DeployState != cluster.DeployDeployed || got.RunState != cluster.RunRunning {
			t.Fatalf("%s states %s %s", n.NodeDir, got.DeployState, got.RunState)
		}
	}
	// The deploy requests: install then start, an operation id per job,
	// node and step, expanded argv, env, log dir; the config goes apart.
	for _, r := range deploys {
		id, _ := ids.Parse(r.Name)
		step := deploy.StepInstall
		if r.Start {
			step = deploy.StepStart
		}
		if r.OperationID != deploy.OperationID(j.ID, id, step) {
			t.Fatalf("operation id %q", r.OperationID)
		}
		if strings.Contains(strings.Join(r.Argv, " "), "{") || !strings.HasPrefix(r.LogDir, "/data/admq/c1/") || len(r.ConfigFiles) != 0 {
			t.Fatalf("request %+v", r)
		}
		if r.PackageFormat != "tar.gz" || r.WorkDir != r.ProgramDir {
			t.Fatalf("request %+v", r)
		}
	}
	if len(deploys) != 2*len(nodes) {
		t.Fatalf("%d deploy requests for %d nodes", len(deploys), len(nodes))
	}
	var zk1 deploy.DeployRequest
	for _, r := range deploys {
		if strings.HasSuffix(r.ProgramDir, "/coordinator-1") {
			zk1 = r
		}
	}
	var zk1Apply deploy.ApplyRequest
	for _, r := range f.agents.applied() {
		if strings.HasSuffix(r.ProgramDir, "/coordinator-1") {
			zk1Apply = r
		}
	}
	if cf := zk1Apply.ConfigFiles; len(cf) != 2 || !strings.Contains(string(cf[0].Content), "server.3=") ||
		string(cf[1].Content) != "1\n" || cf[1].Path != "/data/admq/c1/coordinator-1/myid" || zk1Apply.Restart != deploy.RestartNever {
		t.Fatalf("config apply %+v", zk1Apply)
	}
	if !slices.Equal(zk1.Env, []string{"ZOO_MYID=1"}) || zk1.Argv[2] != "/data/admq/c1/coordinator-1" {
		t.Fatalf("argv %v env %v", zk1.Argv, zk1.Env)
	}

	// A second deploy: new job, new operation ids.
	j2, err := f.engine.DeployNode(ctx, nodes[0].ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if j2, _ = f.wait(t, j2.ID); j2.State != deploy.JobSucceeded || j2.NodeID != nodes[0].ID {
		t.Fatalf("job 2 %+v", j2)
	}
	_, deploys, _ = f.agents.snapshot()
	if last := deploys[len(deploys)-1]; last.OperationID != deploy.OperationID(j2.ID, nodes[0].ID, deploy.StepStart) || last.OperationID == deploys[1].OperationID {
		t.Fatalf("operation ids %q %q", last.OperationID, deploys[0].OperationID)
	}
	list, total, err := f.engine.Jobs(ctx, c.ID, paging.Page{Num: 1, Size: 10})
	if err != nil || total != 2 || list[0].ID != j2.ID {
		t.Fatalf("jobs %v %d %v", list, total, err)
	}
}

// The start step says what the agent did: started the node, restarted it
// for a changed package or config, or left it running.
func TestStartStepSaysWhatTheAgentDid(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, nodes := f.newCluster(t, "c1")
	n := nodes[0]
	argv := "/opt/admq/c1/" + n.NodeDir + "/bin/zkServer.sh start-foreground /data/admq/c1/" + n.NodeDir
	running := deploy.NodeState{Name: n.ID.String(), Running: true, Desired: "running", PID: 42}
	for _, tc := range []struct {
		name   string
		result deploy.DeployResult
		want   string
	}{
		{"not running", deploy.DeployResult{Started: true, Unpacked: true, State: running}, "started: " + argv},
		// The first configure writes the files: the restart names them.
		{"config changed", deploy.DeployResult{Restarted: true, State: running}, "restarted to apply the changed zoo.cfg, myid: " + argv},
		{"command changed", deploy.DeployResult{Restarted: true, State: running}, "restarted to apply its changes: " + argv},
		{"nothing changed", deploy.DeployResult{State: running}, "already running with this package and config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "config changed" {
				f.agents.set(func() { f.agents.files = nil })
			}
			f.agents.mu.Lock()
			f.agents.results[n.ID.String()] = tc.result
			f.agents.mu.Unlock()
			j, err := f.engine.DeployNode(ctx, n.ID, "alice")
			if err != nil {
				t.Fatal(err)
			}
			j, steps := f.wait(t, j.ID)
			if s := stepOf(steps, n.ID, deploy.StepStart); j.State != deploy.JobSucceeded || s.State != deploy.StepSucceeded || s.Detail != tc.want {
				t.Fatalf("job %s, start step %s: %q; want %q", j.State, s.State, s.Detail, tc.want)
			}
		})
	}
}

func TestHealthFailureFailsTheJob(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	f.agents.sick["10.0.0.2:2181"] = true
	j, err := f.engine.DeployCluster(ctx, c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	j, steps := f.wait(t, j.ID)
	if j.State != deploy.JobFailed || !strings.Contains(j.Reason, "coordinator-2") || !strings.Contains(j.Reason, "connection refused") {
		t.Fatalf("job %+v", j)
	}
	if !strings.Contains(j.Reason, "log line 30") || !strings.Contains(j.Reason, "log line 11") || strings.Contains(j.Reason, "log line 10") {
		t.Fatalf("reason lacks the last 20 log lines: %s", j.Reason)
	}
	events, _, _ := f.agents.snapshot()
	for _, ev := range events {
		if strings.HasSuffix(ev, ":4222") {
			t.Fatalf("a broker was checked after its coordinators failed: %v", events)
		}
	}
	for _, n := range nodes {
		got, _ := f.clusters.Node(ctx, n.ID)
		h := stepOf(steps, n.ID, deploy.StepHealth)
		switch {
		case n.NodeDir == "coordinator-2":
			if h.State != deploy.StepFailed || !strings.Contains(h.Detail, "log line 30") || got.DeployState != cluster.DeployFailed || got.RunState != cluster.RunFailed {
				t.Fatalf("sick node: %+v %s %s", h, got.DeployState, got.RunState)
			}
		case n.Component == cluster.Broker:
			if h.State != deploy.StepCancelled || got.DeployState != cluster.DeployUndeployed {
				t.Fatalf("broker: %+v %s", h, got.DeployState)
			}
		default:
			// The healthy coordinators run beside the sick one: each either
			// finished first, or was stopped when the sick one failed.
			finished := h.State == deploy.StepSucceeded && got.DeployState == cluster.DeployDeployed
			stopped := h.State == deploy.StepCancelled && got.DeployState != cluster.DeployDeployed && got.DeployState != cluster.DeployDeploying
			if !finished && !stopped {
				t.Fatalf("healthy coordinator: %+v %s", h, got.DeployState)
			}
		}
	}
}

func TestCrashLoopingNodeFailsHealthAtOnce(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	sick := nodes[0]
	f.agents.sick[net.JoinHostPort(sick.ManagerIP, strconv.Itoa(sick.ServerPort))] = true
	f.agents.crashing[sick.ID.String()] = 3
	began := f.clock.Now()
	j, err := f.engine.DeployCluster(ctx, c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	j, steps := f.wait(t, j.ID)
	h := stepOf(steps, sick.ID, deploy.StepHealth)
	if j.State != deploy.JobFailed || h.State != deploy.StepFailed ||
		!strings.Contains(h.Detail, "exited 3 times since it was started (last: exit status 3)") || !strings.Contains(h.Detail, "log line 30") {
		t.Fatalf("job %s, health step %s: %s", j.State, h.State, h.Detail)
	}
	if !strings.Contains(h.Detail, "stopped it so that it does not keep restarting") ||
		!slices.Contains(f.agents.commands, j.ID.String()+":"+sick.ID.String()+":stop-crashing "+sick.ID.String()+" stop") {
		t.Fatalf("the crash-looping node was not stopped: %s; commands %v", h.Detail, f.agents.commands)
	}
	// It did not wait out the start window (60 s on the fake clock).
	if waited := f.clock.Now().Sub(began); waited >= deploy.DefaultHealthStart {
		t.Fatalf("the health step waited %v of fake time", waited)
	}
}

func TestDeployRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	f.agents.offline[f.servers[2].ID] = true
	_, err := f.engine.DeployCluster(ctx, c.ID, "alice")
	if !errors.Is(err, deploy.ErrNodeUnavailable) || !strings.Contains(err.Error(), "coordinator-3 on 10.0.0.3") {
		t.Fatalf("offline: %v", err)
	}
	if _, total, _ := f.engine.Jobs(ctx, 0, paging.Page{Num: 1, Size: 10}); total != 0 {
		t.Fatalf("%d jobs stored", total)
	}
	for _, n := range nodes {
		if got, _ := f.clusters.Node(ctx, n.ID); got.DeployState != cluster.DeployUndeployed {
			t.Fatalf("%s %s", n.NodeDir, got.DeployState)
		}
	}
	if _, err := f.engine.DeployNode(ctx, 12345, "alice"); !errors.Is(err, deploy.ErrNothingToDeploy) {
		t.Fatalf("unknown node: %v", err)
	}
	if _, err := f.engine.DeployCluster(ctx, 12345, "alice"); !errors.Is(err, cluster.ErrClusterNotFound) {
		t.Fatalf("unknown cluster: %v", err)
	}
}

func TestRecoverFailsRunningJobs(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	gen, _ := ids.NewGenerator(9)
	j := deploy.Job{ID: gen.Next(), Type: deploy.TypeDeployNode, ClusterID: c.ID, NodeID: nodes[0].ID, State: deploy.JobRunning, CreatedAt: f.clock.Now()}
	steps := []deploy.Step{{ID: gen.Next(), JobID: j.ID, NodeID: nodes[0].ID, Name: deploy.StepStart, State: deploy.StepRunning},
		{ID: gen.Next(), JobID: j.ID, NodeID: nodes[0].ID, Name: deploy.StepHealth, State: deploy.StepPending}}
	if err := f.db.CreateJob(ctx, j, steps, []ids.ID{nodes[0].ID}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// The node is deploying: a new job is refused.
	if _, err := f.engine.DeployNode(ctx, nodes[0].ID, "x"); !errors.Is(err, deploy.ErrNodeUnavailable) {
		t.Fatalf("deploying node: %v", err)
	}
	if err := f.engine.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, st, err := f.engine.Job(ctx, j.ID)
	if err != nil || got.State != deploy.JobFailed || got.Reason != deploy.ReasonRestarted || got.FinishedAt.IsZero() ||
		st[0].State != deploy.StepFailed || st[1].State != deploy.StepCancelled || st[1].Detail != "not run: "+deploy.ReasonRestarted {
		t.Fatalf("job %+v %+v %v", got, st, err)
	}
	if n, _ := f.clusters.Node(ctx, nodes[0].ID); n.DeployState != cluster.DeployFailed {
		t.Fatalf("node %s", n.DeployState)
	}
}

// healthUntilCancelled is agents whose health checks hang until their
// context ends.
type healthUntilCancelled struct{ *agents }

func (healthUntilCancelled) CheckHealth(ctx context.Context, _ ids.ID, _ deploy.HealthCheck) (bool, string, error) {
	<-ctx.Done()
	return false, "", ctx.Err()
}

// lockedBuffer is a bytes.Buffer for a logger used by several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestStopMidJobThenRecover: the manager stops while the coordinators wait
// for their health checks. The brokers, not reached, are written cancelled
// with their state from before the job (no write fails on the cancelled
// context); the job and the coordinators are left to Recover, which fails
// the health steps and the job. No step is left running or pending.
func TestStopMidJobThenRecover(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	var logs lockedBuffer
	ag := healthUntilCancelled{f.agents}
	gen, _ := ids.NewGenerator(11)
	eng := deploy.New(deploy.Deps{
		Store: f.db, Clusters: f.clusters, Configs: f.configs, Packages: f.pkgs, Agents: ag, IDs: gen,
		Now: f.clock.Now, Sleep: f.clock.Sleep, Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	j, err := eng.DeployCluster(ctx, c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// Stopped once every coordinator is in its health step.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, steps, err := eng.Job(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		running := 0
		for _, s := range steps {
			if s.Name == deploy.StepHealth && s.State == deploy.StepRunning {
				running++
			}
		}
		if running == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d health steps running after 10s: %+v", running, steps)
		}
	}
	stop()
	<-done
	if l := logs.String(); strings.Contains(l, "level=ERROR") {
		t.Errorf("errors logged while stopping:\n%s", l)
	}
	got, steps, err := eng.Job(ctx, j.ID)
	if err != nil || got.State != deploy.JobRunning {
		t.Fatalf("job after the stop: %+v %v (want running: Recover settles it)", got, err)
	}
	for _, n := range nodes {
		for _, s := range steps {
			if s.NodeID == n.ID && n.Component == cluster.Broker &&
				(s.State != deploy.StepCancelled || s.Detail != "not run: "+deploy.NotRunStopping) {
				t.Errorf("broker %s step %s after the stop: %+v", n.NodeDir, s.Name, s)
			}
		}
		want := cluster.DeployDeploying
		if n.Component == cluster.Broker {
			want = n.DeployState // as before the job
		}
		if got, _ := f.clusters.Node(ctx, n.ID); got.DeployState != want {
			t.Errorf("%s deploy state after the stop %q, want %q", n.NodeDir, got.DeployState, want)
		}
	}

	// The next run of the manager.
	if err := f.engine.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got, steps, _ = f.engine.Job(ctx, j.ID)
	if got.State != deploy.JobFailed || got.Reason != deploy.ReasonRestarted {
		t.Fatalf("job after Recover: %+v", got)
	}
	for _, s := range steps {
		if s.State == deploy.StepRunning || s.State == deploy.StepPending {
			t.Errorf("step %s of node %s still %s after Recover", s.Name, s.NodeID, s.State)
		}
		if s.Name == deploy.StepHealth && slices.ContainsFunc(nodes, func(n cluster.Node) bool { return n.ID == s.NodeID && n.Component == cluster.Coordinator }) &&
			(s.State != deploy.StepFailed || s.Detail != deploy.ReasonRestarted) {
			t.Errorf("coordinator health step after Recover: %+v", s)
		}
	}
	for _, n := range nodes {
		if got, _ := f.clusters.Node(ctx, n.ID); got.DeployState == cluster.DeployDeploying {
			t.Errorf("%s still deploying after Recover", n.NodeDir)
		}
	}
}

func TestCommandLogsStatusTeardown(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	st, err := f.engine.Command(ctx, nodes[0].ID, deploy.CmdStop)
	if err != nil || st.Running {
		t.Fatalf("stop: %+v %v", st, err)
	}
	if n, _ := f.clusters.Node(ctx, nodes[0].ID); n.RunState != cluster.RunStopped {
		t.Fatalf("run state %s", n.RunState)
	}
	if _, err := f.engine.Command(ctx, nodes[0].ID, "reboot"); err == nil {
		t.Fatal("bad command accepted")
	}
	if _, err := f.engine.Command(ctx, 999, deploy.CmdStart); !errors.Is(err, cluster.ErrNodeNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	f.agents.offline[f.servers[2].ID] = true
	if _, err := f.engine.Command(ctx, nodes[2].ID, deploy.CmdStart); !errors.Is(err, fleet.ErrAgentNotOnline) {
		t.Fatalf("offline: %v", err)
	}
	if len(f.agents.commands) != 1 {
		t.Fatalf("commands sent %v", f.agents.commands)
	}
	logs, err := f.engine.Logs(ctx, nodes[0].ID, 0)
	if err != nil || !bytes.Contains(logs, []byte("log line 30")) {
		t.Fatalf("logs %q %v", logs, err)
	}
	live := f.engine.LiveRunStates(ctx, nodes)
	if live[nodes[0].ID].Run != cluster.RunRunning || !live[nodes[0].ID].Node.Running || live[nodes[2].ID].Run != cluster.RunUnknown {
		t.Fatalf("live %v", live)
	}

	_, notCleaned, err := f.engine.DeleteCluster(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(notCleaned) != 1 || notCleaned[0].NodeID != nodes[2].ID || notCleaned[0].ManagerIP != "10.0.0.3" || !notCleaned[0].Queued {
		t.Fatalf("not cleaned %+v", notCleaned)
	}
	if len(f.agents.removed) != len(nodes)-1 {
		t.Fatalf("removed %d", len(f.agents.removed))
	}
	r := f.agents.removed[0]
	if !r.RemoveDirs || !slices.Contains(r.AllowedRoots, filepath.Dir(r.ProgramDir)) || !slices.Contains(r.AllowedRoots, filepath.Dir(r.DataDir)) {
		t.Fatalf("remove %+v", r)
	}
}

// TestConfigureTargetsAndPeers: each coordinator's myid goes to its data
// dir with its own ordinal, though the agents held the package (transfer
// skipped), and each broker's routes list every broker.
func TestConfigureTargetsAndPeers(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	f.agents.present[f.zk.SHA256] = true
	f.agents.present[f.nats.SHA256] = true
	j, err := f.engine.DeployCluster(ctx, c.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if j, steps := f.wait(t, j.ID); j.State != deploy.JobSucceeded {
		t.Fatalf("job %+v %+v", j, steps)
	}
	byName := map[string]deploy.ApplyRequest{}
	for _, r := range f.agents.applied() {
		byName[r.Name] = r
	}
	for _, n := range nodes {
		r, ok := byName[n.ID.String()]
		if !ok {
			t.Fatalf("%s not configured", n.NodeDir)
		}
		files := map[string]string{}
		for _, cf := range r.ConfigFiles {
			files[cf.Path] = string(cf.Content)
		}
		switch n.Component {
		case cluster.Coordinator:
			myid := n.DataDir + "/myid"
			if got := files[myid]; got != strconv.Itoa(n.Ordinal)+"\n" || len(files) != 2 || files["conf/zoo.cfg"] == "" {
				t.Errorf("%s config files %q, want %s = %d", n.NodeDir, files, myid, n.Ordinal)
			}
		case cluster.Broker:
			want := "routes: [nats-route://10.0.0.1:6222, nats-route://10.0.0.2:6222]\n"
			if got := files["nats.conf"]; !strings.Contains(got, want) {
				t.Errorf("%s nats.conf:\n%s\nwant %q", n.NodeDir, got, want)
			}
		}
	}
}

func (a *agents) set(fn func()) { a.mu.Lock(); defer a.mu.Unlock(); fn() }

func (a *agents) applied() []deploy.ApplyRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.applies)
}

// removals returns the removal requests sent for the node named name.
func (a *agents) removals(name string) []deploy.RemoveRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []deploy.RemoveRequest
	for _, r := range a.removed {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

// teardownRequest is the removal Teardown sends for node n of cluster c.
func teardownRequest(c cluster.Cluster, n cluster.Node) deploy.RemoveRequest {
	return deploy.RemoveRequest{
		OperationID: "teardown:" + c.ID.String() + ":" + n.ID.String(), Name: n.ID.String(), RemoveDirs: true,
		ProgramDir: n.ProgramDir, DataDir: n.DataDir, AllowedRoots: []string{filepath.Dir(n.ProgramDir), filepath.Dir(n.DataDir)},
	}
}

func sameRemoval(a, b deploy.RemoveRequest) bool {
	return a.OperationID == b.OperationID && a.Name == b.Name && a.RemoveDirs == b.RemoveDirs &&
		a.ProgramDir == b.ProgramDir && a.DataDir == b.DataDir && slices.Equal(a.AllowedRoots, b.AllowedRoots)
}

func (f *fixture) cleanups(t *testing.T, server ids.ID) []deploy.Cleanup {
	t.Helper()
	list, err := f.db.ServerCleanups(t.Context(), server)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestTeardownQueuesCleanups: a delete queues the removal of a node whose
// agent is offline, and of one whose agent went away during the removal,
// but not of one the agent refused; the queued removal is the request
// Teardown sends. When the agent is back, a failing removal is kept with
// its error and counted; the next one, on the agent's connection, is the
// same request and empties the queue.
func TestTeardownQueuesCleanups(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	// nodes: coordinators on 10.0.0.1-3, then brokers on 10.0.0.1-2.
	offline, lost, refused := nodes[2], nodes[1], nodes[4]
	if offline.ServerID != f.servers[2].ID || lost.ServerID != f.servers[1].ID || refused.Component != cluster.Broker || refused.ServerID != f.servers[1].ID {
		t.Fatalf("unexpected placement %+v", nodes)
	}
	f.agents.set(func() {
		f.agents.offline[f.servers[2].ID] = true
		f.agents.removeErr[lost.ID.String()] = fmt.Errorf("remove node %s on agent %s: %w", lost.ID, lost.ServerID, fleet.ErrAgentNotOnline)
		f.agents.removeErr[refused.ID.String()] = &invalid.Error{Reason: "data_dir: outside the allowed roots"}
	})
	_, notCleaned, err := f.engine.DeleteCluster(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[ids.ID]cluster.Uncleaned{}
	for _, u := range notCleaned {
		got[u.NodeID] = u
	}
	if len(notCleaned) != 3 {
		t.Fatalf("not cleaned %+v", notCleaned)
	}
	if u := got[offline.ID]; !u.Queued || u.Reason != deploy.ReasonQueuedOffline || u.ManagerIP != "10.0.0.3" {
		t.Errorf("offline node: %+v", u)
	}
	if u := got[lost.ID]; !u.Queued || !strings.Contains(u.Reason, "went away") || !strings.Contains(u.Reason, "cleaned when it reconnects") {
		t.Errorf("node whose agent went away: %+v", u)
	}
	if u := got[refused.ID]; u.Queued || !strings.Contains(u.Reason, "outside the allowed roots") {
		t.Errorf("refused node: %+v", u)
	}

	// The queue: one row per node, carrying the request Teardown sends.
	q3 := f.cleanups(t, f.servers[2].ID)
	if len(q3) != 1 || q3[0].Node != offline.ID.String() || q3[0].ClusterName != "c1" || q3[0].Reason != deploy.ReasonQueuedOffline ||
		q3[0].Attempts != 0 || !q3[0].CreatedAt.Equal(f.clock.Now()) || q3[0].ManagerIP != "10.0.0.3" {
		t.Fatalf("server 3 queue %+v", q3)
	}
	if !sameRemoval(q3[0].Request(), teardownRequest(c, offline)) {
		t.Fatalf("queued request %+v, want %+v", q3[0].Request(), teardownRequest(c, offline))
	}
	q2 := f.cleanups(t, f.servers[1].ID)
	if sent := f.agents.removals(lost.ID.String()); len(q2) != 1 || len(sent) != 1 || !sameRemoval(q2[0].Request(), sent[0]) {
		t.Fatalf("server 2 queue %+v, sent %+v", q2, sent)
	}
	if n, err := f.engine.CleanServer(ctx, f.servers[2].ID); n != 0 || err != nil || len(f.agents.removals(offline.ID.String())) != 0 {
		t.Fatalf("cleaned %d (%v) while the agent is offline", n, err)
	}

	// Back online, the removal fails: kept, counted, with its error.
	f.agents.set(func() {
		f.agents.offline[f.servers[2].ID] = false
		f.agents.removeErr[offline.ID.String()] = errors.New("remove node on agent: stop: permission denied")
	})
	if n, err := f.engine.CleanServer(ctx, f.servers[2].ID); n != 0 || err != nil {
		t.Fatalf("failing removal: %d %v", n, err)
	}
	q3 = f.cleanups(t, f.servers[2].ID)
	if len(q3) != 1 || q3[0].Attempts != 1 || q3[0].LastError != "remove node on agent: stop: permission denied" || !q3[0].LastAttemptAt.Equal(f.clock.Now()) {
		t.Fatalf("after a failed attempt %+v", q3)
	}

	// The agent connects: RunCleanups sends the same request and the row goes.
	f.agents.set(func() { delete(f.agents.removeErr, offline.ID.String()) })
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.engine.RunCleanups(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	f.engine.AgentConnected(f.servers[2].ID)
	deadline := time.Now().Add(10 * time.Second)
	for len(f.cleanups(t, f.servers[2].ID)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue of server 3 after the agent connected: %+v", f.cleanups(t, f.servers[2].ID))
		}
		time.Sleep(5 * time.Millisecond)
	}
	sent := f.agents.removals(offline.ID.String())
	if len(sent) != 2 || !sameRemoval(sent[0], teardownRequest(c, offline)) || !sameRemoval(sent[1], teardownRequest(c, offline)) {
		t.Fatalf("removals sent for the offline node %+v", sent)
	}

	// The other server's, directly.
	f.agents.set(func() { delete(f.agents.removeErr, lost.ID.String()) })
	if n, err := f.engine.CleanServer(ctx, f.servers[1].ID); n != 1 || err != nil || len(f.cleanups(t, f.servers[1].ID)) != 0 {
		t.Fatalf("server 2: cleaned %d %v, left %+v", n, err, f.cleanups(t, f.servers[1].ID))
	}
	if list, total, err := f.engine.Cleanups(ctx, 0, paging.Page{Num: 1, Size: 10}); total != 0 || len(list) != 0 || err != nil {
		t.Fatalf("queue %d %+v %v", total, list, err)
	}
}

// TestCleanupWaitsForRecordedNode: a queued removal of a node that is
// still recorded (its cluster's delete has not finished) is not sent.
func TestCleanupWaitsForRecordedNode(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.newCluster(t, "c1")
	n := nodes[0]
	req := teardownRequest(c, n)
	err := f.db.QueueCleanup(ctx, deploy.Cleanup{ID: 77, ServerID: n.ServerID, Node: req.Name, ClusterName: c.Name,
		OperationID: req.OperationID, ProgramDir: req.ProgramDir, DataDir: req.DataDir, AllowedRoots: req.AllowedRoots,
		Reason: deploy.ReasonQueuedOffline, CreatedAt: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := f.engine.CleanServer(ctx, n.ServerID); done != 0 || err != nil || len(f.agents.removals(req.Name)) != 0 {
		t.Fatalf("cleaned %d %v, sent %+v", done, err, f.agents.removals(req.Name))
	}
	if q := f.cleanups(t, n.ServerID); len(q) != 1 || q[0].Attempts != 0 {
		t.Fatalf("queue %+v", q)
	}
}

// TestTeardownReportsKeptDirs: dirs the agent kept are in notCleaned with
// its reason (the node itself is gone, so not queued); a dir recorded
// before the manager refused system dirs, or directly under /, is not
// even sent to the agent, so that an older agent does not remove it.
func TestTeardownReportsKeptDirs(t *testing.T) {
	f := newFixture(t)
	c, nodes := f.newCluster(t, "c1")
	const noMarker = "it has no install marker: the agent did not create it"
	f.agents.kept = map[string][]deploy.KeptDir{nodes[0].ID.String(): {{Path: nodes[0].DataDir, Reason: noMarker}}}
	nodes[1].ProgramDir = "/usr/lib/legacy"
	nodes[2].DataDir = "/zk"
	out, err := f.engine.Teardown(t.Context(), c, nodes)
	if err != nil {
		t.Fatal(err)
	}
	got := map[ids.ID]cluster.Uncleaned{}
	for _, u := range out {
		got[u.NodeID] = u
	}
	for i, want := range []struct{ dir, reason string }{
		{nodes[0].DataDir, "kept " + nodes[0].DataDir + ": " + noMarker},
		{"/usr/lib/legacy", "kept /usr/lib/legacy: /usr/lib/legacy is a system directory"},
		{"/zk", "kept /zk: it is directly under /"},
	} {
		u := got[nodes[i].ID]
		if u.Queued || !slices.Equal(u.Dirs, []string{want.dir}) || !strings.Contains(u.Reason, want.reason) || !strings.HasPrefix(u.Reason, "node stopped and removed") {
			t.Errorf("node %d: notCleaned %+v, want %s kept: %q", i, u, want.dir, want.reason)
		}
	}
	sent := map[string]deploy.RemoveRequest{}
	for _, r := range f.agents.removed {
		sent[r.Name] = r
	}
	if r := sent[nodes[1].ID.String()]; r.ProgramDir != "" || r.DataDir != nodes[1].DataDir || !slices.Equal(r.AllowedRoots, []string{filepath.Dir(nodes[1].DataDir)}) {
		t.Errorf("removal of the node with a system dir: %+v", r)
	}
	if r := sent[nodes[2].ID.String()]; r.DataDir != "" || r.ProgramDir != nodes[2].ProgramDir || !r.RemoveDirs {
		t.Errorf("removal of the node with a dir under /: %+v", r)
	}
}
