// Package compare does the same jobs on M hosts with Ansible (from Debian)
// and with one admq-manager API call, side by side, and prints both wall
// times and their ratios: write a 200-line properties file and restart a
// small process on every host, and collect every host's facts.
//
// The hosts are network namespaces on this machine (prefix admqcmp,
// 198.18.128.0/18), each running a real sshd (Ansible's way in) and a real
// admq-agent (the manager's). It runs only under `make compare`
// (ADMQ_COMPARE=1, as root); `go test ./...` skips it. It asserts that
// both ways did the job on every host, never how fast.
package compare

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

var hostCount = flag.Int("hosts", 20, "number of namespace hosts (M)")

// propsLines is how many key=value lines the properties file holds.
const propsLines = 200

func needMachine(t *testing.T) {
	t.Helper()
	if os.Getenv("ADMQ_COMPARE") == "" {
		t.Skip("side-by-side comparison with Ansible; run it with `make compare` (as root)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the comparison makes network namespaces and runs sshd: run it as root")
	}
	for _, bin := range []string{"ip", "nsenter", "/usr/sbin/sshd", "ssh-keygen", "ansible-playbook", "ansible", "python3", "bash", "pgrep"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing (make compare installs ansible-core, openssh-server and iproute2 with apt-get)", bin)
		}
	}
}

func buildAgent(t *testing.T, dir string) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "admq-agent")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/admq-agent")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build admq-agent: %v\n%s", err, out)
	}
	return bin
}

// props is the properties file with revision rev.
func props(rev string) string {
	var b strings.Builder
	b.WriteString("# admq compare: the same file both ways\n")
	b.WriteString("app.revision=" + rev + "\n")
	for i := 2; i <= propsLines; i++ {
		fmt.Fprintf(&b, "app.key%03d=value %03d of a typical broker setting\n", i, i)
	}
	return b.String()
}

type figure struct {
	what    string
	ansible [2]time.Duration // forks=5, forks=M
	admq    time.Duration
	how     string
}

