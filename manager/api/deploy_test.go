package api

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/deploy"
)

// nodeAgents fakes the nodes' agents for the deploy engine: every call
// succeeds, and servers in offline have no session.
type nodeAgents struct {
	mu      sync.Mutex
	offline map[ids.ID]bool
	removed []string
	// uninstalled are node names the agents do not know.
	uninstalled map[string]bool
}

func (a *nodeAgents) Online(id ids.ID) bool { a.mu.Lock(); defer a.mu.Unlock(); return !a.offline[id] }
func (a *nodeAgents) HasPackage(context.Context, ids.ID, string) (bool, int64, error) {
	return false, 0, nil
}
func (a *nodeAgents) PushPackage(context.Context, ids.ID, string, int64, io.ReaderAt) (int64, error) {
	return 0, nil
}
func (a *nodeAgents) DeployNode(context.Context, ids.ID, deploy.DeployRequest) (deploy.DeployResult, error) {
	return deploy.DeployResult{}, nil
}
func (a *nodeAgents) ApplyConfig(_ context.Context, _ ids.ID, r deploy.ApplyRequest) (deploy.ApplyResult, error) {
	return deploy.ApplyResult{Healthy: true}, nil
}
func (a *nodeAgents) NodeCommand(_ context.Context, _ ids.ID, _, name string, cmd deploy.NodeCommand) (deploy.NodeState, error) {
	if cmd == deploy.NodeStop {
		return deploy.NodeState{Name: name, Desired: "stopped"}, nil
	}
	return deploy.NodeState{Name: name, Running: true, PID: 42, Desired: "running"}, nil
}
func (a *nodeAgents) NodeStatus(_ context.Context, _ ids.ID, names []string) ([]deploy.NodeState, error) {
	var out []deploy.NodeState
	for _, n := range names {
		out = append(out, deploy.NodeState{Name: n, Running: true, Desired: "running"})
	}
	return out, nil
}
func (a *nodeAgents) NodeLogs(_ context.Context, _ ids.ID, name string, _ int) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.uninstalled[name] {
		return nil, fmt.Errorf("node logs on agent 1: %w", deploy.ErrNodeNotInstalled)
	}
	return []byte("started " + name + "\n"), nil
}
func (a *nodeAgents) RemoveNode(_ context.Context, _ ids.ID, r deploy.RemoveRequest) ([]deploy.KeptDir, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removed = append(a.removed, r.Name)
	return nil, nil
}
func (a *nodeAgents) CheckHealth(context.Context, ids.ID, deploy.HealthCheck) (bool, string, error) {
	return true, "connected", nil
}

