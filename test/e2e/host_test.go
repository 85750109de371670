package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
)

const sshdPath = "/usr/sbin/sshd"

// run runs a command and fails the test if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return hosts.Run(t, name, args...)
}

// try runs a command for cleanup: failures are returned, not fatal.
func try(name string, args ...string) error { return hosts.Try(name, args...) }

// ---------------------------------------------------------------------------
// Hosts: a network namespace joined to this one by a veth pair (test/hosts).

// e2eNet is the suite's share of the machine: names with the prefix, hosts
// on /29s of 198.19.100.0/22.
var e2eNet = &hosts.Net{Prefix: prefix, Subnet: netip.MustParsePrefix("198.19.100.0/22")}

// host is a machine made as a network namespace. It shares this machine's
// file system, users and processes, and only its network is its own, until
// a systemd machine is booted in it (see newMachine).
type host struct {
	*hosts.Host
	t testing.TB
}

// newHost makes a host on the next /29 and removes it in cleanup.
func newHost(t testing.TB) *host {
	t.Helper()
	return &host{Host: e2eNet.New(t), t: t}
}

// exec runs a command on the host (in its machine, if one runs).
func (h *host) exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return h.Exec(t, name, args...)
}

// enter is the nsenter arguments that run a command on the host. Unlike
// `ip netns exec`, nsenter --net changes only the network namespace: the
// command sees this machine's mounts, including those made later.
func (h *host) enter(name string, args ...string) []string { return h.Enter(name, args...) }

// firewall gives the host a stateful input chain that accepts everything
// for now (hosts.Host.Firewall).
func (h *host) firewall(t testing.TB) { t.Helper(); h.Firewall(t) }

// closeInbound drops every new inbound connection to the host; replies to
// connections the host opened still pass.
func (h *host) closeInbound(t testing.TB) { t.Helper(); h.CloseInbound(t) }

// reachable reports whether a TCP connection to the host's port opens.
func (h *host) reachable(port int, timeout time.Duration) bool { return h.Reachable(port, timeout) }

// inNS runs fn on an OS thread in the host's network namespace
// (hosts.Host.InNS).
func (h *host) inNS(fn func() error) error { return h.InNS(fn) }

// dialFrom opens a TCP connection from the host's namespace.
func (h *host) dialFrom(addr string, timeout time.Duration) (net.Conn, error) {
	return h.DialFrom(addr, timeout)
}

// ---------------------------------------------------------------------------
// sshd on a host.

type sshd struct {
	t    testing.TB
	h    *host
	dir  string
	port int
	cmd  *exec.Cmd
	log  *testenv.SyncBuffer
	done chan struct{}
}

// startSSHD runs OpenSSH's sshd in the foreground inside the host, with its
// own host keys and config in a temp dir; it is killed in cleanup.
func startSSHD(t testing.TB, h *host) *sshd {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // its privilege separation dir
		t.Fatal(err)
	}
	s := &sshd{t: t, h: h, dir: t.TempDir(), port: 22}
	if err := os.MkdirAll(filepath.Join(s.dir, "authorized_keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.newHostKeys(t)
	cfg := fmt.Sprintf(`ListenAddress %s:%d
HostKey %s/ssh_host_ed25519_key
HostKey %s/ssh_host_ecdsa_key
PidFile %s/sshd.pid
AuthorizedKeysFile %s/authorized_keys/%%u
# Passwords are checked against /etc/shadow directly: no PAM needed.
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
StrictModes no
MaxStartups 50
LogLevel VERBOSE
`, h.IP, s.port, s.dir, s.dir, s.dir, s.dir)
	if err := os.WriteFile(filepath.Join(s.dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log (%s):\n%s", h.NS, s.log.String())
		}
	})
	return s
}

func (s *sshd) newHostKeys(t testing.TB) {
	t.Helper()
	for _, typ := range []string{"ed25519", "ecdsa"} {
		f := filepath.Join(s.dir, "ssh_host_"+typ+"_key")
		os.Remove(f)
		os.Remove(f + ".pub")
		run(t, "ssh-keygen", "-q", "-t", typ, "-N", "", "-f", f)
	}
}

func (s *sshd) start(t testing.TB) {
	t.Helper()
	if s.log == nil {
		s.log = &testenv.SyncBuffer{}
	}
	s.cmd = exec.Command("nsenter", s.h.enter(sshdPath, "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config"))...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	pw.Close()
	s.done = make(chan struct{})
	listening := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Server listening on") {
				once.Do(func() { close(listening) })
			}
		}
		pr.Close()
		s.cmd.Wait()
	}()
	select {
	case <-listening:
	case <-s.done:
		t.Fatalf("sshd exited:\n%s", s.log.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("sshd did not listen within 10s:\n%s", s.log.String())
	}
}

