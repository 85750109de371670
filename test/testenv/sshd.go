package testenv

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDPath is where Debian's openssh-server puts the daemon.
const SSHDPath = "/usr/sbin/sshd"

// SSHD is OpenSSH's sshd that a test runs in the foreground on a loopback
// address and a free port, with its host keys, config and authorized keys
// in a temp dir of its own: the machine's /etc/ssh and ~/.ssh are neither
// read nor changed. Root may log in with the keys the test authorizes,
// never with a password (a password is always refused), so a test adds
// servers over SSH without making accounts.
type SSHD struct {
	IP   string
	Port int
	dir  string
	cmd  *exec.Cmd
	log  *SyncBuffer
	done chan struct{}
}

// NeedRoot skips t unless it runs as root, saying that what needs
// (a service installed, sshd) does.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root: skipped", what)
	}
}

// StartSSHD runs sshd on ip (a 127/8 address); it is stopped in cleanup,
// and its log printed there if the test failed. It skips t where sshd
// cannot run: not root, or no sshd installed.
func StartSSHD(t testing.TB, ip string) *SSHD {
	t.Helper()
	NeedRoot(t, "a real sshd")
	if _, err := os.Stat(SSHDPath); err != nil {
		t.Skipf("no %s (Debian package openssh-server; test/setup.sh installs it): %v", SSHDPath, err)
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{IP: ip, dir: t.TempDir(), log: &SyncBuffer{}}
	if err := os.Mkdir(filepath.Join(s.dir, "authorized"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"ed25519", "ecdsa"} {
		key := filepath.Join(s.dir, "host_"+typ)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	// A free port of ip: taken for a moment, then given to sshd.
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(ip, strconv.Itoa(s.Port)),
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"HostKey " + filepath.Join(s.dir, "host_ecdsa"),
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.dir, "authorized", "%u"),
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"LogLevel VERBOSE",
		"",
	}, "\n")
	cfgPath := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(SSHDPath, "-D", "-e", "-f", cfgPath)
	out, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s.done = make(chan struct{})
	up := make(chan struct{}, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Server listening on") {
				select {
				case up <- struct{}{}:
				default:
				}
			}
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("sshd %s:%d log:\n%s", ip, s.Port, s.log.String())
		}
	})
	select {
	case <-up:
	case <-s.done:
		t.Fatalf("sshd exited:\n%s", s.log.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("sshd did not listen on %s:%d within 15s:\n%s", ip, s.Port, s.log.String())
	}
	return s
}

// Authorize lets user log in with the public key (authorized_keys form).
func (s *SSHD) Authorize(t testing.TB, user, authorizedKey string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, "authorized", user), []byte(authorizedKey), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Log returns what sshd logged so far.
func (s *SSHD) Log() string { return s.log.String() }

// NewSSHKey makes an ed25519 key pair: the private key in OpenSSH PEM form
// (encrypted when passphrase is not empty) and the public key as an
// authorized_keys line.
func NewSSHKey(t testing.TB, passphrase string) (privatePEM, authorizedKey string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), string(ssh.MarshalAuthorizedKey(sshPub))
}

// AgentDir returns a new directory holding agentBin as the manager's SSH
// bootstrap looks for it: admq-agent-linux-<arch of this machine>.
func AgentDir(t testing.TB, agentBin string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(agentBin, filepath.Join(dir, "admq-agent-linux-"+runtime.GOARCH)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RemoveAgentServices removes, in cleanup and now, every agent service
// whose name starts with prefix that a bootstrap installed on this
// machine: stopped, uninstalled, its processes (running a binary under
// programRoot) killed and its files gone; a test's agent must not outlive
// it, even when the test failed half way.
//
// The service names are fixed, so two test processes installing them at
// once (two engineers' runs on one machine) would remove each other's:
// the second waits for the first, on a lock held until t ends.
func RemoveAgentServices(t testing.TB, prefix, programRoot string) {
	t.Helper()
	lockServices(t, prefix)
	clean := func() {
		scripts, _ := filepath.Glob("/etc/init.d/" + prefix + "*")
		units, _ := filepath.Glob("/etc/systemd/system/" + prefix + "*.service")
		for _, f := range append(scripts, units...) {
			name := strings.TrimSuffix(filepath.Base(f), ".service")
			if strings.HasPrefix(f, "/etc/init.d/") {
				_ = exec.Command(f, "stop").Run()
			} else {
				_ = exec.Command("systemctl", "disable", "--now", name).Run()
			}
			links, _ := filepath.Glob("/etc/rc?.d/[SK]??" + name)
			for _, l := range append(links, f, "/var/run/"+name+".pid", "/var/log/"+name+".log", "/var/log/"+name+".err") {
				os.Remove(l)
			}
		}
		killUnder(programRoot)
	}
	clean()
	t.Cleanup(clean)
}

// lockServices holds an exclusive lock on the services named with prefix
// until t ends.
func lockServices(t testing.TB, prefix string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), prefix+"services.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock of the %s* services: %v", prefix, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock of the %s* services: %v", prefix, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// killUnder kills every process whose executable lies under dir.
func killUnder(dir string) {
	if dir == "" || dir == "/" {
		return
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && strings.HasPrefix(exe, dir+"/") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
