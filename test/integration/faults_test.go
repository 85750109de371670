package integration

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// These tests break a deployment the way production breaks it — an agent
// killed in the middle of a transfer, a program that dies at once, a disk
// that fills up during the unpack, a command for a node whose agent is
// gone — with a real manager and real admq-agent processes, and look only
// at what the REST API (and the agent's disk) shows. Each test has a
// loopback address of its own (127.0.88.x; Linux answers all of 127/8), so
// that the nodes' ports meet no other test's.

// faultEnv is a manager with one enrolled agent.
type faultEnv struct {
	tm *testenv.Manager
	c  *testenv.Client
	a  *testenv.Agent
	ip string
	// root holds the nodes' dirs.
	root string
}

// startFaultEnv starts a manager and an agent advertising ip. Processes
// left running with their working dir under root (nodes, which outlive a
// killed agent) are killed in cleanup, after the agent.
func startFaultEnv(t *testing.T, ip, root string) *faultEnv {
	t.Helper()
	t.Cleanup(func() {
		if pids := killProcsUnder(root); len(pids) > 0 {
			t.Logf("cleanup: killed node processes %v left running under %s", pids, root)
		}
	})
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	a, _ := enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token, AdvertiseIP: ip})
	return &faultEnv{tm: tm, c: c, a: a, ip: ip, root: root}
}

// killAgent kills the agent with SIGKILL and waits until the API shows its
// server offline; it returns how long the manager took to notice.
func (e *faultEnv) killAgent(t *testing.T) time.Duration {
	t.Helper()
	id := e.a.ID(t)
	e.a.Kill()
	return e.c.WaitStatus(t, id, "offline", 30*time.Second)
}

// oneNodeCluster creates cluster name with one broker of pkgID on the
// agent's server, its program dir under progRoot, and returns the node.
func (e *faultEnv) oneNodeCluster(t *testing.T, name, pkgID, progRoot string, port int) testenv.Node {
	t.Helper()
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: name, PackageID: pkgID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: e.ip, ServerPort: port,
		ProgramDir: progRoot + "/opt/{cluster}/{nodeDir}", DataDir: e.root + "/data/{cluster}/{nodeDir}",
	}}})
	nodes := e.c.Nodes(t, cl.ID)
	if len(nodes) != 1 {
		t.Fatalf("cluster %s has nodes %+v: want one broker", name, nodes)
	}
	return nodes[0]
}

// sleeperManifest is a broker that sleeps in the foreground and is
// healthy as long as /bin/true is: for tests about everything but the
// program.
func sleeperManifest(name string, port int) manifest.Manifest {
	return manifest.Manifest{
		ManifestVersion: 1, Name: name, Version: "1.0", MqType: 3, Description: "sleeps, for fault tests",
		Components: map[string]manifest.Component{"broker": {
			Start:      []string{"/bin/sh", "-c", "exec sleep 3600"},
			ServerPort: port,
			Health:     manifest.Health{Command: []string{"/bin/true"}, TimeoutSeconds: 5, IntervalSeconds: 1, StartSeconds: 30},
		}},
	}
}

// resumedRE finds the resume offset in a transfer step's detail.
var resumedRE = regexp.MustCompile(`resumed at (\d+)\)`)

