package hosts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// A Machine is a Debian system booted with systemd-nspawn inside a host's
// network namespace: systemd 252 as its PID 1, its own file system
// (unpacked from Rootfs), users, services and journal, as a real server
// has. There is no systemd-machined here, so the machine is not registered
// (--register=no, --keep-unit) and is driven with nsenter into its init's
// namespaces. Each machine runs in cgroups of its own, one child cgroup per
// hierarchy, so that two machines never share one.
type Machine struct {
	// Name is the machine's name and host name: the host's namespace name.
	Name string
	// Root is the machine's root directory on this machine: Root+"/etc"
	// is its /etc.
	Root string

	ns      string
	cgroups []string
	// Console is what systemd-nspawn and the machine's console printed.
	Console *testenv.SyncBuffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	init     int           // the machine's PID 1, as this machine numbers it
	exited   chan struct{} // closed when the current systemd-nspawn ended
	exitCode int
	off      bool
}

// machineEnv is the environment of commands run in a machine.
var machineEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}

// CanBoot says why machines cannot be booted here, or "".
func CanBoot() string {
	if os.Geteuid() != 0 {
		return "booting systemd machines needs root"
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter", "tar", "zstd", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Sprintf("booting systemd machines needs %s (Debian packages systemd-container, util-linux, tar, zstd, openssh-client)", bin)
		}
	}
	if _, err := cgroupParents(); err != nil {
		return err.Error()
	}
	return ""
}

// cgroupParents returns the hierarchies a machine needs a cgroup in:
// the unified one alone (cgroup v2), or the unified and the named systemd
// one of a hybrid layout.
func cgroupParents() ([]string, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}, nil
	}
	var out []string
	for _, d := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
			return nil, fmt.Errorf("booting systemd machines needs cgroup v2 or a hybrid layout with %s: %v", d, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Boot unpacks the root file system tarball (see Rootfs) for the host,
// boots it in the host's namespace and waits until systemd reports the
// system running. From then on the host's Exec and Enter run commands in
// the machine. It is powered off in cleanup, before the namespace goes.
func (h *Host) Boot(t testing.TB, rootfs string) *Machine {
	t.Helper()
	if h.Machine() != nil {
		t.Fatalf("%s already runs a machine", h.NS)
	}
	m, err := newMachine(h.NS, filepath.Join(t.TempDir(), "root"), h.NS)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after t.TempDir, so it runs before the root is removed:
	// a running machine (its journald) still writes there.
	t.Cleanup(m.Poweroff)
	began := time.Now()
	if err := m.unpack(rootfs); err != nil {
		t.Fatal(err)
	}
	unpacked := time.Since(began)
	h.mu.Lock()
	h.machine = m
	h.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console of machine %s:\n%s", m.Name, m.Console.String())
		}
	})
	if err := m.boot(); err != nil {
		t.Fatalf("boot %s: %v\n%s", m.Name, err, m.Console.String())
	}
	t.Logf("machine %s: root file system unpacked in %v, booted to running in %v (systemd-nspawn, %s)",
		m.Name, unpacked.Round(time.Millisecond), (time.Since(began) - unpacked).Round(time.Millisecond), m.systemdVersion())
	return m
}

// Probe boots a throwaway machine called name from the tarball, with no
// network, and powers it off: the proof that machines boot here. It
// returns how long the boot took and the machine's systemd version.
func Probe(name, rootfs string) (time.Duration, string, error) {
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	m, err := newMachine(name, filepath.Join(dir, "root"), "")
	if err != nil {
		return 0, "", err
	}
	if err := m.unpack(rootfs); err != nil {
		return 0, "", err
	}
	defer m.Poweroff()
	began := time.Now()
	if err := m.boot(); err != nil {
		return 0, "", fmt.Errorf("%w\n%s", err, tail([]byte(m.Console.String()), 2000))
	}
	return time.Since(began), m.systemdVersion(), nil
}

// newMachine is a machine called name with its root at root, to run in
// the network namespace ns ("": a private network of its own).
func newMachine(name, root, ns string) (*Machine, error) {
	parents, err := cgroupParents()
	if err != nil {
		return nil, err
	}
	m := &Machine{Name: name, Root: root, ns: ns, Console: &testenv.SyncBuffer{}}
	for _, p := range parents {
		m.cgroups = append(m.cgroups, filepath.Join(p, name))
	}
	return m, nil
}

