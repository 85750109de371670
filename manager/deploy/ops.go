package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/nodedir"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
)

// Node commands.
const (
	CmdStart   = "start"
	CmdStop    = "stop"
	CmdRestart = "restart"
)

var commands = map[string]NodeCommand{
	CmdStart: NodeStart, CmdStop: NodeStop, CmdRestart: NodeRestart,
}

// Log sizes for Logs.
const (
	DefaultLogBytes = 64 << 10
	MaxLogBytes     = 1 << 20
)

// StatusTimeout bounds one agent's answer to LiveRunStates.
const StatusTimeout = 2 * time.Second

func randomOpID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + ":" + hex.EncodeToString(b)
}

func offline(n cluster.Node) error {
	return fmt.Errorf("%w: the agent on %s (server %s), which runs node %s, is offline; nothing was sent or queued",
		fleet.ErrAgentNotOnline, n.ManagerIP, n.ServerID, n.NodeDir)
}

// Command starts, stops or restarts a node through its agent's supervisor,
// now: an offline agent is fleet.ErrAgentNotOnline and nothing is queued.
// It records and returns the node's new state.
func (e *Engine) Command(ctx context.Context, nodeID ids.ID, cmd string) (NodeState, error) {
	kind, known := commands[cmd]
	if !known {
		return NodeState{}, invalid.Field("cmd", "%q: must be start, stop or restart", cmd)
	}
	n, err := e.d.Clusters.Node(ctx, nodeID)
	if err != nil {
		return NodeState{}, err
	}
	if !e.d.Agents.Online(n.ServerID) {
		return NodeState{}, offline(n)
	}
	st, err := e.d.Agents.NodeCommand(ctx, n.ServerID, randomOpID(cmd), n.ID.String(), kind)
	if err != nil {
		return NodeState{}, fmt.Errorf("%s %s on %s: %w", cmd, n.NodeDir, n.ManagerIP, err)
	}
	e.setNode(ctx, n.ID, "", RunState(st))
	return st, nil
}