// TestFaultAgentDiesMidTransfer: the agent is killed while a big package
// streams to it. The job fails, soon, saying the agent went away during
// the transfer; once the agent is back, deploying again resumes the
// transfer where it stopped and succeeds.
func TestFaultAgentDiesMidTransfer(t *testing.T) {
	integrationTest(t)
	const (
		ip   = "127.0.88.1"
		size = 192 << 20
	)
	e := startFaultEnv(t, ip, t.TempDir())
	c := e.c

	began := time.Now()
	path := workloads.Build(t, t.TempDir(), "admq-big-V1.0-x86.tar", sleeperManifest("admq-big", 18081),
		workloads.Entry{Name: "lib/blob.bin", Random: size})
	built := time.Since(began)
	began = time.Now()
	pkg := c.UploadPackage(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	pkgSize := fi.Size()
	t.Logf("figure: package %s, %d bytes, built in %v, uploaded in %v",
		pkg.FileName, pkgSize, built.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	n := e.oneNodeCluster(t, "big", pkg.ID, e.root, 18081)

	// The agent keeps an interrupted transfer as <sha256>.part in its
	// package cache (agent/node/packages.go); it is killed once that holds
	// killAfter bytes, well inside the transfer (the file is polled every
	// millisecond; the bytes come at tens of MiB/s).
	const killAfter = 16 << 20
	part := filepath.Join(e.a.StateDir, "packages", pkg.SHA256+".part")
	jobID := c.DeployCluster(t, n.ClusterID)
	began = time.Now()
	deadline := began.Add(60 * time.Second)
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() >= killAfter {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no part of the package reached the agent in 60s:\n%s", c.Job(t, jobID))
		}
		time.Sleep(time.Millisecond)
	}
	e.a.Kill()
	killedAt := time.Now()
	fi, err = os.Stat(part)
	if err != nil {
		t.Fatalf("the partial package is gone after the agent's death: %v", err)
	}
	atKill := fi.Size()
	if atKill >= pkgSize {
		t.Fatalf("the whole package (%d bytes) arrived before the agent was killed: nothing to resume", pkgSize)
	}
	t.Logf("figure: agent killed %v after the deploy began, holding %d of %d bytes (%.1f%%)",
		killedAt.Sub(began).Round(time.Millisecond), atKill, pkgSize, 100*float64(atKill)/float64(pkgSize))

	// Polled more often than WaitJob does, for the figure.
	var job testenv.Job
	testenv.Eventually(t, 60*time.Second, "the job to end after the agent's death", func() bool {
		job = c.Job(t, jobID)
		return job.State == "succeeded" || job.State == "failed"
	})
	t.Logf("figure: job %s %v after the kill", job.State, time.Since(killedAt).Round(time.Millisecond))
	tr := job.Step(n.ID, "transfer")
	if job.State != "failed" || tr.State != "failed" {
		t.Fatalf("want the job and its transfer step failed:\n%s", job)
	}
	// What a user reads: the agent is gone, the transfer was cut short, and
	// what to do.
	for _, want := range []string{"the agent on " + ip + " went offline during the transfer of " + pkg.FileName, "deploy again", "resumes"} {
		if !strings.Contains(tr.Detail, want) {
			t.Errorf("transfer step detail %q does not say %q", tr.Detail, want)
		}
	}
	if strings.Contains(tr.Detail, "rpc error") {
		t.Errorf("transfer step detail is a raw gRPC error: %q", tr.Detail)
	}
	if !strings.Contains(job.Reason, tr.Detail) {
		t.Errorf("job reason %q does not carry the transfer step's detail %q", job.Reason, tr.Detail)
	}
	for _, s := range []string{"install", "configure", "start", "health"} {
		if st := job.Step(n.ID, s); st.State != "cancelled" {
			t.Errorf("step %s: %+v, want cancelled", s, st)
		}
	}
	t.Logf("transfer step: %s", tr.Detail)
	if got := c.Node(t, n.ClusterID, n.ID); got.DeployStatus != "failed" {
		t.Errorf("node deploy status %q after the failed job, want failed", got.DeployStatus)
	}

	// Back online on the same state dir, a new deploy resumes.
	id := e.a.ID(t)
	c.WaitStatus(t, id, "offline", 30*time.Second)
	e.a = restartAgent(t, e.tm, c, e.a, ip)
	began = time.Now()
	job = c.WaitJob(t, c.DeployCluster(t, n.ClusterID), 2*time.Minute)
	took := time.Since(began)
	if job.State != "succeeded" {
		t.Fatalf("deploy after the agent came back:\n%s", job)
	}
	tr = job.Step(n.ID, "transfer")
	m := resumedRE.FindStringSubmatch(tr.Detail)
	if tr.State != "succeeded" || m == nil {
		t.Fatalf("transfer step %+v: want succeeded, saying where it resumed", tr)
	}
	resumed, _ := strconv.ParseInt(m[1], 10, 64)
	if resumed != atKill {
		t.Errorf("transfer resumed at %d; the agent held %d bytes when it was killed", resumed, atKill)
	}
	t.Logf("figure: retry resumed at %d (%d bytes left to send) and the job succeeded in %v; transfer step: %s",
		resumed, pkgSize-resumed, took.Round(time.Millisecond), tr.Detail)
	if _, err := os.Stat(part); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the partial file is still there after a complete transfer: %v", err)
	}
	if d := c.DeleteCluster(t, n.ClusterID); len(d.NotCleaned) != 0 {
		t.Errorf("delete cluster left %+v", d.NotCleaned)
	}
}

