package chaos

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestSlowLossyLinks makes an agent's link bad: slow and lossy (4 mbit/s,
// 2% of packets dropped each way, 200 ms each way), then very slow (1.5 s
// each way), then dead (every packet dropped, the link still up), then
// healthy again. Work must get done over the bad links, every call must
// come back (done, or failed with a reason) instead of hanging, the dead
// link must turn the server offline and calls for it fail saying so, and
// everything must recover once the link heals, without the node having
// been restarted behind anyone's back.
//
// Loss is nftables' numgen and the bandwidth tc tbf, in the host's
// namespace; the delay is a relay in front of the manager's tunnel,
// because this machine's kernel lacks tc netem (see hosts.Host.Loss).
func TestSlowLossyLinks(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	h := chaosNet.New(t)
	delay := startLatency(t, h.PeerIP, net.JoinHostPort("127.0.0.1", e.tunnelPort(t)))
	a := e.startAgentOn(t, h, delay.addr())
	// Calls may take long on these links; none may hang for ever.
	c := e.m.Client(t, testenv.WithTimeout(3*time.Minute))
	timed := func(what string, f func()) time.Duration {
		began := time.Now()
		f()
		took := time.Since(began)
		t.Logf("%s: %v", what, took.Round(time.Millisecond))
		return took
	}

	h.Rate(t, "4mbit")
	h.Loss(t, 2)
	delay.set(200 * time.Millisecond)
	var rtt float64
	timed("ping over 4 mbit/s, 200 ms each way, 2% loss", func() { rtt = c.Ping(t, a.id) })
	if rtt < 400 {
		t.Errorf("ping through a link with 200 ms each way took %.0f ms: is netem in place?", rtt)
	}
	p := c.UploadPackage(t, nodePackage(t, "1.0", false, nil, workloads.Entry{Name: "blob", Random: 8 << 20}))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "chaos-netem", PackageID: p.ID,
		BrokerList: []testenv.ClusterNode{a.place(t.TempDir(), 7100)}})
	n := c.Nodes(t, cl.ID)[0]
	var job testenv.Job
	timed("deploy of an 8 MiB package over the slow, lossy link", func() { job = c.WaitJob(t, c.DeployCluster(t, cl.ID), 5*time.Minute) })
	if job.State != "succeeded" {
		t.Fatalf("deploy over a slow, lossy link:\n%s", job)
	}
	t.Logf("transfer step: %s", job.Step(n.ID, "transfer").Detail)
	timed("restart over the slow, lossy link", func() { c.Cmd(t, n.ID, "restart") })

	h.Rate(t, "")
	h.Loss(t, 0)
	delay.set(1500 * time.Millisecond)
	timed("ping over 1.5 s each way", func() { rtt = c.Ping(t, a.id) })
	if rtt < 3000 {
		t.Errorf("ping through a link with 1.5 s each way took %.0f ms", rtt)
	}
	timed("node list (live state from the agent) over 1.5 s each way", func() {
		// The list does not wait for a slow agent: running, or unknown
		// when the agent's answer would come too late.
		got := c.Node(t, cl.ID, n.ID)
		if got.RunStatus != "running" && got.RunStatus != "unknown" {
			t.Errorf("node over a very slow link: run %s", got.RunStatus)
		}
		t.Logf("node listed as %s over a 3 s round trip", got.RunStatus)
	})

	delay.set(0)
	h.Loss(t, 100)
	timed("the server to turn offline behind a dead link", func() { c.WaitStatus(t, a.id, "offline", 2*time.Minute) })
	timed("ping over the dead link", func() {
		env, status, err := c.Try(http.MethodGet, "/server/ping?id="+a.id, nil)
		if err != nil || status == http.StatusOK || !saysAgentLost(strings.ToLower(env.Message)) {
			t.Errorf("ping over a dead link: HTTP %d code %d %q (%v); want a failure saying the agent is offline", status, env.Code, env.Message, err)
		}
	})
	timed("restart over the dead link", func() {
		env, status, err := c.Try(http.MethodPost, "/admq/cmd", map[string]string{"id": n.ID, "cmd": "restart"})
		if err != nil || status == http.StatusOK || !saysAgentLost(strings.ToLower(env.Message)) {
			t.Errorf("restart over a dead link: HTTP %d code %d %q (%v); want a failure saying the agent is offline", status, env.Code, env.Message, err)
		}
	})
	timed("node list over the dead link", func() {
		if got := c.Node(t, cl.ID, n.ID); got.RunStatus == "running" {
			t.Errorf("node behind a dead link listed as running: its state cannot be known")
		}
	})

	h.Loss(t, 0)
	timed("the server to come back once the link healed", func() { c.WaitStatus(t, a.id, "online", 2*time.Minute) })
	c.Ping(t, a.id)
	got := c.Node(t, cl.ID, n.ID)
	if s := starts(t, n.DataDir); len(s) != 2 || got.RunStatus != "running" || got.Pid != s[1] {
		t.Errorf("node after the bad links: run %s pid %d, started %d times (%v); want the deploy's start and the one restart asked for", got.RunStatus, got.Pid, len(s), s)
	}
}
