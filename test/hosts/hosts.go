// Package hosts makes hosts for the test suites on this machine: network
// namespaces joined to this one by veth pairs, named with a suite's own
// prefix and addressed from its own subnet, which can be cut off (link
// down), made lossy (nftables) or slow (tc tbf); and, where the machine
// allows it, Debian machines booted in them with systemd-nspawn, so that a
// host has a real systemd as PID 1, its own file system, users and
// services.
//
// It is test-only support (like test/testenv): the suites under test/ import
// it, production code never does. Everything it makes is removed by the
// test that made it, even on failure; Net.RemoveStale removes what a
// crashed run left.
package hosts

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Net is one suite's share of the machine: the prefix of every name it
// makes (namespaces, links, nft tables, machines, cgroups) and the block
// of addresses its hosts get, a /29 each.
type Net struct {
	// Prefix starts every name; link names are the prefix, the host's
	// number and one letter, and Linux allows 15 characters.
	Prefix string
	// Subnet is divided into /29 blocks; host n (from 1) gets the n-th.
	Subnet netip.Prefix

	seq atomic.Int32
}

// Host is a machine made as a network namespace. Until a Machine is booted
// in it, it shares this machine's file system, users and processes, and
// only its network is its own.
type Host struct {
	// NS is the network namespace, /run/netns/NS.
	NS string
	// IP is the host's address, PeerIP this side's end of its link (where
	// the manager is reached from), and FreeIP an address routed towards
	// the host that nobody answers.
	IP, PeerIP, FreeIP string
	// Link is the host's interface, in NS. PeerLink is this side's end of
	// the pair, in this machine's namespace; empty when the link ends in
	// another namespace (a bridge's).
	Link, PeerLink string
	// Gateway is the host's default route, restored when its link comes
	// back up; empty: none.
	Gateway string

	prefix  string
	mu      sync.Mutex
	machine *Machine
}

// New makes a host on the next /29 of the net and removes it in cleanup.
func (n *Net) New(t testing.TB) *Host {
	t.Helper()
	i := int(n.seq.Add(1))
	base, ok := n.block(i)
	if !ok {
		t.Fatalf("hosts: %s has no room for host %d", n.Subnet, i)
	}
	addr := func(k int) string {
		a := base
		for range k {
			a = a.Next()
		}
		return a.String()
	}
	h := n.Namespace(t, fmt.Sprintf("%s-%d", n.Prefix, i))
	h.IP, h.PeerIP, h.FreeIP, h.Gateway = addr(2), addr(1), addr(5), addr(1)
	h.PeerLink, h.Link = fmt.Sprintf("%s%dh", n.Prefix, i), fmt.Sprintf("%s%dn", n.Prefix, i)
	t.Cleanup(func() { Try("ip", "link", "del", h.PeerLink) }) // gone with the namespace, normally
	Run(t, "ip", "link", "add", h.PeerLink, "type", "veth", "peer", "name", h.Link)
	Run(t, "ip", "link", "set", h.Link, "netns", h.NS)
	Run(t, "ip", "addr", "add", h.PeerIP+"/29", "dev", h.PeerLink)
	Run(t, "ip", "link", "set", h.PeerLink, "up")
	h.NetExec(t, "ip", "addr", "add", h.IP+"/29", "dev", h.Link)
	h.NetExec(t, "ip", "link", "set", h.Link, "up")
	h.NetExec(t, "ip", "link", "set", "lo", "up")
	h.NetExec(t, "ip", "route", "add", "default", "via", h.Gateway)
	h.Firewall(t)
	return h
}

// block returns the first address of the i-th /29 of the subnet.
func (n *Net) block(i int) (netip.Addr, bool) {
	if !n.Subnet.Addr().Is4() || n.Subnet.Bits() > 29 || i < 1 || i >= 1<<(29-n.Subnet.Bits()) {
		return netip.Addr{}, false
	}
	b := n.Subnet.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i) * 8
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// Namespace makes an empty network namespace called name (which should
// start with the prefix) and removes it, with every process in it, in
// cleanup. The caller gives it links and addresses.
func (n *Net) Namespace(t testing.TB, name string) *Host {
	t.Helper()
	h := &Host{NS: name, prefix: n.Prefix}
	t.Cleanup(func() {
		h.mu.Lock()
		m := h.machine
		h.mu.Unlock()
		if m != nil {
			m.Poweroff()
		}
		KillNamespace(h.NS)
	})
	Run(t, "ip", "netns", "add", h.NS)
	return h
}