func TestCompareWithAnsible(t *testing.T) {
	needMachine(t)
	m := *hostCount
	if m < 1 || m > 1000 {
		t.Fatalf("-hosts %d: want 1 to 1000", m)
	}
	lockRun(t)
	removeStale()
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	agentBin := buildAgent(t, filepath.Join(dir, "bin")) // apart from the nodes' dirs: the agent refuses to deploy over itself

	tm := testenv.StartManager(t, func(c *manager.Config) { c.TunnelAddr = "0.0.0.0:0" })
	_, port, _ := net.SplitHostPort(tm.TunnelAddr())
	c := tm.Client(t, testenv.WithTimeout(5*time.Minute))

	key := filepath.Join(dir, "id_ed25519")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	authorized := key + ".pub"

	tok := c.CreateToken(t, m, 0)
	hosts := make([]*host, m)
	start := time.Now()
	for i := range m {
		h := newHost(t, i+1, dir)
		h.startSSHD(t, authorized)
		h.start(t, "agent.log", agentBin, "run", "--manager", net.JoinHostPort(h.PeerIP, port),
			"--token", tok.Token, "--state-dir", filepath.Join(h.Dir, "agent"), "--advertise-ip", h.IP)
		hosts[i] = h
	}
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("%d agents online", m), func() bool {
		var page struct {
			Total int `json:"total"`
		}
		c.OK(t, http.MethodGet, "/server?agentStatus=online&pageSize=1", nil, &page)
		return page.Total == m
	})
	t.Logf("%d hosts with sshd and an online agent in %v", m, time.Since(start).Round(time.Millisecond))

	// The manager's side: a package whose one component is a small process
	// with a 200-line properties file, deployed once on every host.
	pkgPath := workloads.Build(t, dir, "cmpapp-V1.0.0-all.tar.gz", manifest.Manifest{
		ManifestVersion: 1, Name: "cmpapp", Version: "1.0.0", MqType: 3,
		Components: map[string]manifest.Component{"broker": {
			Start:       []string{"/bin/sleep", "1000000"},
			ConfigFiles: []manifest.ConfigFile{{Name: "app.properties", Path: "conf/app.properties", Format: manifest.FormatProperties}},
			ServerPort:  7000,
			Health:      manifest.Health{Command: []string{"test", "-s", "{programDir}/conf/app.properties"}, TimeoutSeconds: 5, IntervalSeconds: 1, StartSeconds: 20},
		}},
	}, workloads.Entry{Name: "conf/app.properties", Data: []byte(props("1"))})
	pkg := c.UploadPackage(t, pkgPath)
	var brokers []testenv.ClusterNode
	for _, h := range hosts {
		brokers = append(brokers, testenv.ClusterNode{ManagerIP: h.IP, ProgramDir: filepath.Join(dir, "nodes", "{cluster}", "{nodeDir}"), DataDir: filepath.Join(dir, "data", "{cluster}", "{nodeDir}")})
	}
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "cmp", PackageID: pkg.ID, BrokerList: brokers})
	job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 5*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("first deploy: %s", job)
	}
	layerFile, layerItem := revisionItem(t, c, cl.ID)

	// Ansible's side: an inventory of the same hosts over SSH.
	ansDir := filepath.Join(dir, "ansible")
	inv, play := writeAnsible(t, ansDir, key, hosts)
	env := append(testenv.CleanEnv(), "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_LOCAL_TEMP="+filepath.Join(ansDir, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(ansDir, "remote-tmp"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=False",
		"ANSIBLE_PIPELINING=True", "HOME="+ansDir)
	ansible := func(rev string, forks int, args ...string) time.Duration {
		t.Helper()
		cmd := exec.Command(args[0], append(args[1:], "-i", inv, "-f", strconv.Itoa(forks), "-e", "revision="+rev)...)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 30))
		}
		return took
	}

	var figs []figure
	// 1. Write the file and restart the process on every host.
	f := figure{what: fmt.Sprintf("write a %d-line properties file and restart a process on %d hosts", propsLines, m)}
	f.ansible[0] = ansible("2", 5, "ansible-playbook", play)
	checkAnsible(t, hosts, "2")
	f.ansible[1] = ansible("3", m, "ansible-playbook", play)
	checkAnsible(t, hosts, "3")
	pidsBefore := nodePIDs(t, c, cl.ID)
	start = time.Now()
	rev := "4"
	c.OK(t, http.MethodPut, "/cluster/config", map[string]any{"id": layerItem, "configValue": rev}, nil)
	var flush struct {
		Outcome string `json:"outcome"`
		JobID   string `json:"jobId"`
	}
	c.OK(t, http.MethodPost, "/cluster/config/flush", map[string]any{"clusterId": cl.ID, "configFileId": layerFile, "allAtOnce": true}, &flush)
	if flush.Outcome != "started" {
		t.Fatalf("flush: outcome %q, want started", flush.Outcome)
	}
	job = c.WaitJob(t, flush.JobID, 5*time.Minute)
	f.admq = time.Since(start)
	f.how = "PUT /cluster/config (the draft of the cluster layer) + POST /cluster/config/flush {allAtOnce: true}, until its job is done"
	if job.State != "succeeded" {
		t.Fatalf("flush of revision %s: %s", rev, job)
	}
	checkManager(t, c, cl.ID, pidsBefore, rev)
	figs = append(figs, f)

	// 2. Facts of every host.
	f = figure{what: fmt.Sprintf("collect the facts of %d hosts", m)}
	f.ansible[0] = ansible("0", 5, "ansible", "all", "-m", "ansible.builtin.setup")
	f.ansible[1] = ansible("0", m, "ansible", "all", "-m", "ansible.builtin.setup")
	start = time.Now()
	var op struct {
		ID string `json:"id"`
	}
	c.OK(t, http.MethodPost, "/fleet/operation", map[string]any{"kind": "facts", "all": true, "concurrency": m}, &op)
	var summary struct {
		Operation struct {
			State string `json:"state"`
			OK    int    `json:"ok"`
		} `json:"operation"`
	}
	testenv.Eventually(t, time.Minute, "the facts operation to end", func() bool {
		c.OK(t, http.MethodGet, "/fleet/operation/detail?id="+url.QueryEscape(op.ID), nil, &summary)
		return summary.Operation.State == "done"
	})
	f.admq = time.Since(start)
	f.how = "POST /fleet/operation {kind: facts, all}, until done"
	if summary.Operation.OK != m {
		t.Fatalf("facts: %d of %d hosts answered", summary.Operation.OK, m)
	}
	figs = append(figs, f)

	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "\n===== admq-manager vs Ansible (ansible-core from Debian), M = %d hosts, one run; load average %s", m, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&b, "\n%-62s %12s %12s %10s %14s %14s\n", "job", "ansible f=5", fmt.Sprintf("ansible f=%d", m), "admq", "f=5 / admq", fmt.Sprintf("f=%d / admq", m))
	for _, f := range figs {
		fmt.Fprintf(&b, "%-62s %11.2fs %11.2fs %9.2fs %13.1fx %13.1fx\n", f.what, f.ansible[0].Seconds(), f.ansible[1].Seconds(), f.admq.Seconds(),
			f.ansible[0].Seconds()/f.admq.Seconds(), f.ansible[1].Seconds()/f.admq.Seconds())
	}
	for _, f := range figs {
		fmt.Fprintf(&b, "admq way of %q: %s\n", f.what, f.how)
	}
	fmt.Print(b.String())
	t.Log(b.String())
}