// TestFaultStartExitsAtOnce: a node whose program exits at once fails its
// health step with the program's last words; the engine stops waiting
// once the agent reports the process crash-looping.
func TestFaultStartExitsAtOnce(t *testing.T) {
	integrationTest(t)
	const (
		ip           = "127.0.88.2"
		port         = 18082
		startSeconds = 30
		fatal        = "fatal: cannot read conf/app.conf"
	)
	e := startFaultEnv(t, ip, t.TempDir())
	c := e.c
	m := manifest.Manifest{
		ManifestVersion: 1, Name: "admq-crash", Version: "1.0", MqType: 3, Description: "exits at once",
		Components: map[string]manifest.Component{"broker": {
			Start:      []string{"/bin/sh", "-c", "echo '" + fatal + "' >&2; exit 3"},
			ServerPort: port,
			Health: manifest.Health{TCP: "{dataIp}:{serverPort}", TimeoutSeconds: 1, IntervalSeconds: 1,
				StartSeconds: startSeconds},
		}},
	}
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-crash-V1.0-x86.tar.gz", m))
	n := e.oneNodeCluster(t, "crash", pkg.ID, e.root, port)

	began := time.Now()
	job := c.WaitJob(t, c.DeployCluster(t, n.ClusterID), 2*time.Minute)
	took := time.Since(began)
	if job.State != "failed" {
		t.Fatalf("deploy of a program that exits at once: want a failed job:\n%s", job)
	}
	if st := job.Step(n.ID, "start"); st.State != "succeeded" {
		t.Errorf("start step %+v: want succeeded (the process was started)", st)
	}
	h := job.Step(n.ID, "health")
	if h.State != "failed" || !strings.Contains(h.Detail, fatal) {
		t.Fatalf("health step %+v: want failed, with the log line %q\n%s", h, fatal, job)
	}
	if !strings.Contains(job.Reason, fatal) {
		t.Errorf("job reason %q does not carry the log line", job.Reason)
	}
	crashLoop := strings.Contains(h.Detail, "the process exited")
	if !crashLoop {
		t.Errorf("health step does not say the process keeps exiting: %q", h.Detail)
	}
	t.Logf("figure: job failed %v after the deploy began (startSeconds %d; cut short by the crash-loop check: %v); health step:\n%s",
		took.Round(time.Millisecond), startSeconds, crashLoop, h.Detail)

	got := c.Node(t, n.ClusterID, n.ID)
	if got.DeployStatus != "failed" || got.RunStatus == "running" {
		t.Errorf("node after the failed deploy: deploy %s run %s: want failed, not running", got.DeployStatus, got.RunStatus)
	}
	if log := c.NodeLog(t, n.ID, 4096); !strings.Contains(log, fatal) {
		t.Errorf("node log %q does not hold %q", log, fatal)
	}
	t.Logf("node after the job: run status %s, %d restarts so far (the agent goes on restarting it with backoff)", got.RunStatus, got.Restarts)
	if d := c.DeleteCluster(t, n.ClusterID); len(d.NotCleaned) != 0 {
		t.Errorf("delete cluster left %+v", d.NotCleaned)
	}
}

