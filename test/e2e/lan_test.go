package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
)

// A LAN: hosts that reach each other directly, as the servers of one data
// centre do, with the manager on the same network but firewalled out.
//
// The switch is a bridge inside a namespace of its own, so that whatever
// filtering this machine applies to bridged or forwarded traffic (a
// FORWARD policy, br_netfilter) cannot touch the hosts' traffic:
//
//	root namespace (manager, test)   admqe2e-lan (bridge br0)   admqe2e-cN (host N)
//	admqe2e-m 198.18.7.1/24  <-veth->   m0 ─┐
//	                                        ├─ br0             eth0 198.18.7.(N+1)/24
//	                                   cN ──┘  <-veth->
const (
	lanNS     = prefix + "-lan"
	lanPrefix = "198.18.7."
	lanMask   = "/24"
	// lanManagerIP is the manager's address on the LAN.
	lanManagerIP = lanPrefix + "1"
	lanRootLink  = prefix + "-m"
)

// newLAN makes n hosts on the LAN, each with a firewall that drops every
// new inbound connection except from the other hosts; the manager's side
// can reach none of them. Everything is removed in cleanup.
func newLAN(t testing.TB, n int) []*host {
	t.Helper()
	t.Cleanup(func() {
		hosts.KillNamespace(lanNS)
		try("ip", "link", "del", lanRootLink)
	})
	run(t, "ip", "netns", "add", lanNS)
	inLAN := func(args ...string) { run(t, "ip", append([]string{"-n", lanNS}, args...)...) }
	inLAN("link", "add", "br0", "type", "bridge")
	inLAN("link", "set", "br0", "up")
	inLAN("link", "set", "lo", "up")

	run(t, "ip", "link", "add", lanRootLink, "type", "veth", "peer", "name", "m0", "netns", lanNS)
	run(t, "ip", "addr", "add", lanManagerIP+lanMask, "dev", lanRootLink)
	run(t, "ip", "link", "set", lanRootLink, "up")
	inLAN("link", "set", "m0", "master", "br0")
	inLAN("link", "set", "m0", "up")

	hosts := make([]*host, n)
	for i := range hosts {
		h := &host{Host: e2eNet.Namespace(t, fmt.Sprintf("%s-c%d", prefix, i+1)), t: t}
		h.IP, h.PeerIP, h.Link = fmt.Sprintf("%s%d", lanPrefix, i+2), lanManagerIP, "eth0"
		port := fmt.Sprintf("c%d", i+1)
		inLAN("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
		inLAN("link", "set", port, "master", "br0")
		inLAN("link", "set", port, "up")
		h.exec(t, "ip", "addr", "add", h.IP+lanMask, "dev", "eth0")
		h.exec(t, "ip", "link", "set", "eth0", "up")
		h.exec(t, "ip", "link", "set", "lo", "up")
		hosts[i] = h
	}
	for _, h := range hosts {
		h.firewall(t)
		for _, peer := range hosts {
			if peer != h {
				h.Accept(t, peer.IP)
			}
		}
		h.closeInbound(t)
	}
	return hosts
}

// ---------------------------------------------------------------------------
// admq-agent run by hand on a host (the README's "without inbound SSH" way,
// in the foreground instead of as a service).

type nsAgent struct {
	t        testing.TB
	h        *host
	args     []string
	stateDir string
	cmd      *exec.Cmd
	log      *testenv.SyncBuffer
	done     chan struct{}
}

// startNSAgent runs admq-agent on the host against the manager's tunnel
// port on the LAN; it is killed in cleanup, and its log shown on failure.
func startNSAgent(t testing.TB, h *host, tunnelPort, token string) *nsAgent {
	t.Helper()
	a := &nsAgent{t: t, h: h, stateDir: filepath.Join(t.TempDir(), "agent-"+h.NS), log: &testenv.SyncBuffer{}}
	a.args = []string{"run", "--manager", net.JoinHostPort(lanManagerIP, tunnelPort), "--token", token,
		"--state-dir", a.stateDir, "--advertise-ip", h.IP}
	a.start(t)
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("admq-agent on %s:\n%s", h.NS, a.log.String())
		}
	})
	return a
}

func (a *nsAgent) start(t testing.TB) {
	t.Helper()
	bin := filepath.Join(agentDir, "admq-agent-linux-amd64")
	a.cmd = exec.Command("nsenter", a.h.enter(bin, a.args...)...)
	a.cmd.Env = testenv.CleanEnv()
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start admq-agent on %s: %v", a.h.NS, err)
	}
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(a.cmd, a.done)
}

// kill ends the agent with SIGKILL and waits for it; its nodes live on.
func (a *nsAgent) kill() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Kill()
	<-a.done
	a.cmd = nil
}

// restart starts the agent again with its state dir (no token needed any
// more, but harmless).
func (a *nsAgent) restart(t testing.TB) {
	t.Helper()
	a.kill()
	a.log.WriteString("---- restarted by the test ----\n")
	a.start(t)
}

// serverID is the id the agent saved at enrollment.
func (a *nsAgent) serverID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.stateDir, "agent.id"))
	if err != nil {
		t.Fatalf("agent on %s: %v", a.h.NS, err)
	}
	return strings.TrimSpace(string(b))
}
