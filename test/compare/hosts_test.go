package compare

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// prefix names everything the comparison makes on the machine; its hosts
// take /30 networks from 198.18.128.0/18.
const prefix = "admqcmp"

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func try(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// host is a machine made as a network namespace joined to this one by a
// veth pair; it shares this machine's file system.
type host struct {
	n      int
	NS     string
	IP     string // the host's address
	PeerIP string // this side's address
	Dir    string // this host's own files
}

// hostNet returns host n's /30: its address and this side's.
func hostNet(n int) (ip, peer string) {
	base := n * 4 // 198.18.128.0 + base
	b3, b4 := 128+base/256, base%256
	return fmt.Sprintf("198.18.%d.%d", b3, b4+2), fmt.Sprintf("198.18.%d.%d", b3, b4+1)
}

func newHost(t testing.TB, n int, dir string) *host {
	t.Helper()
	if n < 1 || n > 4000 {
		t.Fatalf("host %d: out of 198.18.128.0/18", n)
	}
	ip, peer := hostNet(n)
	h := &host{n: n, NS: fmt.Sprintf("%s-%d", prefix, n), IP: ip, PeerIP: peer, Dir: filepath.Join(dir, fmt.Sprintf("host%d", n))}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	vh, vn := fmt.Sprintf("%s%dh", prefix, n), fmt.Sprintf("%s%dn", prefix, n)
	t.Cleanup(func() {
		killNamespace(h.NS)
		_ = try("ip", "link", "del", vh)
	})
	run(t, "ip", "netns", "add", h.NS)
	run(t, "ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
	run(t, "ip", "link", "set", vn, "netns", h.NS)
	run(t, "ip", "addr", "add", peer+"/30", "dev", vh)
	run(t, "ip", "link", "set", vh, "up")
	h.exec(t, "ip", "addr", "add", ip+"/30", "dev", vn)
	h.exec(t, "ip", "link", "set", vn, "up")
	h.exec(t, "ip", "link", "set", "lo", "up")
	h.exec(t, "ip", "route", "add", "default", "via", peer)
	return h
}

func (h *host) exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, "nsenter", h.enter(name, args...)...)
}

// enter is the nsenter arguments that run a command on the host (its
// network namespace; the machine's mounts).
func (h *host) enter(name string, args ...string) []string {
	return append([]string{"--net=/run/netns/" + h.NS, "--", name}, args...)
}

// start runs a long-lived command on the host until the test ends.
func (h *host) start(t testing.TB, logName string, name string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(h.Dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", h.enter(name, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s on %s: %v", name, h.NS, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	return cmd
}

// startSSHD runs sshd on the host, letting root in with the key whose
// public half is in authorizedKeys.
func (h *host) startSSHD(t testing.TB, authorizedKeys string) {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(h.Dir, "ssh_host_ed25519_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	cfg := fmt.Sprintf(`ListenAddress %s:22
HostKey %s
PidFile %s/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile %s
StrictModes no
UsePAM no
MaxStartups 200
MaxSessions 100
LogLevel ERROR
`, h.IP, key, h.Dir, authorizedKeys)
	conf := filepath.Join(h.Dir, "sshd_config")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start(t, "sshd.log", "/usr/sbin/sshd", "-D", "-e", "-f", conf)
	deadline := time.Now().Add(10 * time.Second)
	for try("nsenter", h.enter("bash", "-c", "exec 3<>/dev/tcp/"+h.IP+"/22")...) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("sshd on %s does not listen", h.NS)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killNamespace kills every process in the namespace and deletes it.
func killNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_ = try("ip", "netns", "del", ns)
}

// removeStale removes what a crashed earlier run left.
func removeStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			killNamespace(f[0])
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(links), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if strings.HasPrefix(name, prefix) {
				_ = try("ip", "link", "del", name)
			}
		}
	}
}

// lockRun takes the lock test/e2e takes, so the two never run at once.
func lockRun(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/tmp/admqe2e.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
