package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// Agents under a real systemd: the host is a Debian bookworm machine
// booted with systemd-nspawn in the host's network namespace, with systemd
// 252 as its PID 1, OpenSSH's server started at boot and a file system of
// its own. Nothing of the agent is there before the test: the manager
// installs it over SSH, as on a real server.
//
// The workload is NATS (its package carries the static nats-server binary,
// so the machine needs nothing of this machine's file system) plus a
// second node that the operator stops, to show which nodes come back after
// a reboot: those that should run.

// machineHost is a host with a systemd machine booted in it.
type machineHost struct {
	*host
	m *hosts.Machine
}

// newMachine makes a host and boots a systemd machine in it; the test
// skips, saying so, where machines cannot run (then agents are tested
// under System V init scripts only, by the bootstrap tests).
func newMachine(t *testing.T) machineHost {
	t.Helper()
	if machineRootfs == "" {
		t.Skipf("no systemd machine on this machine (%s): the agent's service ran under System V init scripts only (TestSSHBootstrap)", machineSkip)
	}
	t.Logf("hosts are systemd machines: %s", machineProbe)
	h := newHost(t)
	return machineHost{host: h, m: h.Boot(t, machineRootfs)}
}

// addUser adds an account with a password to the machine, allowed to sudo
// without a password.
func (mh machineHost) addUser(t *testing.T, name, password string) {
	t.Helper()
	mh.m.Exec(t, "useradd", "-m", "-s", "/bin/sh", name)
	cmd := mh.m.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd in %s: %v: %s", mh.m.Name, err, out)
	}
	if err := os.WriteFile(mh.m.Path("/etc/sudoers.d/"+name), []byte(name+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid (as the machine numbers it) runs in the machine.
func (mh machineHost) alive(pid int) bool {
	// The machine's /proc is mounted in its own mount namespace: ask there.
	return pid > 0 && mh.m.Command("test", "-d", "/proc/"+strconv.Itoa(pid)).Run() == nil
}

// natsHealthy asks the broker's monitoring port from inside the host.
func (mh machineHost) natsHealthy() bool {
	var ok bool
	mh.inNS(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(mh.IP, strconv.Itoa(workloads.NATSMonitorPort))+"/healthz", nil)
		resp, err := (&http.Transport{}).RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var v struct{ Status string }
		ok = json.NewDecoder(resp.Body).Decode(&v) == nil && v.Status == "ok"
		return nil
	})
	return ok
}