// Enter is the nsenter arguments that run a command on the host: in its
// machine when one runs (every namespace of the machine's init), otherwise
// in its network namespace only (nsenter --net changes nothing else, so
// the command sees this machine's mounts, including those made later).
func (h *Host) Enter(name string, args ...string) []string {
	if m := h.Machine(); m != nil {
		return m.Enter(name, args...)
	}
	return h.NetEnter(name, args...)
}

// NetEnter is the nsenter arguments that run one of this machine's
// commands in the host's network namespace, machine or not: for ip, nft,
// tc and the like.
func (h *Host) NetEnter(name string, args ...string) []string {
	return append([]string{"--net=/run/netns/" + h.NS, "--", name}, args...)
}

// Command is the command name args run on the host (see Enter).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	if m := h.Machine(); m != nil {
		return m.Command(name, args...)
	}
	return exec.Command("nsenter", h.NetEnter(name, args...)...)
}

// Exec runs a command on the host (see Enter) and returns its output; the
// test fails if it fails.
func (h *Host) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return output(t, h.Command(name, args...))
}

// NetExec runs one of this machine's commands in the host's network
// namespace (see NetEnter); the test fails if it fails.
func (h *Host) NetExec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "nsenter", h.NetEnter(name, args...)...)
}

// Machine is the systemd machine running on the host, or nil.
func (h *Host) Machine() *Machine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.machine
}

// Firewall gives the host a stateful input chain (nft table inet <prefix>)
// that accepts everything for now, so that connection tracking follows
// every connection from its first packet, as on a server whose firewall
// was there before the agent.
func (h *Host) Firewall(t testing.TB) {
	t.Helper()
	rules := fmt.Sprintf(`table inet %s {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "lo" accept
		ct state established,related accept
	}
}
`, h.prefix)
	cmd := exec.Command("nsenter", h.NetEnter("nft", "-f", "-")...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", h.NS, err, out)
	}
}

// Accept lets new inbound connections from addr in (before CloseInbound).
func (h *Host) Accept(t testing.TB, addr string) {
	t.Helper()
	h.NetExec(t, "nft", "add", "rule", "inet", h.prefix, "input", "ip", "saddr", addr, "accept")
}

// CloseInbound drops every new inbound connection to the host; replies to
// connections the host opened still pass.
func (h *Host) CloseInbound(t testing.TB) {
	t.Helper()
	h.NetExec(t, "nft", "add", "rule", "inet", h.prefix, "input", "ct", "state", "new", "drop")
}

// SetLink takes the host's link down (a partition: nothing goes in or out)
// or up again, restoring its default route, which the kernel drops with
// the link.
func (h *Host) SetLink(t testing.TB, up bool) {
	t.Helper()
	state := map[bool]string{true: "up", false: "down"}[up]
	h.NetExec(t, "ip", "link", "set", h.Link, state)
	if up && h.Gateway != "" {
		h.NetExec(t, "ip", "route", "replace", "default", "via", h.Gateway)
	}
}

