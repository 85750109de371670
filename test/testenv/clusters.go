package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/workloads"
)

// Package is a row of GET /package.
type Package struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	FileName   string   `json:"fileName"`
	SHA256     string   `json:"sha256"`
	Components []string `json:"components"`
}

// UploadPackage sends the file at path as POST /package and returns the
// stored package; any refusal fails the test.
func (c *Client) UploadPackage(t testing.TB, path string) Package {
	t.Helper()
	env, status, err := c.Upload(path)
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	if status != http.StatusOK || env.Code != 0 {
		t.Fatalf("upload %s: HTTP %d code %d %s", filepath.Base(path), status, env.Code, env.Message)
	}
	var p Package
	Decode(t, env.Data, &p)
	return p
}

// Upload sends the file at path as POST /package, streamed, and returns
// whatever came back.
func (c *Client) Upload(path string) (Envelope, int, error) {
	body, contentType, err := workloads.UploadBody(path)
	if err != nil {
		return Envelope{}, 0, err
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/package", body)
	if err != nil {
		body.Close()
		return Envelope{}, 0, err
	}
	req.Header.Set("Content-Type", contentType)
	return c.send(req)
}

// send makes req with the client's token and decodes the envelope.
func (c *Client) send(req *http.Request) (Envelope, int, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Envelope{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Envelope{}, resp.StatusCode, err
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Envelope{}, resp.StatusCode, fmt.Errorf("%s %s: HTTP %d, body is not an envelope: %v: %q",
			req.Method, req.URL.Path, resp.StatusCode, err, raw)
	}
	return env, resp.StatusCode, nil
}

// ClusterNode is one node of a cluster create request (zkList, storageList,
// brokerList) or of POST /admq/cluster/node.
type ClusterNode struct {
	ManagerIP  string `json:"managerIp"`
	ProgramDir string `json:"programDir"`
	DataDir    string `json:"dataDir"`
	ServerPort int    `json:"serverPort,omitempty"`
}

// NewCluster is the body of POST /admq/cluster.
type NewCluster struct {
	Name        string            `json:"name"`
	PackageID   string            `json:"packageId,omitempty"`
	Packages    map[string]string `json:"packages,omitempty"`
	ZkList      []ClusterNode     `json:"zkList"`
	StorageList []ClusterNode     `json:"storageList"`
	BrokerList  []ClusterNode     `json:"brokerList"`
}

// Cluster is a cluster as POST /admq/cluster and GET /admq/cluster show it.
type Cluster struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	NodeCount  int      `json:"nodeCount"`
	Components []string `json:"components"`
	Nodes      []Node   `json:"nodes"`
}

// Node is a row of GET /cluster/node.
type Node struct {
	ID           string `json:"id"`
	ClusterID    string `json:"clusterId"`
	ServerID     string `json:"serverId"`
	ManagerIP    string `json:"managerIp"`
	Component    string `json:"component"`
	ServerPort   int    `json:"serverPort"`
	DeployStatus string `json:"deployStatus"`
	RunStatus    string `json:"runStatus"`
	Pid          int    `json:"pid"`
	Restarts     int    `json:"restarts"`
	ProgramDir   string `json:"programDir"`
	DataDir      string `json:"dataDir"`
	NodeDir      string `json:"nodeDir"`
	Myid         int    `json:"myid"`
	// SyncNodeConfigStatus: 0 in sync, 1 draft differs, 2 unknown, 3
	// nothing applied; Mode 1 running normally.
	SyncNodeConfigStatus int `json:"syncNodeConfigStatus"`
	Mode                 int `json:"mode"`
}

// CreateCluster makes a cluster that must be accepted.
func (c *Client) CreateCluster(t testing.TB, req NewCluster) Cluster {
	t.Helper()
	var cl Cluster
	c.OK(t, http.MethodPost, "/admq/cluster", req, &cl)
	return cl
}

// AddNodes adds nodes of one component from a package, which must be
// accepted, and returns them.
func (c *Client) AddNodes(t testing.TB, clusterID, component, packageID string, nodes []ClusterNode) []Node {
	t.Helper()
	var out []Node
	c.OK(t, http.MethodPost, "/admq/cluster/node", map[string]any{
		"clusterId": clusterID, "component": component, "packageId": packageID, "nodes": nodes,
	}, &out)
	return out
}

// Nodes lists a cluster's nodes (runStatus live from the agents).
func (c *Client) Nodes(t testing.TB, clusterID string) []Node {
	t.Helper()
	var page struct {
		List []Node `json:"list"`
	}
	c.OK(t, http.MethodGet, "/cluster/node?clusterId="+url.QueryEscape(clusterID)+"&"+listAll, nil, &page)
	return page.List
}

// Node returns one node of the cluster as GET /cluster/node lists it; the
// test fails if it is not listed.
func (c *Client) Node(t testing.TB, clusterID, nodeID string) Node {
	t.Helper()
	for _, n := range c.Nodes(t, clusterID) {
		if n.ID == nodeID {
			return n
		}
	}
	t.Fatalf("node %s is not listed in cluster %s", nodeID, clusterID)
	return Node{}
}

