package chaos

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestKillManagerMidDeploy kills the manager with SIGKILL while a
// one-click deploy of three nodes on three hosts runs. After the restart
// the database is intact, the job is failed (not left running) and says
// why, its running step says what happened and the untouched ones are
// cancelled, no node is left "deploying", and deploying again completes,
// with each node started exactly once in all.
func TestKillManagerMidDeploy(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	agents := []*agent{e.startAgent(t), e.startAgent(t), e.startAgent(t)}
	root := t.TempDir()
	var place []testenv.ClusterNode
	for _, a := range agents {
		place = append(place, a.place(root, 7100))
	}
	// 48 MiB of incompressible bytes: each node's transfer takes a while.
	p := e.c.UploadPackage(t, nodePackage(t, "1.0", false, nil, workloads.Entry{Name: "blob", Random: 48 << 20}))
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-deploy", PackageID: p.ID, BrokerList: place})
	jobID := e.c.DeployCluster(t, cl.ID)

	// Kill it once a step runs and others wait.
	var before testenv.Job
	testenv.Eventually(t, 2*time.Minute, "a step of the deploy to run while others wait", func() bool {
		before = e.c.Job(t, jobID)
		running, pending := 0, 0
		for _, n := range before.Nodes {
			for _, s := range n.Steps {
				switch s.State {
				case "running":
					running++
				case "pending":
					pending++
				}
			}
		}
		if before.State != "running" && before.State != "pending" {
			t.Fatalf("the deploy ended before the manager could be killed:\n%s", before)
		}
		return running > 0 && pending > 0
	})
	e.m.Kill()
	t.Logf("killed the manager (SIGKILL) with the job at:\n%s", before)
	integrityCheck(t, e.m.DBPath())

	e.m.Start()
	c := e.m.Client(t)
	after := c.Job(t, jobID)
	t.Logf("after the restart:\n%s", after)
	if after.State != "failed" || !strings.Contains(after.Reason, "manager restarted") {
		t.Fatalf("interrupted job: state %s reason %q; want failed, saying the manager restarted", after.State, after.Reason)
	}
	for _, n := range after.Nodes {
		for _, s := range n.Steps {
			switch {
			case s.State == "running" || s.State == "pending":
				t.Errorf("step %s of node %s left %s", s.Name, n.NodeID, s.State)
			case s.State == "failed" && s.Detail == "":
				t.Errorf("failed step %s of node %s does not say what happened", s.Name, n.NodeID)
			}
		}
	}
	for _, j := range jobs(t, c) {
		if j.State == "running" || j.State == "pending" {
			t.Errorf("job %s still %s after the restart", j.ID, j.State)
		}
	}
	for _, n := range c.Nodes(t, cl.ID) {
		if n.DeployStatus == "deploying" {
			t.Errorf("node %s left deploying", n.NodeDir)
		}
	}

	// The agents come back by themselves; deploying again completes.
	for _, a := range agents {
		c.WaitStatus(t, a.id, "online", 60*time.Second)
	}
	again := c.WaitJob(t, c.DeployCluster(t, cl.ID), 3*time.Minute)
	if again.State != "succeeded" {
		t.Fatalf("deploy after the crash:\n%s", again)
	}
	for _, n := range c.Nodes(t, cl.ID) {
		if got := starts(t, n.DataDir); len(got) != 1 || n.RunStatus != "running" || n.Pid != got[0] {
			t.Errorf("node %s: started %d times (pids %v), run %s pid %d; want once, running", n.NodeDir, len(got), got, n.RunStatus, n.Pid)
		}
	}
}

