package workloads

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
)

// Node is a node deployed on an agent by Deploy.
type Node struct {
	Agent *Agent
	Name  string
	Vars  config.Vars
	// Root holds ProgramDir and DataDir; RemoveNode may delete inside it.
	Root       string
	ProgramDir string
	DataDir    string
	h          *Hub
	ops        int
}

// NodeDirs returns the program and data dirs for a node named name under
// root, as the manager would place them.
func NodeDirs(root, name string) (programDir, dataDir string) {
	return filepath.Join(root, "program", name), filepath.Join(root, "data", name)
}

// Cluster places one node of component per ip, the node dirs under root
// (NodeDirs), and returns the cluster named name as rendering sees it;
// members' ids are their ordinals.
func Cluster(name, component, root string, ips []string, port int) config.Topology {
	t := config.Topology{ClusterID: 1, Cluster: name}
	for i, ip := range ips {
		nd := fmt.Sprintf("%s-%d", component, i+1)
		pd, dd := NodeDirs(root, nd)
		t.Members = append(t.Members, config.Member{ID: ids.ID(i + 1), Component: component, ManagerIP: ip, DataIP: ip,
			ProgramDir: pd, DataDir: dd, NodeDir: nd, ServerPort: port, Ordinal: i + 1})
	}
	return t
}

// Deploy pushes p to the agent and deploys and starts its component as
// node n of the cluster top, with config files rendered and written to
// their targets (Package.Render). The node is removed with its dirs when
// the test ends, and its process killed by PID if that did not end it.
func (h *Hub) Deploy(t testing.TB, a *Agent, p *Package, component string, top config.Topology, n config.Member) (*Node, deploy.DeployResult) {
	t.Helper()
	ctx := t.Context()
	c := p.Manifest.Components[component]
	if _, err := h.PushPackage(ctx, a.ID, p.SHA256, p.Size, bytes.NewReader(p.Data)); err != nil {
		t.Fatalf("push %s to agent %s: %v", p.Name, a.ID, err)
	}
	nc, err := p.Render(component, top, n)
	if err != nil {
		t.Fatalf("render %s for %s: %v", p.Name, n.NodeDir, err)
	}
	vars := nc.Vars
	var files []deploy.ConfigFile
	for _, f := range nc.Files {
		files = append(files, deploy.ConfigFile{Path: f.Path, Content: f.Content, Mode: 0o640})
	}
	argv, err := Expand(c.Start, vars)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range c.Env {
		ev, err := Expand([]string{v}, vars)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+ev[0])
	}
	node := &Node{Agent: a, Name: n.NodeDir, Vars: vars, Root: filepath.Dir(filepath.Dir(n.ProgramDir)),
		ProgramDir: n.ProgramDir, DataDir: n.DataDir, h: h}
	t.Cleanup(func() { node.remove(t) })
	res, err := h.DeployNode(ctx, a.ID, deploy.DeployRequest{
		OperationID:   "deploy-" + n.NodeDir,
		Name:          n.NodeDir,
		PackageSHA256: p.SHA256,
		PackageFormat: p.Name.Format(),
		ProgramDir:    n.ProgramDir,
		DataDir:       n.DataDir,
		ConfigFiles:   files,
		Argv:          argv,
		Env:           env,
		StopGrace:     10 * time.Second,
		Start:         true,
	})
	if err != nil {
		t.Fatalf("deploy %s on agent %s: %v", n.NodeDir, a.ID, err)
	}
	return node, res
}

// Command runs a node command with a fresh operation id.
func (n *Node) Command(t testing.TB, cmd deploy.NodeCommand) deploy.NodeState {
	t.Helper()
	n.ops++
	st, err := n.h.NodeCommand(t.Context(), n.Agent.ID, fmt.Sprintf("cmd-%s-%d", n.Name, n.ops), n.Name, cmd)
	if err != nil {
		t.Fatalf("command %d on %s: %v", cmd, n.Name, err)
	}
	return st
}

// State returns the agent's view of the node.
func (n *Node) State(t testing.TB) deploy.NodeState {
	t.Helper()
	sts, err := n.h.NodeStatus(t.Context(), n.Agent.ID, []string{n.Name})
	if err != nil || len(sts) != 1 {
		t.Fatalf("status of %s: %+v %v", n.Name, sts, err)
	}
	return sts[0]
}

func (n *Node) remove(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid := 0
	if sts, err := n.h.NodeStatus(ctx, n.Agent.ID, []string{n.Name}); err == nil && len(sts) == 1 {
		pid = sts[0].PID
	}
	if t.Failed() {
		if b, err := n.h.NodeLogs(ctx, n.Agent.ID, n.Name, 8<<10); err == nil {
			t.Logf("log of node %s (pid %d):\n%s", n.Name, pid, b)
		}
	}
	kept, err := n.h.RemoveNode(ctx, n.Agent.ID, deploy.RemoveRequest{
		OperationID: "remove-" + n.Name, Name: n.Name, RemoveDirs: true,
		ProgramDir: n.ProgramDir, DataDir: n.DataDir, AllowedRoots: []string{n.Root},
	})
	if err != nil || len(kept) > 0 {
		t.Logf("remove node %s: kept %+v, %v", n.Name, kept, err)
	}
	if pid > 0 {
		deadline := time.Now().Add(15 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Logf("node %s: pid %d outlived its removal; killing it", n.Name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(n.ProgramDir)
	_ = os.RemoveAll(n.DataDir)
}