// Job is a job with its steps, as GET /job/detail shows it.
type Job struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	ServerID string `json:"serverId"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	// Code and ErrorData: what a failed SSH bootstrap job ended with.
	Code      int            `json:"code"`
	ErrorData map[string]any `json:"errorData"`
	Nodes     []struct {
		NodeID string `json:"nodeId"`
		Steps  []Step `json:"steps"`
	} `json:"nodes"`
}

// Step is one step of a job.
type Step struct {
	NodeID     string `json:"nodeId"`
	Name       string `json:"name"`
	State      string `json:"state"`
	Detail     string `json:"detail"`
	ReleaseID  string `json:"releaseId"`
	PidBefore  int    `json:"pidBefore"`
	PidAfter   int    `json:"pidAfter"`
	Healthy    *bool  `json:"healthy"`
	DurationMs int64  `json:"durationMs"`
	StartTime  string `json:"startTime"`
	FinishTime string `json:"finishTime"`
}

// Steps returns the job's steps for a node, in order.
func (j Job) Steps(nodeID string) []Step {
	for _, n := range j.Nodes {
		if n.NodeID == nodeID {
			return n.Steps
		}
	}
	return nil
}

// Step returns the node's step by name, or a zero Step.
func (j Job) Step(nodeID, name string) Step {
	for _, s := range j.Steps(nodeID) {
		if s.Name == name {
			return s
		}
	}
	return Step{}
}

// String lists the job's state, reason and every step, for failure
// messages.
func (j Job) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s %s", j.ID, j.State)
	if j.Reason != "" {
		fmt.Fprintf(&b, " (%s)", j.Reason)
	}
	for _, n := range j.Nodes {
		for _, s := range n.Steps {
			fmt.Fprintf(&b, "\n  node %s %-9s %-9s %s", n.NodeID, s.Name, s.State, s.Detail)
		}
	}
	return b.String()
}

// DeployCluster starts a job deploying every node of the cluster.
func (c *Client) DeployCluster(t testing.TB, clusterID string) string {
	t.Helper()
	var j Job
	c.OK(t, http.MethodPost, "/admq/cluster/deploy", map[string]string{"clusterId": clusterID}, &j)
	return j.ID
}

// DeployNode starts a job deploying one node.
func (c *Client) DeployNode(t testing.TB, nodeID string) string {
	t.Helper()
	var j Job
	c.OK(t, http.MethodPost, "/admq/cluster/node/deploy", map[string]string{"nodeId": nodeID}, &j)
	return j.ID
}

// Job returns a job with its steps.
func (c *Client) Job(t testing.TB, id string) Job {
	t.Helper()
	var j Job
	c.OK(t, http.MethodGet, "/job/detail?id="+url.QueryEscape(id), nil, &j)
	return j
}

// WaitJob polls the job until it has finished (succeeded or failed) and
// returns it; the test fails after timeout.
func (c *Client) WaitJob(t testing.TB, id string, timeout time.Duration) Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j := c.Job(t, id)
		if j.State == "succeeded" || j.State == "failed" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not finished after %v:\n%s", timeout, j)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// NodeState is what POST /admq/cmd answers.
type NodeState struct {
	NodeID    string `json:"nodeId"`
	RunStatus string `json:"runStatus"`
	Running   bool   `json:"running"`
	Pid       int    `json:"pid"`
	Restarts  int    `json:"restarts"`
	LastExit  string `json:"lastExit"`
}

// Cmd runs start, stop or restart on a node; it must succeed.
func (c *Client) Cmd(t testing.TB, nodeID, cmd string) NodeState {
	t.Helper()
	var st NodeState
	c.OK(t, http.MethodPost, "/admq/cmd", map[string]string{"id": nodeID, "cmd": cmd}, &st)
	return st
}

// NodeLog returns the end of a node's log, at most maxBytes.
func (c *Client) NodeLog(t testing.TB, nodeID string, maxBytes int) string {
	t.Helper()
	var v struct {
		Log string `json:"log"`
	}
	c.OK(t, http.MethodGet, fmt.Sprintf("/cluster/node/log?id=%s&maxBytes=%d", url.QueryEscape(nodeID), maxBytes), nil, &v)
	return v.Log
}

// DeletedCluster is what DELETE /cluster answers.
type DeletedCluster struct {
	NotCleaned []struct {
		NodeID string `json:"nodeId"`
		Reason string `json:"reason"`
	} `json:"notCleaned"`
}

// DeleteCluster deletes a cluster, which must succeed.
func (c *Client) DeleteCluster(t testing.TB, id string) DeletedCluster {
	t.Helper()
	var d DeletedCluster
	c.OK(t, http.MethodDelete, "/cluster?id="+url.QueryEscape(id), nil, &d)
	return d
}

// Event is one server-sent event of GET /job/events.
type Event struct {
	Name string // job, step or done
	Data string
}

// JobEvents follows GET /job/events for the job until the manager ends
// the stream or ctx is done, and returns the events read; each, if not
// nil, is called with every event as it arrives. err is nil only when the
// manager ended the stream cleanly; ctx's error when ctx ended it first.
func (c *Client) JobEvents(ctx context.Context, id string, each func(Event)) ([]Event, error) {
	return c.Events(ctx, "/job/events?id="+url.QueryEscape(id), each)
}

// Events reads the text/event-stream at path (with its query) under the API
// root until it ends or ctx does; each, if not nil, sees every event as it
// arrives.
func (c *Client) Events(ctx context.Context, path string, each func(Event)) ([]Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// No client timeout: the stream lasts as long as the job; ctx bounds it.
	resp, err := (&http.Client{Transport: c.hc.Transport}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: HTTP %d %s: %s", path, resp.StatusCode, ct, b)
	}
	var (
		out []Event
		ev  Event
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || ev.Data != "" {
				out = append(out, ev)
				if each != nil {
					each(ev)
				}
			}
			ev = Event{}
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			ev.Data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, err
	}
	return out, nil
}
