package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// deletedCluster is what DELETE /cluster answers, with the queued flag
// testenv.DeletedCluster leaves out.
type deletedCluster struct {
	NotCleaned []struct {
		NodeID    string   `json:"nodeId"`
		ManagerIP string   `json:"managerIp"`
		Reason    string   `json:"reason"`
		Queued    bool     `json:"queued"`
		KeptDirs  []string `json:"keptDirs"`
	} `json:"notCleaned"`
}

// queuedCleanup is a row of GET /cluster/cleanup.
type queuedCleanup struct {
	ServerID   string `json:"serverId"`
	NodeID     string `json:"nodeId"`
	ProgramDir string `json:"programDir"`
	DataDir    string `json:"dataDir"`
	Attempts   int    `json:"attempts"`
	LastError  string `json:"lastError"`
}

func cleanupQueue(t *testing.T, c *testenv.Client, serverID string) []queuedCleanup {
	t.Helper()
	var page struct {
		Total int             `json:"total"`
		List  []queuedCleanup `json:"list"`
	}
	c.OK(t, http.MethodGet, "/cluster/cleanup?pageSize=500&serverId="+url.QueryEscape(serverID), nil, &page)
	return page.List
}

// procRunning reports whether the process pid exists and is not a zombie.
func procRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the state follows the command name
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// TestCleanupQueuedUntilAgentReconnects: a cluster deleted while its
// node's agent is dead leaves the node running, says so in notCleaned with
// queued true, and lists the removal in /cluster/cleanup; once the agent
// is back the manager has it stop the node and delete its dirs, and the
// queue empties.
func TestCleanupQueuedUntilAgentReconnects(t *testing.T) {
	integrationTest(t)
	const (
		ip   = "127.0.89.1"
		port = 18091
	)
	e := startFaultEnv(t, ip, t.TempDir())
	c := e.c
	serverID := e.a.ID(t)

	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-cleanup-V1.0-x86.tar.gz", sleeperManifest("admq-cleanup", port)))
	n := e.oneNodeCluster(t, "cleanup", pkg.ID, e.root, port)
	if job := c.WaitJob(t, c.DeployCluster(t, n.ClusterID), 2*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy:\n%s", job)
	}
	nodes := c.Nodes(t, n.ClusterID)
	if len(nodes) != 1 || nodes[0].Pid <= 0 || !procRunning(nodes[0].Pid) {
		t.Fatalf("deployed node %+v: want one running process", nodes)
	}
	pid := nodes[0].Pid
	for _, d := range []string{n.ProgramDir, n.DataDir} {
		if !exists(d) {
			t.Fatalf("deployed node's dir %s is missing", d)
		}
	}

	// The agent dies (kill -9); its node runs on.
	e.killAgent(t)
	var del deletedCluster
	c.OK(t, http.MethodDelete, "/cluster?id="+url.QueryEscape(n.ClusterID), nil, &del)
	if len(del.NotCleaned) != 1 {
		t.Fatalf("delete of a cluster whose agent is dead: notCleaned %+v, want the node", del.NotCleaned)
	}
	nc := del.NotCleaned[0]
	if nc.NodeID != n.ID || nc.ManagerIP != ip || !nc.Queued || !strings.Contains(nc.Reason, "cleaned when it reconnects") {
		t.Fatalf("notCleaned %+v: want node %s on %s, queued", nc, n.ID, ip)
	}
	q := cleanupQueue(t, c, serverID)
	if len(q) != 1 || q[0].NodeID != n.ID || q[0].ProgramDir != n.ProgramDir || q[0].DataDir != n.DataDir {
		t.Fatalf("cleanup queue %+v", q)
	}
	if !procRunning(pid) || !exists(n.ProgramDir) || !exists(n.DataDir) {
		t.Fatalf("the node (pid %d) and its dirs should still be there while the agent is dead", pid)
	}

	// The agent comes back: the node is stopped, its dirs go, the queue empties.
	restarted := time.Now()
	e.a = restartAgent(t, e.tm, c, e.a, ip)
	online := time.Since(restarted)
	var left []queuedCleanup
	testenv.Eventually(t, 2*time.Minute, "the queued cleanup to stop the node and remove its dirs", func() bool {
		if procRunning(pid) || exists(n.ProgramDir) || exists(n.DataDir) {
			return false
		}
		left = cleanupQueue(t, c, serverID)
		return len(left) == 0
	})
	cleaned := time.Since(restarted)
	t.Logf("figure: agent restarted; online in the API after %v, node %d stopped, its dirs removed and the queue empty %v after the restart",
		online.Round(time.Millisecond), pid, cleaned.Round(time.Millisecond))
	log := e.tm.Log()
	connected, ok1 := lastLogTime(log, `msg="agent connected"`)
	done, ok2 := lastLogTime(log, `msg="queued node cleanup done`)
	if !ok2 {
		t.Fatalf("the manager's log does not tell of the cleanup:\n%s", log)
	}
	if ok1 {
		t.Logf("figure: %v from the agent's reconnection to its queued cleanup done, by the manager's log", done.Sub(connected))
	}
}

// lastLogTime returns the time of the last line of a slog text log that
// contains s.
func lastLogTime(log, s string) (time.Time, bool) {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.Contains(l, s) || !strings.HasPrefix(l, "time=") {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, stamp)
		return t, err == nil
	}
	return time.Time{}, false
}