// TestFaultDiskFullDuringUnpack: the disk of a node's program dir fills up
// during the unpack. The start step says so, the agent leaves nothing
// behind on that disk, and it goes on deploying: elsewhere, and in the
// same place once there is room.
func TestFaultDiskFullDuringUnpack(t *testing.T) {
	integrationTest(t)
	if os.Geteuid() != 0 {
		t.Skip("disk-full test: needs root to mount a small tmpfs; run as root to include it")
	}
	const (
		ip   = "127.0.88.3"
		blob = 8 << 20
	)
	root := t.TempDir()
	mnt := filepath.Join(root, "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "admq-fault-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("disk-full test: cannot mount a tmpfs (a container without CAP_SYS_ADMIN?): %v: %s", err, out)
	}
	// Registered after root's removal, so run before it (and, as the
	// environment's cleanup is registered later, after the agent and the
	// node processes are gone): a mounted dir cannot be removed.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it lazily", mnt, err, out)
			if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount -l %s: %v: %s", mnt, err, out)
			}
		}
	})
	e := startFaultEnv(t, ip, root)
	c := e.c
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-fat-V1.0-x86.tar.gz", sleeperManifest("admq-fat", 18083),
		workloads.Entry{Name: "lib/blob.bin", Random: blob}))
	n := e.oneNodeCluster(t, "full", pkg.ID, mnt, 18083)

	began := time.Now()
	job := c.WaitJob(t, c.DeployCluster(t, n.ClusterID), 2*time.Minute)
	if job.State != "failed" {
		t.Fatalf("deploy of %d bytes into a 2 MiB tmpfs: want a failed job:\n%s", blob, job)
	}
	st := job.Step(n.ID, "install")
	if st.State != "failed" || !strings.Contains(st.Detail, "no space left on device") {
		t.Fatalf("install step %+v: want failed, saying \"no space left on device\"\n%s", st, job)
	}
	if strings.Contains(st.Detail, "rpc error") {
		t.Errorf("install step detail is a raw gRPC error: %q", st.Detail)
	}
	if tr := job.Step(n.ID, "transfer"); tr.State != "succeeded" {
		t.Errorf("transfer step %+v: want succeeded (the agent's cache is on another disk)", tr)
	}
	t.Logf("figure: failed in %v; install step: %s", time.Since(began).Round(time.Millisecond), st.Detail)

	// Nothing left on the small disk: no program dir, no staging dir, no
	// file; the space is free again. The program dir's parents stay, empty
	// (the agent makes them before it unpacks, and deleting the cluster
	// leaves them too).
	var dirs []string
	_ = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == mnt {
			return nil
		}
		rel := strings.TrimPrefix(p, mnt+"/")
		switch {
		case !d.IsDir():
			t.Errorf("the failed unpack left the file %s on the tmpfs", rel)
		case p == n.ProgramDir || strings.HasPrefix(n.ProgramDir, p+"/"):
			dirs = append(dirs, rel)
		default:
			t.Errorf("the failed unpack left the dir %s on the tmpfs", rel)
		}
		return nil
	})
	if slices.Contains(dirs, strings.TrimPrefix(n.ProgramDir, mnt+"/")) {
		t.Errorf("the failed unpack left the program dir %s", n.ProgramDir)
	}
	t.Logf("left on the tmpfs after the failed unpack: the empty dirs %v", dirs)
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(mnt, &sfs); err != nil {
		t.Fatal(err)
	}
	if used := (sfs.Blocks - sfs.Bfree) * uint64(sfs.Bsize); used > 64<<10 {
		t.Errorf("%d bytes still used on the tmpfs after the failed unpack", used)
	}

	// The agent goes on: a node with its program dir on a big disk deploys.
	other := e.oneNodeCluster(t, "roomy", pkg.ID, root, 18084)
	job = c.WaitJob(t, c.DeployCluster(t, other.ClusterID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy with the program dir on a disk with room:\n%s", job)
	}
	// And the first node deploys where it failed once there is room.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount %s bigger: %v: %s", mnt, err, out)
	}
	job = c.WaitJob(t, c.DeployNode(t, n.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy of the node that failed, with room on its disk:\n%s", job)
	}
	if tr := job.Step(n.ID, "transfer"); tr.State != "skipped" {
		t.Errorf("transfer step %+v: want skipped (the agent holds the package)", tr)
	}
	for _, id := range []string{n.ClusterID, other.ClusterID} {
		if d := c.DeleteCluster(t, id); len(d.NotCleaned) != 0 {
			t.Errorf("delete cluster %s left %+v", id, d.NotCleaned)
		}
	}
}

