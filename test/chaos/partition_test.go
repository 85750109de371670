package chaos

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// TestPartitionMidRestart cuts an agent's host off the network (its link
// down, in its namespace) for 5 seconds and for 60 seconds while a restart
// of its node is under way: the node ignores SIGTERM, so the restart takes
// the agent's 10-second stop grace. The restart must either complete or
// fail with a reason that says the agent was lost, the node must be
// restarted exactly once in either case (never twice, never not at all),
// and the server must come back online by itself.
func TestPartitionMidRestart(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	for _, cut := range []time.Duration{5 * time.Second, 60 * time.Second} {
		t.Run(fmt.Sprintf("link down %v", cut), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, testenv.ManagerProcessOptions{})
			a := e.startAgent(t)
			p := e.c.UploadPackage(t, nodePackage(t, "1.0", true, nil))
			cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-partition", PackageID: p.ID,
				BrokerList: []testenv.ClusterNode{a.place(t.TempDir(), 7100)}})
			if job := e.c.WaitJob(t, e.c.DeployCluster(t, cl.ID), 2*time.Minute); job.State != "succeeded" {
				t.Fatalf("deploy:\n%s", job)
			}
			n := e.c.Nodes(t, cl.ID)[0]

			type answer struct {
				env    testenv.Envelope
				status int
				err    error
				took   time.Duration
			}
			done := make(chan answer, 1)
			c := e.m.Client(t, testenv.WithTimeout(5*time.Minute))
			began := time.Now()
			go func() {
				env, status, err := c.Try(http.MethodPost, "/admq/cmd", map[string]string{"id": n.ID, "cmd": "restart"})
				done <- answer{env, status, err, time.Since(began)}
			}()
			time.Sleep(2 * time.Second) // the agent is waiting out the stop grace now
			a.h.SetLink(t, false)
			time.Sleep(cut)
			a.h.SetLink(t, true)
			t.Logf("link of %s down for %v, %v after the restart was asked for", a.h.NS, cut, 2*time.Second)

			ans := <-done
			switch {
			case ans.err != nil:
				t.Fatalf("restart: no answer after %v: %v", ans.took, ans.err)
			case ans.status == http.StatusOK && ans.env.Code == 0:
				t.Logf("restart completed in %v: %s", ans.took.Round(time.Millisecond), ans.env.Data)
			default:
				t.Logf("restart failed after %v: HTTP %d code %d %s %s", ans.took.Round(time.Millisecond), ans.status, ans.env.Code, ans.env.Message, ans.env.Data)
				if ans.status < 500 && ans.status != http.StatusConflict || !saysAgentLost(ans.env.Message) {
					t.Errorf("a restart cut by a partition failed with HTTP %d code %d %q: want a server-side failure that says the agent was lost", ans.status, ans.env.Code, ans.env.Message)
				}
			}
			e.c.WaitStatus(t, a.id, "online", 90*time.Second)
			var node testenv.Node
			testenv.Eventually(t, 60*time.Second, "the node to run again", func() bool {
				node = e.c.Node(t, cl.ID, n.ID)
				return node.RunStatus == "running"
			})
			got := starts(t, n.DataDir)
			if len(got) != 2 || node.Pid != got[len(got)-1] {
				t.Fatalf("node started %d times (pids %v), runs as pid %d: want the deploy's start and exactly one restart", len(got), got, node.Pid)
			}
			if ping := e.c.Ping(t, a.id); ping <= 0 {
				t.Fatalf("ping after the partition: %v", ping)
			}
		})
	}
}

// saysAgentLost reports whether an error message says that the agent went
// away or could not be reached.
func saysAgentLost(msg string) bool {
	for _, w := range []string{"not connected", "offline", "went away", "lost", "unreachable", "timed out", "deadline"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}