// TestKillManagerMidWrites kills the manager with SIGKILL while 50 clients
// make 1,000 writes (areas, join tokens, pending servers) and then checks
// that the database is intact and that every write the API acknowledged
// is there after the restart, once, with its audit record.
func TestKillManagerMidWrites(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	m := testenv.StartManagerProcess(t, managerBin, testenv.ManagerProcessOptions{})
	c := m.Client(t)
	const total, workers, killAfter = 1000, 50, 400

	type write struct {
		kind, key string
	}
	var (
		mu          sync.Mutex
		acked       []write
		failed      int
		refused     []string
		ackedCount  atomic.Int32
		killed      = make(chan struct{})
		next        atomic.Int32
		wg          sync.WaitGroup
		killedAfter int32
	)
	go func() {
		for ackedCount.Load() < killAfter {
			time.Sleep(time.Millisecond)
		}
		m.Kill()
		killedAfter = ackedCount.Load()
		close(killed)
	}()
	body := func(i int) (string, string, any) {
		key := fmt.Sprintf("chaos-%04d", i)
		switch i % 3 {
		case 0:
			return "area", key, map[string]string{"code": key, "area": "area " + key}
		case 1:
			return "token", key, map[string]any{"description": key, "maxUses": 1, "ttlSeconds": 3600}
		default:
			return "server", fmt.Sprintf("10.77.%d.%d", i/250, i%250+1), map[string]string{"managerIp": fmt.Sprintf("10.77.%d.%d", i/250, i%250+1)}
		}
	}
	path := map[string]string{"area": "/area", "token": "/agent/token", "server": "/server"}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				kind, key, b := body(i)
				env, status, err := c.Try(http.MethodPost, path[kind], b)
				mu.Lock()
				switch {
				case err == nil && status == http.StatusOK && env.Code == 0:
					acked = append(acked, write{kind, key})
					ackedCount.Add(1)
				case err == nil:
					refused = append(refused, fmt.Sprintf("%s %s: HTTP %d code %d %s", kind, key, status, env.Code, env.Message))
				default:
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-killed
	t.Logf("1,000 writes by 50 clients: %d acknowledged (the kill came after %d), %d failed without an answer, %d refused",
		len(acked), killedAfter, failed, len(refused))
	if len(refused) > 0 {
		t.Errorf("writes refused with an answer (none should be):\n%s", strings.Join(refused, "\n"))
	}
	integrityCheck(t, m.DBPath())

	m.Start()
	c = m.Client(t)
	have := map[string]int{}
	var areas struct {
		Total int `json:"total"`
		List  []struct {
			Code string `json:"code"`
		} `json:"list"`
	}
	for page := 1; ; page++ {
		c.OK(t, http.MethodGet, fmt.Sprintf("/area?pageSize=500&pageNum=%d", page), nil, &areas)
		for _, a := range areas.List {
			have["area "+a.Code]++
		}
		if page*500 >= areas.Total {
			break
		}
	}
	for _, tok := range c.Tokens(t) {
		have["token "+tok.Description]++
	}
	_, servers := c.Servers(t, "")
	for _, s := range servers {
		have["server "+s.ManagerIP]++
	}
	missing, ackedBy := 0, map[string]int{}
	for _, w := range acked {
		ackedBy[path[w.kind]]++
		switch n := have[w.kind+" "+w.key]; n {
		case 1:
		case 0:
			missing++
			t.Errorf("acknowledged %s %s is gone after the restart", w.kind, w.key)
		default:
			t.Errorf("acknowledged %s %s is there %d times", w.kind, w.key, n)
		}
	}
	// Every acknowledged change is in the audit log.
	audited := map[string]int{}
	var audit struct {
		Total int `json:"total"`
		List  []struct {
			Method string `json:"method"`
			Path   string `json:"path"`
			Status int    `json:"status"`
		} `json:"list"`
	}
	for page := 1; ; page++ {
		c.OK(t, http.MethodGet, fmt.Sprintf("/audit?pageSize=500&pageNum=%d", page), nil, &audit)
		for _, a := range audit.List {
			if a.Method == http.MethodPost && a.Status == http.StatusOK {
				audited[strings.TrimPrefix(a.Path, "/admq-manager")]++
			}
		}
		if page*500 >= audit.Total {
			break
		}
	}
	unaudited := 0
	for p, n := range ackedBy {
		if audited[p] < n {
			unaudited += n - audited[p]
			t.Errorf("%d acknowledged POST %s, %d of them in the audit log", n, p, audited[p])
		}
	}
	committed := 0
	for k, n := range have {
		if strings.Contains(k, "chaos-") || strings.HasPrefix(k, "server 10.77.") {
			committed += n
		}
	}
	t.Logf("after the restart: %d of the writes are in the database (%d acknowledged, %d more were in flight when the manager died); %d acknowledged missing, %d unaudited",
		committed, len(acked), committed-len(acked), missing, unaudited)
	for _, j := range jobs(t, c) {
		if j.State == "running" || j.State == "pending" {
			t.Errorf("job %s still %s after the restart", j.ID, j.State)
		}
	}
}
