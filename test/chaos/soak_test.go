package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// TestSoak runs six agents with a node each for -soak (3 minutes in make
// test, 10 with make soak) while their links flap (down for 1-8 s), some
// are killed with SIGKILL and come back, links drop 30% of packets for a
// while, and clients list nodes, ping agents and restart nodes. Before and
// after, with every agent online and the manager idle for 35 s (so that
// idle gRPC connections have closed), it samples the manager's goroutines,
// heap, resident memory and open files, and the threads, memory and open
// files of the two agents that were never killed: none may grow. At the
// end every node runs, started exactly as often as the test restarted it.
func TestSoak(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	const n, steady = 6, 2 // agents; the first steady ones are never killed
	agents := make([]*agent, n)
	for i := range agents {
		agents[i] = e.startAgent(t)
	}
	root := t.TempDir()
	var place []testenv.ClusterNode
	for _, a := range agents {
		place = append(place, a.place(root, 7100))
	}
	p := e.c.UploadPackage(t, nodePackage(t, "1.0", false, nil))
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-soak", PackageID: p.ID, BrokerList: place})
	if job := e.c.WaitJob(t, e.c.DeployCluster(t, cl.ID), 3*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy:\n%s", job)
	}
	nodes := e.c.Nodes(t, cl.ID)
	nodeOf := map[string]testenv.Node{}
	for _, nd := range nodes {
		nodeOf[nd.ManagerIP] = nd
	}

	before := e.settle(t, agents, steady)
	t.Logf("before the soak: %s", before)

	var (
		wg                                  sync.WaitGroup
		busy                                = make([]atomic.Bool, n)
		flaps, kills, lossy, calls, restart atomic.Int32
		restarted                           = make([]atomic.Int32, n)
	)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	c := e.m.Client(t, testenv.WithTimeout(2*time.Minute))
	began := time.Now()
	for time.Since(began) < *soak {
		i := rng.IntN(n)
		if !busy[i].CompareAndSwap(false, true) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		a := agents[i]
		hold := time.Duration(1000+rng.IntN(7000)) * time.Millisecond
		action := rng.IntN(4)
		if action == 1 && i < steady {
			action = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer busy[i].Store(false)
			switch action {
			case 0:
				flaps.Add(1)
				a.h.SetLink(t, false)
				time.Sleep(hold)
				a.h.SetLink(t, true)
			case 1:
				kills.Add(1)
				a.kill()
				time.Sleep(hold / 3)
				a.start(t)
			case 2:
				lossy.Add(1)
				a.h.Loss(t, 30)
				time.Sleep(hold)
				a.h.Loss(t, 0)
			case 3:
				calls.Add(1)
				c.Try(http.MethodGet, "/cluster/node?pageSize=500&clusterId="+cl.ID, nil)
				c.Try(http.MethodGet, "/server/ping?id="+a.id, nil)
				env, status, err := c.Try(http.MethodPost, "/admq/cmd", map[string]string{"id": nodeOf[a.h.IP].ID, "cmd": "restart"})
				if err == nil && status == http.StatusOK && env.Code == 0 {
					restart.Add(1)
					restarted[i].Add(1)
				}
			}
		}()
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
	}
	wg.Wait()
	t.Logf("soak of %v: %d link flaps, %d agent kills, %d lossy spells, %d rounds of API calls (%d restarts done)",
		*soak, flaps.Load(), kills.Load(), lossy.Load(), calls.Load(), restart.Load())

	after := e.settle(t, agents, steady)
	t.Logf("after the soak:  %s", after)
	if after.goroutines > before.goroutines+10 {
		t.Errorf("manager goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.fds > before.fds+5 {
		t.Errorf("manager open files grew from %d to %d", before.fds, after.fds)
	}
	if after.heap > before.heap*3/2+(16<<20) {
		t.Errorf("manager heap in use grew from %.1f to %.1f MiB", mib(before.heap), mib(after.heap))
	}
	for i := range steady {
		b, a := before.agents[i], after.agents[i]
		if a.fds > b.fds+3 || a.threads > b.threads+4 || a.rss > b.rss*3/2+(16<<20) {
			t.Errorf("agent %d (never killed) grew: %s → %s", i, b, a)
		}
	}

	// Every node runs, started once plus once per restart that was asked
	// for and acknowledged; a restart whose answer was lost may have been
	// done too.
	for i, a := range agents {
		nd := nodeOf[a.h.IP]
		var cur testenv.Node
		testenv.Eventually(t, 60*time.Second, "node "+nd.NodeDir+" to run", func() bool {
			cur = e.c.Node(t, cl.ID, nd.ID)
			return cur.RunStatus == "running"
		})
		got := starts(t, nd.DataDir)
		if want := 1 + int(restarted[i].Load()); len(got) < want || cur.Pid != got[len(got)-1] {
			t.Errorf("node %s: started %d times (%d restarts acknowledged), runs as %d (last start %v)", nd.NodeDir, len(got), want-1, cur.Pid, got)
		}
	}
}

// sample is what the soak measures.
type sample struct {
	goroutines, fds int
	heap, rss       float64
	agents          []procSample
}

type procSample struct {
	threads, fds int
	rss          float64
}

func (s sample) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "manager %d goroutines, heap in use %.1f MiB, RSS %.1f MiB, %d open files", s.goroutines, mib(s.heap), mib(s.rss), s.fds)
	for i, a := range s.agents {
		fmt.Fprintf(&b, "; steady agent %d: %s", i, a)
	}
	return b.String()
}

func (p procSample) String() string {
	return fmt.Sprintf("%d threads, RSS %.1f MiB, %d open files", p.threads, mib(p.rss), p.fds)
}

func mib(b float64) float64 { return b / (1 << 20) }

// settle waits until every agent is online and the manager has been idle
// for 35 s, then samples the manager three times and keeps the least of
// each figure (garbage collection makes single samples noisy), and samples
// the first steady agents.
func (e *env) settle(t testing.TB, agents []*agent, steady int) sample {
	t.Helper()
	for _, a := range agents {
		e.c.WaitStatus(t, a.id, "online", 2*time.Minute)
	}
	time.Sleep(35 * time.Second)
	s := sample{goroutines: 1 << 30, fds: 1 << 30, heap: 1 << 50, rss: 1 << 50}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for name, v := range map[string]*float64{"go_memstats_heap_inuse_bytes": &s.heap, "process_resident_memory_bytes": &s.rss} {
			f, err := e.m.Metric(ctx, name)
			must(t, err)
			*v = min(*v, f)
		}
		for name, v := range map[string]*int{"go_goroutines": &s.goroutines, "process_open_fds": &s.fds} {
			f, err := e.m.Metric(ctx, name)
			must(t, err)
			*v = min(*v, int(f))
		}
		cancel()
		time.Sleep(2 * time.Second)
	}
	for _, a := range agents[:steady] {
		s.agents = append(s.agents, procStats(t, a.pid()))
	}
	return s
}

// procStats reads a process's threads, resident memory and open files.
func procStats(t testing.TB, pid int) procSample {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	var p procSample
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.Atoi(f[0])
		switch k {
		case "Threads":
			p.threads = n
		case "VmRSS":
			p.rss = float64(n) * 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	must(t, err)
	p.fds = len(fds)
	return p
}