// revisionItem finds the cluster layer's file and its app.revision item.
func revisionItem(t *testing.T, c *testenv.Client, clusterID string) (file, item string) {
	t.Helper()
	var files []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	c.OK(t, http.MethodGet, "/cluster/config/file?clusterId="+clusterID, nil, &files)
	for _, f := range files {
		if f.Name != "app.properties" {
			continue
		}
		var page struct {
			List []struct {
				ID  string `json:"id"`
				Key string `json:"configKey"`
			} `json:"list"`
		}
		c.OK(t, http.MethodGet, "/cluster/config?pageSize=500&configFileId="+f.ID, nil, &page)
		for _, it := range page.List {
			if it.Key == "app.revision" {
				return f.ID, it.ID
			}
		}
	}
	t.Fatal("the cluster layer has no app.revision")
	return "", ""
}

func nodePIDs(t *testing.T, c *testenv.Client, clusterID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range c.Nodes(t, clusterID) {
		out[n.ID] = n.Pid
	}
	return out
}

// checkManager: every node's file has the revision and every node runs a
// new process.
func checkManager(t *testing.T, c *testenv.Client, clusterID string, before map[string]int, rev string) {
	t.Helper()
	for _, n := range c.Nodes(t, clusterID) {
		b, err := os.ReadFile(filepath.Join(n.ProgramDir, "conf", "app.properties"))
		if err != nil || !strings.Contains(string(b), "app.revision="+rev+"\n") || strings.Count(string(b), "=") < propsLines {
			t.Errorf("node %s: file without revision %s (%v)", n.NodeDir, rev, err)
		}
		if n.RunStatus != "running" || n.Pid == 0 || n.Pid == before[n.ID] {
			t.Errorf("node %s: %s pid %d (was %d): not restarted", n.NodeDir, n.RunStatus, n.Pid, before[n.ID])
		}
	}
}

// writeAnsible writes the inventory and the playbook; it returns their paths.
func writeAnsible(t *testing.T, dir, key string, hosts []*host) (inv, play string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "remote-tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	b.WriteString("[all]\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "h%d ansible_host=%s app_dir=%s\n", h.n, h.IP, filepath.Join(h.Dir, "app"))
	}
	fmt.Fprintf(&b, "\n[all:vars]\nansible_user=root\nansible_ssh_private_key_file=%s\nansible_python_interpreter=/usr/bin/python3\n"+
		"ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ControlMaster=auto -o ControlPersist=60s'\n", key)
	inv = filepath.Join(dir, "inventory.ini")
	if err := os.WriteFile(inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpl := strings.Replace(props("REV"), "app.revision=REV", "app.revision={{ revision }}", 1)
	if err := os.WriteFile(filepath.Join(dir, "app.properties.j2"), []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	playbook := `- hosts: all
  gather_facts: false
  tasks:
    - name: app dir
      ansible.builtin.file:
        path: "{{ app_dir }}"
        state: directory
    - name: write app.properties
      ansible.builtin.template:
        src: app.properties.j2
        dest: "{{ app_dir }}/app.properties"
        mode: "0640"
    - name: restart the app
      ansible.builtin.shell: |
        pkill -f '^admqcmp-app {{ inventory_hostname }} ' || true
        setsid bash -c 'exec -a "admqcmp-app {{ inventory_hostname }}" sleep 1000000' </dev/null >/dev/null 2>&1 &
`
	play = filepath.Join(dir, "playbook.yml")
	if err := os.WriteFile(play, []byte(playbook), 0o600); err != nil {
		t.Fatal(err)
	}
	return inv, play
}

// checkAnsible: every host's file has the revision and its app runs.
func checkAnsible(t *testing.T, hosts []*host, rev string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			b, err := os.ReadFile(filepath.Join(h.Dir, "app", "app.properties"))
			if err != nil || !strings.Contains(string(b), "app.revision="+rev+"\n") {
				t.Errorf("h%d: file without revision %s (%v)", h.n, rev, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				if exec.CommandContext(ctx, "pgrep", "-f", fmt.Sprintf("^admqcmp-app h%d ", h.n)).Run() == nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("h%d: the app does not run after the playbook", h.n)
		})
	}
	wg.Wait()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
