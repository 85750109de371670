package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// TestRolloutTwentyNodes: one call flushes a 200-line properties file to
// 20 nodes (20 agents on loopback) and restarts them, one at a time and
// then all at once, and says how long each took.
func TestRolloutTwentyNodes(t *testing.T) {
	integrationTest(t)
	var ips []string
	for i := 1; i <= 20; i++ {
		ips = append(ips, fmt.Sprintf("127.0.96.%d", i))
	}
	e := startConfigEnv(t, "twenty", ips, 18097, 0)
	c := e.c
	layer := c.LayerFile(t, e.cl.ID, "broker", "app.properties")
	for _, tc := range []struct {
		name string
		body map[string]any
	}{
		{"one at a time", map[string]any{}},
		{"all at once", map[string]any{"allAtOnce": true}},
	} {
		// 200 lines: the 3 the package has and 197 more.
		for i := range 197 {
			c.SetLayerValue(t, layer.ID, fmt.Sprintf("setting.%03d", i), fmt.Sprintf("%s-%d", strings.ReplaceAll(tc.name, " ", "-"), i))
		}
		tc.body["clusterId"], tc.body["configFileId"] = e.cl.ID, layer.ID
		began := time.Now()
		ro := c.Rollout(t, "/cluster/config/flush", tc.body)
		job := c.WaitJob(t, ro.JobID, 3*time.Minute)
		took := time.Since(began)
		if job.State != "succeeded" || len(ro.NodeIDs) != 20 {
			t.Fatalf("%s:\n%s", tc.name, job)
		}
		var agent time.Duration
		for _, n := range e.nodes {
			s := job.Step(n.ID, "apply")
			if s.State != "succeeded" || s.Healthy == nil || !*s.Healthy || s.PidAfter == s.PidBefore {
				t.Fatalf("%s: node %s step %+v", tc.name, n.NodeDir, s)
			}
			agent = max(agent, time.Duration(s.DurationMs)*time.Millisecond)
		}
		for i := range e.nodes {
			if got := e.file(t, i); !strings.Contains(got, fmt.Sprintf("setting.196=%s-196\n", strings.ReplaceAll(tc.name, " ", "-"))) ||
				strings.Count(got, "\n") < 200 {
				t.Fatalf("%s: node %d's file:\n%s", tc.name, i+1, got)
			}
		}
		t.Logf("figure: rolling flush of a 200-line properties file to 20 nodes, %s: %v from the call to the job's end (slowest node on its agent %v)",
			tc.name, took.Round(time.Millisecond), agent.Round(time.Millisecond))
	}
}

