package chaos

import (
	"bufio"
	"database/sql"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // PRAGMA integrity_check on the manager's file

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/hosts"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// env is a manager process that agents on namespace hosts can reach.
type env struct {
	m *testenv.ManagerProcess
	c *testenv.Client
}

// newEnv starts admq-manager with its tunnel on every address and agents
// told to report metrics every second; args are more flags.
func newEnv(t *testing.T, o testenv.ManagerProcessOptions) *env {
	t.Helper()
	o.TunnelHost = "0.0.0.0"
	o.Args = append([]string{"--metrics-interval", "1s"}, o.Args...)
	m := testenv.StartManagerProcess(t, managerBin, o)
	return &env{m: m, c: m.Client(t)}
}

func (e *env) tunnelPort(t testing.TB) string {
	t.Helper()
	_, port, err := net.SplitHostPort(e.m.TunnelAddr())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// agent is an admq-agent process on a namespace host.
type agent struct {
	h        *hosts.Host
	args     []string
	stateDir string
	log      *testenv.SyncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	id   string
}

// startAgent makes a host, runs an agent on it with a new join token and
// waits until its server is online. The agent is killed in cleanup (its
// nodes die with the host's namespace); its log is shown on failure.
func (e *env) startAgent(t *testing.T) *agent {
	t.Helper()
	h := chaosNet.New(t)
	return e.startAgentOn(t, h, net.JoinHostPort(h.PeerIP, e.tunnelPort(t)))
}

// startAgentOn runs an agent on host h that dials the manager at
// managerAddr (the tunnel, or a relay in front of it), as startAgent does.
func (e *env) startAgentOn(t *testing.T, h *hosts.Host, managerAddr string) *agent {
	t.Helper()
	tok := e.c.CreateToken(t, 1, 0)
	a := &agent{h: h, stateDir: filepath.Join(t.TempDir(), "agent-"+h.NS), log: &testenv.SyncBuffer{}}
	a.args = []string{"run", "--manager", managerAddr, "--token", tok.Token,
		"--state-dir", a.stateDir, "--advertise-ip", h.IP}
	a.start(t)
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("admq-agent on %s:\n%s", h.NS, a.log.String())
		}
	})
	testenv.Eventually(t, 60*time.Second, "the agent on "+h.NS+" to enroll", func() bool {
		b, err := os.ReadFile(filepath.Join(a.stateDir, "agent.id"))
		a.id = strings.TrimSpace(string(b))
		return err == nil && a.id != ""
	})
	e.c.WaitStatus(t, a.id, "online", 60*time.Second)
	return a
}

func (a *agent) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("nsenter", a.h.NetEnter(agentBin, a.args...)...)
	cmd.Env = testenv.CleanEnv()
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start admq-agent on %s: %v", a.h.NS, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
}

// kill ends the agent with SIGKILL and waits for it; its nodes live on.
func (a *agent) kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
	a.log.WriteString("---- SIGKILL by the test ----\n")
}

// restart starts the agent again on its state dir.
func (a *agent) restart(t testing.TB) {
	t.Helper()
	a.kill()
	a.start(t)
}

// pid is the agent's process id, or 0 when it does not run.
func (a *agent) pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// place is where a node of the test goes on the agent's host.
func (a *agent) place(root string, port int) testenv.ClusterNode {
	return testenv.ClusterNode{ManagerIP: a.h.IP, ServerPort: port,
		ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}
}

// nodeScript is the program of the suite's nodes: it appends its pid to
// <dataDir>/starts, so that a test counts how often a node was started,
// and sleeps. With "slow" it ignores SIGTERM, so that stopping it takes
// the supervisor's whole grace period (10s) and a restart is an operation
// long enough to be cut in the middle.
const nodeScript = `#!/bin/sh
echo $$ >> "$1/starts"
if [ "$2" = slow ]; then trap '' TERM; fi
exec sleep 2147483647
`

// nodePackage builds admq-chaos-V<version>-x86.tar with the node script,
// the config files given (each a properties file under conf/) and the
// entries given, and returns its path.
func nodePackage(t testing.TB, version string, slow bool, configs map[string]string, entries ...workloads.Entry) string {
	t.Helper()
	mode := "normal"
	if slow {
		mode = "slow"
	}
	comp := manifest.Component{
		Start:      []string{"/bin/sh", "{programDir}/bin/node.sh", "{dataDir}", mode},
		ServerPort: 7100,
		Health:     manifest.Health{Command: []string{"/bin/true"}},
	}
	entries = append(entries, workloads.Entry{Name: "bin/node.sh", Data: []byte(nodeScript), Mode: 0o755})
	for name, text := range configs {
		comp.ConfigFiles = append(comp.ConfigFiles, manifest.ConfigFile{Name: name, Path: "conf/" + name})
		entries = append(entries, workloads.Entry{Name: "conf/" + name, Data: []byte(text)})
	}
	m := manifest.Manifest{ManifestVersion: 1, Name: "admq-chaos", Version: version, MqType: 3,
		Components: map[string]manifest.Component{"broker": comp}}
	return workloads.Build(t, t.TempDir(), "admq-chaos-V"+version+"-x86.tar", m, entries...)
}

// starts returns the pids a node recorded at each start.
func starts(t testing.TB, dataDir string) []int {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, "starts"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// integrityCheck runs PRAGMA integrity_check on the SQLite file (with its
// WAL, as the next open would see it) and fails the test unless it says ok.
func integrityCheck(t testing.TB, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		t.Fatalf("integrity_check of %s: %v", path, err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("integrity_check of %s: %v", path, err)
	}
	if len(got) != 1 || got[0] != "ok" {
		t.Fatalf("integrity_check of %s: %s", path, strings.Join(got, "\n"))
	}
	t.Logf("PRAGMA integrity_check of %s: ok", filepath.Base(path))
}

// jobs lists every job as GET /job shows them.
func jobs(t testing.TB, c *testenv.Client) []testenv.Job {
	t.Helper()
	var page struct {
		List []testenv.Job `json:"list"`
	}
	c.OK(t, "GET", "/job?pageSize=500", nil, &page)
	return page.List
}

// mountTmpfs mounts a tmpfs of size (e.g. "16m") at a new dir, unmounted
// in cleanup.
func mountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), prefix+"-tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", prefix+"-tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if exec.Command("umount", dir).Run() != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// removeStaleMounts unmounts the tmpfs a crashed run left.
func removeStaleMounts() {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == prefix+"-tmpfs" {
			exec.Command("umount", "-l", f[1]).Run()
		}
	}
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