// stop kills sshd (its sessions live on, as with a real restart).
func (s *sshd) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// restartWithNewKeys is a reinstalled host: same address, new host keys.
func (s *sshd) restartWithNewKeys(t testing.TB) {
	t.Helper()
	s.stop()
	s.newHostKeys(t)
	s.start(t)
}

// authorize lets user log in with the public key.
func (s *sshd) authorize(t testing.TB, user, pubKey string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys", user), []byte(pubKey), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Users: real accounts (the namespaces share /etc/passwd with this machine).

// userMu serializes useradd/userdel, which lock /etc/passwd.
var userMu sync.Mutex

var userSeq atomic.Int32

type sudoMode int

const (
	noSudo sudoMode = iota
	sudoNoPassword
	sudoPassword
)

// newUser adds an account with a password and the given sudo rights; it
// is removed in cleanup.
func newUser(t testing.TB, password string, sudo sudoMode) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, userSeq.Add(1))
	userMu.Lock()
	defer userMu.Unlock()
	t.Cleanup(func() { removeUser(name) })
	run(t, "useradd", "-m", "-s", "/bin/sh", name)
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	rule := ""
	switch sudo {
	case sudoNoPassword:
		rule = name + " ALL=(ALL) NOPASSWD:ALL\n"
	case sudoPassword:
		rule = name + " ALL=(ALL) ALL\n"
	}
	if rule != "" {
		if err := os.WriteFile(filepath.Join("/etc/sudoers.d", name), []byte(rule), 0o440); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

func removeUser(name string) {
	userMu.Lock()
	defer userMu.Unlock()
	os.Remove(filepath.Join("/etc/sudoers.d", name))
	exec.Command("pkill", "-KILL", "-u", name).Run()
	try("userdel", "-r", "-f", name)
}

// ---------------------------------------------------------------------------
// File systems for bad-disk cases.

// mountTmpfs mounts a tmpfs with opts at a new dir, unmounted in cleanup.
// Mounts are shared with the namespaces, which change only the network.
func mountTmpfs(t testing.TB, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), prefix+"-tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", opts, prefix+"-tmpfs", dir)
	t.Cleanup(func() {
		if err := try("umount", dir); err != nil {
			try("umount", "-l", dir)
		}
	})
	return dir
}

// ---------------------------------------------------------------------------
// Agent services installed by the tests.

// removeService uninstalls the agent service name, kills whatever still
// runs the binary and removes the service's files: a test's agent must not
// outlive it.
func removeService(t testing.TB, h *host, name, binary, stateDir string) {
	if _, err := os.Stat(binary); err == nil {
		if err := try("nsenter", h.enter(binary, "uninstall", "--service-name", name, "--state-dir", stateDir, "--purge")...); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	killExe(binary)
	removeServiceFiles(name)
}

// killExe kills every process running the executable at path.
func killExe(path string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && (exe == path || exe == path+" (deleted)") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeServiceFiles removes what kardianos/service writes for a service
// under System V init or systemd.
func removeServiceFiles(name string) {
	if b, err := os.ReadFile("/var/run/" + name + ".pid"); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	links, _ := filepath.Glob("/etc/rc?.d/[SK]??" + name)
	for _, f := range append(links,
		"/etc/init.d/"+name, "/etc/systemd/system/"+name+".service",
		"/var/run/"+name+".pid", "/var/log/"+name+".log", "/var/log/"+name+".err") {
		os.Remove(f)
	}
}

// serviceInstalled reports whether a definition of the service exists.
func serviceInstalled(name string) bool {
	for _, f := range []string{"/etc/init.d/" + name, "/etc/systemd/system/" + name + ".service"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Leftovers of a crashed run.

// removeStale removes machines, namespaces, links, services, users,
// sudoers drop-ins and mounts with the prefix.
func removeStale() {
	e2eNet.RemoveStale()
	scripts, _ := filepath.Glob("/etc/init.d/" + prefix + "*")
	for _, s := range scripts {
		exec.Command(s, "stop").Run()
		removeServiceFiles(filepath.Base(s))
	}
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.Contains(f[1], prefix) {
				try("umount", "-l", f[1])
			}
		}
	}
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(name, prefix) {
				removeUser(name)
			}
		}
	}
	drops, _ := filepath.Glob("/etc/sudoers.d/" + prefix + "*")
	for _, d := range drops {
		os.Remove(d)
	}
}