// TestConfigFaults: an agent killed while it applies a file leaves the
// file old or new, never a mix, the job says so, and a flush after it is
// back finishes; a manager restarted during a rollout fails the job with
// the reason, and the nodes it was applying to are settled from their
// agents' records, so no node is left with a file the manager does not
// know of.
func TestConfigFaults(t *testing.T) {
	integrationTest(t)
	// The node takes 3 s to become healthy: time to break things.
	e := startConfigEnv(t, "faults", []string{"127.0.97.1", "127.0.97.2", "127.0.97.3"}, 18098, 3)
	c := e.c
	layer := c.LayerFile(t, e.cl.ID, "broker", "app.properties")
	file0 := c.NodeFile(t, e.nodes[0].ID, "app.properties")
	oldText := e.file(t, 0)
	parent := t // what outlives a subtest (a restarted agent) is the parent's

	t.Run("agent killed mid-apply", func(t *testing.T) {
		c.SetLayerValue(t, layer.ID, "limit", "1")
		newText := oldText + "limit=1\n"
		flushed := make(chan testenv.FlushResult, 1)
		go func() {
			var r testenv.FlushResult
			env, _, err := c.Try(http.MethodPost, "/cluster/node/config/flush", map[string]any{"configFileId": file0.ID, "nodeId": e.nodes[0].ID})
			if err == nil {
				_ = json.Unmarshal(env.Data, &r)
			}
			flushed <- r
		}()
		// Killed once the new file is there and the node restarting.
		testenv.Eventually(t, 30*time.Second, "the agent to write the new file", func() bool { return e.file(t, 0) != oldText })
		e.agents[0].Kill()
		r := <-flushed
		if r.Outcome != "interrupted" || !strings.Contains(r.Detail, "old or its new version") {
			t.Fatalf("flush whose agent died: %+v", r)
		}
		if got := e.file(t, 0); got != oldText && got != newText {
			t.Fatalf("the file is neither the old nor the new one:\n%s", got)
		}
		if n := c.Node(t, e.cl.ID, e.nodes[0].ID); n.SyncNodeConfigStatus != 2 {
			t.Fatalf("sync of a node whose apply was cut short: %d", n.SyncNodeConfigStatus)
		}
		e.agents[0] = restartAgent(parent, e.tm, c, e.agents[0], e.ips[0])
		r = c.Flush(t, e.cl.ID, e.nodes[0].ID, file0.ID)
		if r.Outcome != "applied" || e.file(t, 0) != newText {
			t.Fatalf("the retry: %+v\n%s", r, e.file(t, 0))
		}
		if n := c.Node(t, e.cl.ID, e.nodes[0].ID); n.SyncNodeConfigStatus != 0 || n.RunStatus != "running" {
			t.Fatalf("node after the retry: %+v", n)
		}
	})

	t.Run("manager restarted mid-rollout", func(t *testing.T) {
		c.SetLayerValue(t, layer.ID, "limit", "2")
		ro := c.Rollout(t, "/cluster/config/flush", map[string]any{"clusterId": e.cl.ID, "configFileId": layer.ID})
		var first string
		testenv.Eventually(t, 30*time.Second, "the first node to be applying", func() bool {
			for _, n := range c.Job(t, ro.JobID).Nodes {
				for _, s := range n.Steps {
					if s.State == "running" {
						first = n.NodeID
						return true
					}
				}
			}
			return false
		})
		// Once its agent has the new file (and waits for the node's health)
		// the manager goes away.
		i := slices.IndexFunc(e.nodes, func(n testenv.Node) bool { return n.ID == first })
		testenv.Eventually(t, 30*time.Second, "the agent to write the first node's file", func() bool { return strings.Contains(e.file(t, i), "limit=2") })
		e.tm.Restart()
		c = e.tm.Client(t, testenv.WithTimeout(2*time.Minute))
		job := c.WaitJob(t, ro.JobID, time.Minute)
		if job.State != "failed" || !strings.Contains(job.Reason, "manager restarted") {
			t.Fatalf("job across the restart:\n%s", job)
		}
		// Every node of the release ends settled: the one being applied
		// from its agent's record once the agent is back, the others
		// cancelled, untouched.
		var rel testenv.Release
		testenv.Eventually(t, 60*time.Second, "the interrupted node to be settled from its agent", func() bool {
			rel = c.Release(t, ro.ReleaseID)
			for _, n := range rel.Nodes {
				if n.State == "interrupted" || n.State == "applying" || n.State == "pending" {
					return false
				}
			}
			return true
		})
		for i, n := range e.nodes {
			var rn testenv.ReleaseNode
			for _, x := range rel.Nodes {
				if x.NodeID == n.ID {
					rn = x
				}
			}
			got := e.file(t, i)
			switch {
			case n.ID == first && rn.State == "applied":
				if got != rn.Content {
					t.Fatalf("node %d was applied, its file is not the release's:\n%s", i+1, got)
				}
			case n.ID == first:
				t.Fatalf("the node being applied ended %s: %s", rn.State, rn.Detail)
			case rn.State != "cancelled" || strings.Contains(got, "limit=2"):
				t.Fatalf("node %d not reached: %s, file:\n%s", i+1, rn.State, got)
			}
		}
		if n := c.Node(t, e.cl.ID, first); n.SyncNodeConfigStatus != 0 {
			t.Fatalf("the settled node's sync: %d", n.SyncNodeConfigStatus)
		}
	})
	if _, err := os.Stat(e.root); err != nil {
		t.Fatal(err)
	}
}