// Logs returns the end of the node's log: maxBytes (0: DefaultLogBytes, at
// most MaxLogBytes).
func (e *Engine) Logs(ctx context.Context, nodeID ids.ID, maxBytes int) ([]byte, error) {
	switch {
	case maxBytes == 0:
		maxBytes = DefaultLogBytes
	case maxBytes < 0 || maxBytes > MaxLogBytes:
		return nil, invalid.Field("maxBytes", "must be 1 to %d", MaxLogBytes)
	}
	n, err := e.d.Clusters.Node(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	if !e.d.Agents.Online(n.ServerID) {
		return nil, offline(n)
	}
	return e.d.Agents.NodeLogs(ctx, n.ServerID, n.ID.String(), maxBytes)
}

// LiveState is a node's state as its agent reports it now.
type LiveState struct {
	// Run is cluster.RunRunning, RunStopped (also for a node the agent
	// does not know), RunFailed (it should run but does not), or
	// RunUnknown when the agent is offline or does not answer.
	Run string
	// Node is the supervisor's view; zero unless the agent answered and
	// knows the node.
	Node NodeState
}

// LiveRunStates asks the nodes' agents, one call per server in parallel,
// each bounded by StatusTimeout, what runs.
func (e *Engine) LiveRunStates(ctx context.Context, nodes []cluster.Node) map[ids.ID]LiveState {
	out := make(map[ids.ID]LiveState, len(nodes))
	byServer := map[ids.ID][]cluster.Node{}
	for _, n := range nodes {
		out[n.ID] = LiveState{Run: cluster.RunUnknown}
		if e.d.Agents.Online(n.ServerID) {
			byServer[n.ServerID] = append(byServer[n.ServerID], n)
		}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for server, ns := range byServer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, StatusTimeout)
			defer cancel()
			names := make([]string, len(ns))
			for i, n := range ns {
				names[i] = n.ID.String()
			}
			states, err := e.d.Agents.NodeStatus(cctx, server, names)
			if err != nil {
				e.d.Log.Debug("node status", "server", server, "err", err)
				return
			}
			byName := map[string]NodeState{}
			for _, s := range states {
				byName[s.Name] = s
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range ns {
				if s, ok := byName[n.ID.String()]; ok {
					out[n.ID] = LiveState{Run: RunState(s), Node: s}
				} else {
					out[n.ID] = LiveState{Run: cluster.RunStopped}
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// DeleteCluster stops every node of the cluster and cleans its host
// (Teardown), then removes the cluster's records, and returns it with the
// nodes that were not cleaned.
func (e *Engine) DeleteCluster(ctx context.Context, id ids.ID) (cluster.Cluster, []cluster.Uncleaned, error) {
	return e.d.Clusters.Delete(ctx, id, e)
}

// Teardown stops and removes every node of the cluster whose agent is
// online, deleting its program and data dirs; it implements
// cluster.Teardown. The agent deletes a dir only strictly inside an
// allowed root, and the dirs the operator gave before {cluster} and
// {nodeDir} were expanded are not kept, so each dir's parent is its root:
// exactly programDir and dataDir are removed, and only when the agent
// created them for the node (it keeps and reports the others). A dir
// directly under "/", or one internal/nodedir refuses (recorded before
// the check existed), is not even sent, so that an older agent does not
// remove it either. A node whose agent is offline, or went away during
// the removal, is reported and its removal queued (when the engine has a
// CleanupStore): the same request is sent when the agent reconnects
// (RunCleanups). A node whose removal the agent refused is only reported.
// The records go anyway. A cluster with a node being deployed is
// ErrNodeUnavailable and nothing is done.
func (e *Engine) Teardown(ctx context.Context, c cluster.Cluster, nodes []cluster.Node) ([]cluster.Uncleaned, error) {
	var busy []string
	for _, n := range nodes {
		if n.DeployState == cluster.DeployDeploying {
			busy = append(busy, nodeLabel(n))
		}
	}
	if len(busy) > 0 {
		return nil, fmt.Errorf("%w: already deploying: %s; wait for the job to finish", ErrNodeUnavailable, joinComma(busy))
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out []cluster.Uncleaned
	)
	add := func(u cluster.Uncleaned) {
		mu.Lock()
		out = append(out, u)
		mu.Unlock()
	}
	report := func(n cluster.Node, reason string, queued bool) {
		add(cluster.Uncleaned{NodeID: n.ID, ManagerIP: n.ManagerIP, Reason: reason, Queued: queued})
	}
	// queue reports n as queued for cleanup, or, when it cannot be
	// queued, as left on its host.
	queue := func(n cluster.Node, req RemoveRequest, reason, left string) {
		if err := e.queueCleanup(ctx, c, n, req, reason); err != nil {
			if e.d.Cleanups != nil {
				e.d.Log.Error("node not cleaned and its cleanup not queued", "cluster", c.Name, "node", n.ID, "err", err)
			}
			report(n, left, false)
			return
		}
		report(n, reason, true)
	}
	for _, n := range nodes {
		req, kept := removeRequest(c, n)
		if !e.d.Agents.Online(n.ServerID) {
			queue(n, req, ReasonQueuedOffline, "agent offline: the node was not stopped and its dirs were not removed")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			agentKept, err := e.d.Agents.RemoveNode(ctx, n.ServerID, req)
			switch {
			case err == nil:
				if kept = append(kept, agentKept...); len(kept) > 0 {
					add(keptReport(n, kept))
				}
			case lostDuring(err):
				queue(n, req, fmt.Sprintf(reasonQueuedLost, err), "remove failed: "+err.Error())
			default:
				report(n, "remove failed: "+err.Error(), false)
			}
		}()
	}
	wg.Wait()
	queued := 0
	for _, u := range out {
		if u.Queued {
			queued++
		}
	}
	if len(out) > 0 {
		e.d.Log.Warn("cluster deleted with nodes not cleaned", "cluster", c.Name, "notCleaned", len(out), "queued", queued)
	}
	return out, nil
}

// removeRequest is the removal of node n of cluster c, and the dirs it
// leaves out: those directly under "/" (no allowed root) and those
// internal/nodedir refuses.
func removeRequest(c cluster.Cluster, n cluster.Node) (RemoveRequest, []KeptDir) {
	req := RemoveRequest{
		OperationID: "teardown:" + c.ID.String() + ":" + n.ID.String(), Name: n.ID.String(), RemoveDirs: true,
	}
	var kept []KeptDir
	for _, d := range []struct {
		path string
		set  *string
	}{{n.ProgramDir, &req.ProgramDir}, {n.DataDir, &req.DataDir}} {
		if err := nodedir.Check(d.path); err != nil {
			kept = append(kept, KeptDir{Path: d.path, Reason: err.Error()})
			continue
		}
		root := filepath.Dir(d.path)
		if root == "/" {
			kept = append(kept, KeptDir{Path: d.path, Reason: "it is directly under /"})
			continue
		}
		*d.set = d.path
		if !slices.Contains(req.AllowedRoots, root) {
			req.AllowedRoots = append(req.AllowedRoots, root)
		}
	}
	req.RemoveDirs = len(req.AllowedRoots) > 0
	return req, kept
}

// keptReport is the notCleaned entry of a node that was removed but
// whose dirs were (some of them) kept.
func keptReport(n cluster.Node, kept []KeptDir) cluster.Uncleaned {
	u := cluster.Uncleaned{NodeID: n.ID, ManagerIP: n.ManagerIP}
	var reasons []string
	for _, k := range kept {
		u.Dirs = append(u.Dirs, k.Path)
		reasons = append(reasons, "kept "+k.Path+": "+k.Reason)
	}
	u.Reason = "node stopped and removed; " + strings.Join(reasons, "; ")
	return u
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}