// TestAgentUnderSystemd installs the agent over SSH on a systemd machine
// and checks what its unit promises: a real unit, enabled, restarted by
// systemd after a SIGKILL without taking the nodes down (KillMode=process,
// the nodes are re-adopted), stop and start, logs in the journal, agent
// and running nodes back after a reboot (nodes stopped by the operator
// stay stopped), and uninstall --purge.
func TestAgentUnderSystemd(t *testing.T) {
	needHosts(t)
	if machineRootfs != "" { // a machine needs no share of /etc: run beside the others
		t.Parallel()
	}
	began := time.Now()
	mh := newMachine(t)
	m := mh.m
	tm := startManager(t, func(cfg *manager.Config) { cfg.AgentServiceName = "admq-agent" })
	c := tm.Client(t, bootstrapWait)
	const user, password = "deploy", "Under-Systemd-42"
	mh.addUser(t, user, password)
	const unit = "admq-agent"
	const programDir, dataDir = "/opt/admq", "/var/lib/admq"
	stateDir := dataDir + "/admq-agent"
	binary := programDir + "/admq-agent/admq-agent"

	// SSH bootstrap: sshd is the machine's own ssh.service.
	if st := m.Property(t, "ssh.service", "ActiveState"); st != "active" {
		t.Fatalf("ssh.service in the machine is %s", st)
	}
	start := time.Now()
	var srv testenv.Server
	c.OK(t, http.MethodPost, "/server", map[string]any{
		"room": "默认可用区", "managerIp": mh.IP, "sshPort": 22, "account": user, "password": password,
		"programDir": programDir, "dataDir": dataDir, "dataIp": mh.IP,
	}, &srv)
	t.Logf("figure: SSH bootstrap onto a systemd machine took %v", time.Since(start).Round(time.Millisecond))
	if srv.AgentStatus != "online" {
		t.Fatalf("bootstrapped server %+v", srv)
	}

	// A real systemd unit, enabled for boot, rendered from our template.
	for prop, want := range map[string]string{
		"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled",
		"FragmentPath": "/etc/systemd/system/" + unit + ".service",
		"Restart":      "always", "KillMode": "process",
	} {
		if got := m.Property(t, unit, prop); got != want {
			t.Errorf("%s of %s: %q, want %q", prop, unit, got, want)
		}
	}
	if _, err := os.Stat(m.Path("/etc/init.d/" + unit)); err == nil {
		t.Errorf("a System V init script was installed on a systemd machine")
	}
	if exec := m.Property(t, unit, "ExecStart"); !strings.Contains(exec, binary) || strings.Contains(exec, "::sha256:") {
		t.Errorf("ExecStart %s: want the uploaded binary and no join token", exec)
	}

	// Nodes: a NATS broker, and a second node the operator will stop.
	root := "/srv/admq"
	nats := c.UploadPackage(t, workloads.NATSPackage(t, t.TempDir()))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "systemd", PackageID: nats.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: mh.IP, ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}}})
	sleeper := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-sleeper-V1.0-x86.tar", manifest.Manifest{
		ManifestVersion: 1, Name: "admq-sleeper", Version: "1.0", MqType: 3,
		Components: map[string]manifest.Component{"storage": {
			Start: []string{"/bin/sleep", "infinity"}, ServerPort: 7999,
			Health: manifest.Health{Command: []string{"/bin/true"}},
		}}}))
	c.AddNodes(t, cl.ID, "storage", sleeper.ID, []testenv.ClusterNode{{
		ManagerIP: mh.IP, ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}})
	if job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy on the systemd machine:\n%s", job)
	}
	broker, stopped := nodesOf(t, c, cl.ID, "broker")[0], nodesOf(t, c, cl.ID, "storage")[0]
	if broker.RunStatus != "running" || !mh.alive(broker.Pid) || !mh.natsHealthy() {
		t.Fatalf("broker after deploy: %+v (healthy %v)", broker, mh.natsHealthy())
	}
	if _, err := os.Stat(m.Path(broker.ProgramDir + "/bin/nats-server")); err != nil {
		t.Fatalf("the broker's program is not in the machine's file system: %v", err)
	}
	if st := c.Cmd(t, stopped.ID, "stop"); st.Running {
		t.Fatalf("stop answered %+v", st)
	}

	// The agent alone killed (as the OOM killer or a crash would):
	// systemd restarts it (Restart=always), the broker keeps running
	// (KillMode=process) and is adopted.
	killAgent := func(whom string) time.Duration {
		mainPID, restarts := m.Property(t, unit, "MainPID"), m.Property(t, unit, "NRestarts")
		m.Exec(t, "systemctl", "kill", "--kill-whom="+whom, "-s", "KILL", unit)
		killed := time.Now()
		testenv.Eventually(t, 60*time.Second, "systemd to restart the killed agent", func() bool {
			pid := m.Property(t, unit, "MainPID")
			return m.Property(t, unit, "ActiveState") == "active" && pid != mainPID && pid != "0"
		})
		if n, _ := strconv.Atoi(restarts); m.Property(t, unit, "NRestarts") != strconv.Itoa(n+1) {
			t.Errorf("NRestarts %s after one SIGKILL, was %s", m.Property(t, unit, "NRestarts"), restarts)
		}
		c.WaitStatus(t, srv.ID, "online", 60*time.Second)
		return time.Since(killed)
	}
	took := killAgent("main")
	t.Logf("figure: agent SIGKILLed, restarted by systemd and online again after %v (RestartSec=5s)", took.Round(time.Millisecond))
	if n := c.Node(t, cl.ID, broker.ID); n.Pid != broker.Pid || n.RunStatus != "running" || !mh.natsHealthy() {
		t.Fatalf("broker after the agent was killed: pid %d (was %d) run %s", n.Pid, broker.Pid, n.RunStatus)
	}

	// systemctl kill without --kill-whom signals every process of the unit,
	// the nodes too (they run in the agent's cgroup): the restarted agent
	// starts the nodes that should run again, and only those.
	killAgent("all")
	testenv.Eventually(t, 60*time.Second, "the restarted agent to start the broker killed with it", func() bool {
		n := c.Node(t, cl.ID, broker.ID)
		return n.RunStatus == "running" && n.Pid != broker.Pid && mh.natsHealthy()
	})
	if n := c.Node(t, cl.ID, stopped.ID); n.RunStatus != "stopped" {
		t.Fatalf("the stopped node after systemctl kill: run %s", n.RunStatus)
	}
	broker = c.Node(t, cl.ID, broker.ID)

	// The agent logs to the journal.
	journal := m.Journal(t, unit)
	for _, want := range []string{"connected to manager", "node adopted"} {
		if !strings.Contains(journal, want) {
			t.Errorf("journalctl -u %s does not say %q:\n%s", unit, want, journal)
		}
	}

	// systemctl stop and start: offline while stopped, the broker untouched.
	m.Exec(t, "systemctl", "stop", unit)
	if st := m.Property(t, unit, "ActiveState"); st != "inactive" {
		t.Fatalf("after systemctl stop: %s", st)
	}
	c.WaitStatus(t, srv.ID, "offline", 30*time.Second)
	if !mh.alive(broker.Pid) || !mh.natsHealthy() {
		t.Fatalf("systemctl stop of the agent took the broker (pid %d) down", broker.Pid)
	}
	m.Exec(t, "systemctl", "start", unit)
	c.WaitStatus(t, srv.ID, "online", 60*time.Second)
	if n := c.Node(t, cl.ID, broker.ID); n.Pid != broker.Pid || n.RunStatus != "running" {
		t.Fatalf("broker after stop/start of the agent: pid %d (was %d) run %s", n.Pid, broker.Pid, n.RunStatus)
	}

	// A reboot: the agent starts at boot, the broker (desired running)
	// is started again, the stopped node stays stopped.
	rebooted := time.Now()
	took = m.Reboot(t)
	c.WaitStatus(t, srv.ID, "online", 90*time.Second)
	var after testenv.Node
	testenv.Eventually(t, 60*time.Second, "the broker to run again after the reboot", func() bool {
		after = c.Node(t, cl.ID, broker.ID)
		return after.RunStatus == "running" && after.Pid > 0 && mh.natsHealthy()
	})
	t.Logf("figure: machine rebooted to running in %v; agent online and broker healthy %v after the reboot command",
		took.Round(time.Millisecond), time.Since(rebooted).Round(time.Millisecond))
	if n := c.Node(t, cl.ID, stopped.ID); n.RunStatus != "stopped" || n.Pid != 0 {
		t.Fatalf("node stopped by the operator after the reboot: run %s pid %d", n.RunStatus, n.Pid)
	}
	if boots := strings.Count(m.Exec(t, "journalctl", "--no-pager", "-q", "--list-boots"), "\n"); boots < 2 {
		t.Errorf("journal lists %d boots, want 2 (it is kept across reboots)", boots)
	}

	// uninstall --purge: the unit and the identity go; the nodes are
	// forgotten, not stopped (see the README).
	out := m.Exec(t, binary, "uninstall", "--service-name", unit, "--state-dir", stateDir, "--purge")
	if !strings.Contains(out, "uninstalled service "+unit) {
		t.Errorf("uninstall said: %s", out)
	}
	if st := m.Property(t, unit, "LoadState"); st != "not-found" {
		t.Errorf("LoadState after uninstall: %s", st)
	}
	for _, p := range []string{"/etc/systemd/system/" + unit + ".service", "/etc/systemd/system/multi-user.target.wants/" + unit + ".service", stateDir} {
		if _, err := os.Lstat(m.Path(p)); err == nil {
			t.Errorf("%s left after uninstall --purge", p)
		}
	}
	if pids, _ := m.Systemctl("show", "-P", "MainPID", unit); pids != "0" && pids != "" {
		t.Errorf("agent still runs as pid %s", pids)
	}
	c.WaitStatus(t, srv.ID, "offline", 30*time.Second)
	if !mh.natsHealthy() {
		t.Errorf("uninstall stopped the broker; the README says nodes are left running")
	}
	t.Logf("figure: TestAgentUnderSystemd took %v in all", time.Since(began).Round(time.Millisecond))
}