// unpack makes the machine's root directory from the tarball and gives it
// an identity of its own: host name, machine id and SSH host keys.
func (m *Machine) unpack(rootfs string) error {
	if err := os.MkdirAll(m.Root, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("tar", "-C", m.Root, "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"-I", "zstd", "-xpf", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %v\n%s", rootfs, err, out)
	}
	id := make([]byte, 16)
	rand.Read(id)
	// The host name resolves locally, as the Debian installer sets it up:
	// sudo looks it up, and the machine has no DNS server to ask.
	for p, data := range map[string]string{
		"etc/hostname":   m.Name + "\n",
		"etc/hosts":      "127.0.0.1\tlocalhost\n127.0.1.1\t" + m.Name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"etc/machine-id": hex.EncodeToString(id) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(m.Root, p), []byte(data), 0o644); err != nil {
			return err
		}
	}
	if out, err := exec.Command("ssh-keygen", "-A", "-f", m.Root).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh host keys for %s: %v\n%s", m.Name, err, out)
	}
	return nil
}

// boot starts systemd-nspawn from the machine's own cgroups and waits
// until the machine runs.
func (m *Machine) boot() error {
	for _, cg := range m.cgroups {
		if err := os.MkdirAll(cg, 0o755); err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
	}
	args := []string{"-D", m.Root, "-b", "-M", m.Name, "--register=no", "--keep-unit", "--console=passive"}
	if m.ns != "" {
		args = append(args, "--network-namespace-path=/run/netns/"+m.ns)
	} else {
		args = append(args, "--private-network")
	}
	// The shell moves itself into the machine's cgroups, then becomes
	// systemd-nspawn there.
	script := `for g in $ADMQ_MACHINE_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 1; done; exec systemd-nspawn "$@"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Env = append(machineEnv, "ADMQ_MACHINE_CGROUPS="+strings.Join(m.cgroups, " "))
	cmd.Stdout, cmd.Stderr = m.Console, m.Console
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.exited, m.init, m.off = cmd, exited, 0, false
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		m.mu.Lock()
		m.exitCode = code
		m.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(90 * time.Second)
	// PID 1 is systemd-nspawn's child once it has become systemd.
	for {
		if pid := childNamed(cmd.Process.Pid, "systemd"); pid > 0 {
			m.mu.Lock()
			m.init = pid
			m.mu.Unlock()
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("systemd-nspawn exited with status %d", m.ExitCode())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("systemd did not start within 90s")
		}
	}
	var last string
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		c := exec.CommandContext(ctx, "nsenter", m.Enter("systemctl", "is-system-running", "--wait")...)
		c.Env = machineEnv
		out, _ := c.CombinedOutput()
		cancel()
		last = strings.TrimSpace(string(out))
		switch last {
		case "running":
			return nil
		case "degraded":
			failed, _ := m.run("systemctl", "--failed", "--no-legend", "--plain")
			return fmt.Errorf("booted degraded; failed units:\n%s", failed)
		}
		select {
		case <-exited:
			return fmt.Errorf("systemd-nspawn exited with status %d", m.ExitCode())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not running 90s after boot: is-system-running says %q", last)
		}
	}
}

// childNamed returns the pid of a child of ppid whose command is comm, or 0.
func childNamed(ppid int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) && s[open+1:close] == comm {
			return pid
		}
	}
	return 0
}

// Init is the machine's PID 1 as this machine numbers it; 0 while it is
// not running.
func (m *Machine) Init() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.init
}

// ExitCode is how the last systemd-nspawn ended: 133 after a reboot.
func (m *Machine) ExitCode() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitCode
}

// Enter is the nsenter arguments that run a command in the machine, in
// every namespace of its PID 1.
func (m *Machine) Enter(name string, args ...string) []string {
	return append([]string{"-t", strconv.Itoa(m.Init()), "-a", "--", name}, args...)
}

// Command is the command name args run in the machine.
func (m *Machine) Command(name string, args ...string) *exec.Cmd {
	c := exec.Command("nsenter", m.Enter(name, args...)...)
	c.Env = machineEnv
	return c
}

// run runs a command in the machine and returns its output.
func (m *Machine) run(name string, args ...string) (string, error) {
	out, err := m.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), m.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Exec runs a command in the machine and returns its output; the test
// fails if it fails.
func (m *Machine) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := m.run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Systemctl runs systemctl in the machine and returns its output and
// error (systemctl answers some questions with its exit status).
func (m *Machine) Systemctl(args ...string) (string, error) {
	out, err := m.Command("systemctl", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Property returns a property of a unit, as systemctl show -P prints it.
func (m *Machine) Property(t testing.TB, unit, name string) string {
	t.Helper()
	out, err := m.Systemctl("show", "-P", name, unit)
	if err != nil {
		t.Fatalf("systemctl show -P %s %s in %s: %v: %s", name, unit, m.Name, err, out)
	}
	return out
}

// Journal returns the unit's journal since the machine was made (every
// boot), one message per line.
func (m *Machine) Journal(t testing.TB, unit string) string {
	t.Helper()
	return m.Exec(t, "journalctl", "--no-pager", "-q", "-o", "cat", "-u", unit)
}

// Path is the path of p (an absolute path in the machine) on this machine.
func (m *Machine) Path(p string) string { return filepath.Join(m.Root, p) }

func (m *Machine) systemdVersion() string {
	out, err := m.run("systemctl", "--version")
	if err != nil {
		return "systemd ?"
	}
	first, _, _ := strings.Cut(out, "\n")
	if f := strings.Fields(first); len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return first
}

// Reboot reboots the machine as its administrator would (systemctl
// reboot): systemd stops every service and systemd-nspawn exits with 133,
// the status that asks for a restart, as systemd-nspawn@.service does;
// the same root file system is then booted again. It returns how long the
// machine took from the reboot command until it ran again.
func (m *Machine) Reboot(t testing.TB) time.Duration {
	t.Helper()
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	began := time.Now()
	m.run("systemctl", "reboot") // its connection may end before it answers
	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("machine %s still up 90s after systemctl reboot\n%s", m.Name, m.Console.String())
	}
	if code := m.ExitCode(); code != 133 {
		t.Fatalf("systemd-nspawn of %s exited with %d after systemctl reboot, want 133 (reboot)\n%s", m.Name, code, m.Console.String())
	}
	m.release()
	m.Console.WriteString("---- rebooted by the test ----\n")
	if err := m.boot(); err != nil {
		t.Fatalf("boot %s again: %v\n%s", m.Name, err, m.Console.String())
	}
	return time.Since(began)
}

// Poweroff shuts the machine down (SIGTERM to systemd-nspawn, which asks
// systemd to power off), kills whatever is left in its cgroups after 20s
// and removes them. It is safe to call more than once.
func (m *Machine) Poweroff() {
	m.mu.Lock()
	cmd, exited, off := m.cmd, m.exited, m.off
	m.off = true
	m.mu.Unlock()
	if off || cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
	}
	killCgroups(m.cgroups)
	<-exited
	m.release()
	removeCgroups(m.cgroups)
}

// release removes what systemd-nspawn leaves after it ended.
func (m *Machine) release() {
	os.RemoveAll("/run/systemd/nspawn/propagate/" + m.Name)
}

// killCgroups sends SIGKILL to every process in the cgroups and their
// children.
func killCgroups(dirs []string) {
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeCgroups removes the cgroups, children first.
func removeCgroups(dirs []string) {
	for _, d := range dirs {
		var all []string
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- {
			syscall.Rmdir(all[i])
		}
	}
}

// removeStaleMachines kills and removes the machines of a crashed run:
// whatever runs in cgroups with the prefix, and what systemd-nspawn left.
func removeStaleMachines(prefix string) {
	parents, err := cgroupParents()
	if err != nil {
		return
	}
	var stale []string
	for _, p := range parents {
		m, _ := filepath.Glob(filepath.Join(p, prefix+"*"))
		stale = append(stale, m...)
	}
	killCgroups(stale)
	time.Sleep(100 * time.Millisecond) // let the kernel reap them
	removeCgroups(stale)
	left, _ := filepath.Glob("/run/systemd/nspawn/propagate/" + prefix + "*")
	for _, d := range left {
		os.RemoveAll(d)
	}
}