// Loss drops the given share of the host's packets (0 to 100 percent), in
// and out, at random, with an nftables rule (table inet <prefix>_loss);
// 0 removes the rule, 100 is a dead link that stays up. (tc netem would
// do it too, but kernels without CONFIG_NET_SCH_NETEM exist, this test
// machine's among them; nftables' numgen is in every kernel that runs
// the hosts' firewall.)
func (h *Host) Loss(t testing.TB, percent float64) {
	t.Helper()
	table := h.prefix + "_loss"
	cmd := exec.Command("nsenter", h.NetEnter("nft", "delete", "table", "inet", table)...)
	cmd.Run() // absent the first time
	if percent <= 0 {
		return
	}
	drop := "drop"
	if per10k := int(percent*100 + 0.5); per10k < 10000 {
		drop = fmt.Sprintf("numgen random mod 10000 < %d drop", per10k)
	}
	rules := fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority -10; policy accept;
		iifname "lo" accept
		%s
	}
	chain out {
		type filter hook output priority -10; policy accept;
		oifname "lo" accept
		%s
	}
}
`, table, drop, drop)
	cmd = exec.Command("nsenter", h.NetEnter("nft", "-f", "-")...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft loss rule in %s: %v\n%s", h.NS, err, out)
	}
}

// Rate caps the host's link at rate (as tc takes it, e.g. "1mbit") in
// both directions with a token bucket (tc tbf) whose queue holds up to
// 2s of traffic, so that bulk transfers crawl and everything queued behind
// them waits; "" removes the cap. The peer's end is capped only when it is
// in this machine's namespace.
func (h *Host) Rate(t testing.TB, rate string) {
	t.Helper()
	type end struct {
		link string
		cmd  func(name string, args ...string) *exec.Cmd
	}
	ends := []end{{h.Link, func(name string, a ...string) *exec.Cmd {
		return exec.Command("nsenter", h.NetEnter(name, a...)...)
	}}}
	if h.PeerLink != "" {
		ends = append(ends, end{h.PeerLink, exec.Command})
	}
	for _, e := range ends {
		var cmd *exec.Cmd
		if rate == "" {
			cmd = e.cmd("tc", "qdisc", "del", "dev", e.link, "root")
		} else {
			cmd = e.cmd("tc", "qdisc", "replace", "dev", e.link, "root", "tbf", "rate", rate, "burst", "16kb", "latency", "2s")
		}
		out, err := cmd.CombinedOutput()
		if err != nil && !(rate == "" && (bytes.Contains(out, []byte("No such file")) || bytes.Contains(out, []byte("Cannot delete qdisc with handle of zero")))) {
			t.Fatalf("tc on %s in %s: %v\n%s", e.link, h.NS, err, out)
		}
	}
}

// Reachable reports whether a TCP connection to the host's port opens
// from this machine.
func (h *Host) Reachable(port int, timeout time.Duration) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(h.IP, strconv.Itoa(port)), timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// InNS runs fn on an OS thread that has joined the host's network
// namespace: sockets fn opens belong to the host (and stay usable from any
// goroutine afterwards). The thread goes back to this machine's namespace
// before it is unlocked; if it cannot, it stays locked to the goroutine
// and exits with it. (The main thread must never be left in a host's
// namespace: removing the host kills every process whose main thread is
// there, the test included.)
func (h *Host) InNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("join %s: %w", h.NS, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// DialFrom opens a TCP connection from the host's namespace.
func (h *Host) DialFrom(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.InNS(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// KillNamespace kills every process in the network namespace and deletes
// it; the test process itself is never killed.
func KillNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	Try("ip", "netns", "del", ns)
}

// LockPath is the lock every suite that makes hosts holds while it runs
// (test/e2e's, whose name it keeps), so that two such suites never run at
// once: they share /etc, mounts and the machine's load. test/browser holds
// it too, because Chromium fails requests when links change under it.
const LockPath = "/tmp/admqe2e.lock"

// Lock takes LockPath, waiting for the suite that holds it; unlock
// releases it.
func Lock() (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// RemoveStale removes what a crashed run of the suite left: machines and
// their cgroups, namespaces, and links with the prefix.
func (n *Net) RemoveStale() {
	removeStaleMachines(n.Prefix)
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], n.Prefix) {
			KillNamespace(f[0])
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, n.Prefix) {
				Try("ip", "link", "del", name)
			}
		}
	}
}

// Run runs a command on this machine and returns its output; the test
// fails if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return output(t, exec.Command(name, args...))
}

func output(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// Try runs a command for cleanup: failures are returned, not fatal.
func Try(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