// newDeployHarness is newClusterHarness with a deploy engine on fake agents.
func newDeployHarness(t *testing.T) (h *harness, op, zk string, agents *nodeAgents) {
	t.Helper()
	h, op, zk, _ = newClusterHarness(t)
	d0 := h.deps(t)
	agents = &nodeAgents{offline: map[ids.ID]bool{}, uninstalled: map[string]bool{}}
	gen, _ := ids.NewGenerator(6)
	eng := deploy.New(deploy.Deps{Store: h.db, Clusters: d0.Clusters, Configs: d0.Config, Packages: d0.Packages, Agents: agents, Cleanups: h.db, IDs: gen,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deps := h.deps
	h.deps = func(t testing.TB) Deps {
		d := deps(t)
		d.Deploy = eng
		return d
	}
	h.srv.Close()
	h.srv = httptest.NewServer(New(h.deps(t)))
	t.Cleanup(h.srv.Close)
	return h, op, zk, agents
}

type jobItem struct {
	ID, Type, ClusterID, NodeID, State, Reason, CreatedBy, CreateTime string
	Nodes                                                             []struct {
		NodeID string
		Steps  []struct{ Name, State, Detail string }
	}
}

func (h *harness) events(token, id string) string {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+Prefix+"/job/events?id="+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		h.t.Fatalf("content type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestDeployAPI(t *testing.T) {
	h, op, zk, agents := newDeployHarness(t)
	viewer := h.userToken("viewer")
	r := h.call("POST", "/admq/cluster", op, map[string]any{"name": "c1", "packageId": zk, "zkList": zkList("10.1.0.1", "10.1.0.2", "10.1.0.3")})
	want(t, r, 200, 0)
	cl := decodeData[clusterItem](t, r)

	want(t, h.call("POST", "/admq/cluster/deploy", viewer, map[string]any{"clusterId": cl.ID}), 403, codePermissionDeny)
	want(t, h.call("POST", "/admq/cluster/deploy", op, map[string]any{}), 400, codeParamInvalid)
	want(t, h.call("POST", "/admq/cluster/node/deploy", op, map[string]any{"nodeId": "123"}), 404, codeNothingToDeploy)

	// One agent offline: 1407, no job.
	srv3, err := h.db.ServerByManagerIP(t.Context(), "10.1.0.3")
	if err != nil {
		t.Fatal(err)
	}
	agents.mu.Lock()
	agents.offline[srv3.ID] = true
	agents.mu.Unlock()
	r = h.call("POST", "/admq/cluster/deploy", op, map[string]any{"clusterId": cl.ID})
	want(t, r, 409, codeNodeUnavailable)
	if !strings.Contains(r.Message, "10.1.0.3") {
		t.Fatalf("message %q", r.Message)
	}
	if p := decodeData[page[jobItem]](t, h.call("GET", "/job?clusterId="+cl.ID, viewer, nil)); p.Total != 0 {
		t.Fatalf("jobs %+v", p)
	}
	agents.mu.Lock()
	agents.offline[srv3.ID] = false
	agents.mu.Unlock()

	r = h.call("POST", "/admq/cluster/deploy", op, map[string]any{"clusterId": cl.ID})
	want(t, r, 200, 0)
	job := decodeData[jobItem](t, r)
	if job.State != "pending" || job.Type != "deploy_cluster" || job.ClusterID != cl.ID || job.CreatedBy != "operator-user" {
		t.Fatalf("job %+v", job)
	}
	stream := h.events(viewer, job.ID)
	if !strings.HasPrefix(stream, "event: job\ndata: ") || !strings.Contains(stream, "event: step\n") ||
		!strings.Contains(stream, "event: done\ndata: ") || !strings.Contains(stream, `"state":"succeeded"`) {
		t.Fatalf("stream:\n%s", stream)
	}
	r = h.call("GET", "/job/detail?id="+job.ID, viewer, nil)
	want(t, r, 200, 0)
	d := decodeData[jobItem](t, r)
	if d.State != "succeeded" || len(d.Nodes) != 3 || len(d.Nodes[0].Steps) != 5 || d.Nodes[0].Steps[4].Name != "health" || d.Nodes[0].Steps[4].State != "succeeded" {
		t.Fatalf("detail %+v", d)
	}
	want(t, h.call("GET", "/job/detail?id=99", viewer, nil), 404, codeJobNotExist)
	if p := decodeData[page[jobItem]](t, h.call("GET", "/job?clusterId="+cl.ID, viewer, nil)); p.Total != 1 || p.List[0].ID != job.ID {
		t.Fatalf("jobs %+v", p)
	}

	// Nodes report what the agents see.
	nodes := decodeData[page[nodeItem]](t, h.call("GET", "/cluster/node?clusterId="+cl.ID, viewer, nil))
	if nodes.Total != 3 || nodes.List[0].DeployStatus != "deployed" || nodes.List[0].RunStatus != "running" {
		t.Fatalf("nodes %+v", nodes.List)
	}
	n1 := nodes.List[0].ID
	r = h.call("POST", "/admq/cluster/node/deploy", op, map[string]any{"clusterId": "77", "nodeId": n1})
	want(t, r, 400, codeParamInvalid)

	// Commands.
	want(t, h.call("POST", "/admq/cmd", op, map[string]any{"id": n1, "cmd": "reboot"}), 400, codeParamInvalid)
	want(t, h.call("POST", "/admq/cmd", op, map[string]any{"id": "5", "cmd": "start"}), 404, codeNodeNotExist)
	want(t, h.call("POST", "/admq/cmd", viewer, map[string]any{"id": n1, "cmd": "stop"}), 403, codePermissionDeny)
	r = h.call("POST", "/admq/cmd", op, map[string]any{"id": n1, "cmd": "stop"})
	want(t, r, 200, 0)
	if st := decodeData[struct{ RunStatus string }](t, r); st.RunStatus != "stopped" {
		t.Fatalf("state %+v", st)
	}
	r = h.call("GET", "/cluster/node/log?id="+n1, viewer, nil)
	want(t, r, 200, 0)
	if l := decodeData[struct{ Log string }](t, r); !strings.Contains(l.Log, "started "+n1) {
		t.Fatalf("log %+v", l)
	}
	want(t, h.call("GET", "/cluster/node/log?id="+n1+"&maxBytes=9999999", viewer, nil), 400, codeParamInvalid)
	// A node its agent never installed (its deploy failed before start).
	agents.mu.Lock()
	agents.uninstalled[nodes.List[1].ID] = true
	agents.mu.Unlock()
	want(t, h.call("GET", "/cluster/node/log?id="+nodes.List[1].ID, viewer, nil), 409, codeNodeNotInstalled)

	// An offline agent: 1253, unknown run state, not cleaned on delete.
	agents.mu.Lock()
	agents.offline[srv3.ID] = true
	agents.mu.Unlock()
	n3 := nodes.List[2].ID
	want(t, h.call("POST", "/admq/cmd", op, map[string]any{"id": n3, "cmd": "start"}), 502, codeServerCannotConnect)
	nodes = decodeData[page[nodeItem]](t, h.call("GET", "/cluster/node?clusterId="+cl.ID, viewer, nil))
	if nodes.List[2].RunStatus != "unknown" {
		t.Fatalf("offline node %+v", nodes.List[2])
	}
	r = h.call("DELETE", "/cluster?id="+cl.ID, op, nil)
	want(t, r, 200, 0)
	del := decodeData[struct {
		NotCleaned []struct {
			NodeID, ManagerIP, Reason string
			Queued                    bool
		}
	}](t, r)
	if len(del.NotCleaned) != 1 || del.NotCleaned[0].NodeID != n3 || del.NotCleaned[0].ManagerIP != "10.1.0.3" ||
		!del.NotCleaned[0].Queued || del.NotCleaned[0].Reason != "agent offline: cleaned when it reconnects" {
		t.Fatalf("delete %+v", del)
	}
	if len(agents.removed) != 2 {
		t.Fatalf("removed %v", agents.removed)
	}

	// The offline node's removal waits in the queue, for viewers to see.
	type cleanupItem struct {
		ID, ServerID, ManagerIP, NodeID, ClusterName, ProgramDir, DataDir, Reason, CreateTime, LastError string
		AllowedRoots                                                                                     []string
		Attempts                                                                                         int
	}
	r = h.call("GET", "/cluster/cleanup", viewer, nil)
	want(t, r, 200, 0)
	q := decodeData[page[cleanupItem]](t, r)
	if q.Total != 1 || len(q.List) != 1 {
		t.Fatalf("cleanups %+v", q)
	}
	if c := q.List[0]; c.NodeID != n3 || c.ServerID != srv3.ID.String() || c.ManagerIP != "10.1.0.3" || c.ClusterName != "c1" ||
		c.ProgramDir != nodes.List[2].ProgramDir || len(c.AllowedRoots) != 2 || c.Attempts != 0 || c.CreateTime == "" {
		t.Fatalf("cleanup %+v", c)
	}
	if q := decodeData[page[cleanupItem]](t, h.call("GET", "/cluster/cleanup?serverId="+srv3.ID.String(), viewer, nil)); q.Total != 1 {
		t.Fatalf("cleanups of server 3 %+v", q)
	}
	srv1, _ := h.db.ServerByManagerIP(t.Context(), "10.1.0.1")
	if q := decodeData[page[cleanupItem]](t, h.call("GET", "/cluster/cleanup?serverId="+srv1.ID.String(), viewer, nil)); q.Total != 0 || q.List == nil {
		t.Fatalf("cleanups of server 1 %+v", q)
	}
	want(t, h.call("GET", "/cluster/cleanup?serverId=x", viewer, nil), 400, codeParamInvalid)
	want(t, h.call("GET", "/cluster/cleanup", "", nil), 401, codeTokenInvalid)
}

// runningJobs is a Deployer whose jobs run forever and never change.
type runningJobs struct{ Deployer }

func (runningJobs) Job(_ context.Context, id ids.ID) (deploy.Job, []deploy.Step, error) {
	return deploy.Job{ID: id, Type: deploy.TypeDeployNode, State: deploy.JobRunning}, nil, nil
}
func (runningJobs) Changed() <-chan struct{} { return make(chan struct{}) }

// TestJobEventsEndOnShutdown: a client following a job does not hold the
// manager's shutdown for its whole grace; its stream ends cleanly, without
// "done".
func TestJobEventsEndOnShutdown(t *testing.T) {
	h := newHarness(t)
	viewer := h.userToken("viewer")
	d := h.deps(t)
	d.Deploy = runningJobs{}
	a := New(d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const grace = 20 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln, grace) }()

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+Prefix+"/job/events?id=7", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := (&http.Client{Timeout: grace}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("event: job\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "event: job\n" {
		cancel()
		t.Fatalf("first event %q %v", first, err)
	}

	began := time.Now()
	cancel()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("the stream was cut instead of ended: %v", err)
	}
	if strings.Contains(string(rest), "event: done") {
		t.Errorf("\"done\" sent for a job that is still running:\n%s", rest)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(grace):
		t.Fatal("Serve did not return within its grace")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("shutdown took %v with a job event stream open", took)
	}
}