// TestFaultCmdOnOfflineNode: a command for a node whose agent is down is
// refused at once, saying so, and not queued: when the agent is back the
// node still runs as before.
func TestFaultCmdOnOfflineNode(t *testing.T) {
	integrationTest(t)
	const (
		ip   = "127.0.88.4"
		port = 18085
	)
	e := startFaultEnv(t, ip, t.TempDir())
	c := e.c
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-sleep-V1.0-x86.tar.gz", sleeperManifest("admq-sleep", port)))
	n := e.oneNodeCluster(t, "offline", pkg.ID, e.root, port)
	if job := c.WaitJob(t, c.DeployCluster(t, n.ClusterID), 2*time.Minute); job.State != "succeeded" {
		t.Fatalf("deploy:\n%s", job)
	}
	before := c.Node(t, n.ClusterID, n.ID)
	if before.RunStatus != "running" || before.Pid == 0 {
		t.Fatalf("node after the deploy: run %s pid %d", before.RunStatus, before.Pid)
	}

	noticed := e.killAgent(t)
	t.Logf("figure: the API showed the server offline %v after the agent's SIGKILL", noticed.Round(time.Millisecond))
	if err := syscall.Kill(before.Pid, 0); err != nil {
		t.Fatalf("node process %d died with its agent: %v", before.Pid, err)
	}
	if got := c.Node(t, n.ClusterID, n.ID); got.RunStatus != "unknown" {
		t.Errorf("node run status %q with its agent offline, want unknown", got.RunStatus)
	}
	began := time.Now()
	env, status := c.Do(t, http.MethodPost, "/admq/cmd", map[string]string{"id": n.ID, "cmd": "stop"})
	t.Logf("figure: stop answered in %v: HTTP %d code %d (%s) %s", time.Since(began).Round(time.Millisecond), status, env.Code, env.Msg, env.Message)
	if env.Code != 1253 || status != http.StatusBadGateway || env.Msg != "SERVER_CANNOT_CONNECT" {
		t.Errorf("stop with the agent offline: HTTP %d code %d %s: want HTTP 502, code 1253 SERVER_CANNOT_CONNECT", status, env.Code, env.Msg)
	}
	for _, want := range []string{ip, "offline", "nothing was sent or queued"} {
		if !strings.Contains(env.Message, want) {
			t.Errorf("message %q does not say %q", env.Message, want)
		}
	}

	e.a = restartAgent(t, e.tm, c, e.a, ip)
	after := c.Node(t, n.ClusterID, n.ID)
	if after.RunStatus != "running" || after.Pid != before.Pid {
		t.Errorf("node after the agent came back: run %s pid %d, want running with pid %d as before", after.RunStatus, after.Pid, before.Pid)
	}
	if err := syscall.Kill(before.Pid, 0); err != nil {
		t.Errorf("node process %d is gone after the agent came back: %v", before.Pid, err)
	}
	// The agent took the node back: a command now works.
	if st := c.Cmd(t, n.ID, "stop"); st.Running {
		t.Errorf("stop with the agent back: %+v", st)
	}
	if d := c.DeleteCluster(t, n.ClusterID); len(d.NotCleaned) != 0 {
		t.Errorf("delete cluster left %+v", d.NotCleaned)
	}
}
