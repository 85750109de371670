package chaos

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestKillAgentMidUnpack kills the agent with SIGKILL while it unpacks a
// package of 6,000 files into a node's program dir. The program dir must
// then be absent or complete (never part of the package), the
// interrupted job must fail saying the agent went away, and deploying
// again must complete and start the node once.
func TestKillAgentMidUnpack(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	a := e.startAgent(t)
	const files, size = 6000, 4 << 10
	var entries []workloads.Entry
	for i := range files {
		entries = append(entries, workloads.Entry{Name: fmt.Sprintf("lib/f%05d", i), Random: size})
	}
	p := e.c.UploadPackage(t, nodePackage(t, "1.0", false, nil, entries...))
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-unpack", PackageID: p.ID,
		BrokerList: []testenv.ClusterNode{a.place(t.TempDir(), 7100)}})
	n := e.c.Nodes(t, cl.ID)[0]

	jobID := e.c.DeployCluster(t, cl.ID)
	// Kill the agent once its staging dir holds part of the package.
	began := time.Now()
	for {
		if s := staging(n.ProgramDir); len(s) > 0 && countFiles(filepath.Join(s[0], "lib")) > files/10 {
			break
		}
		if time.Since(began) > 2*time.Minute {
			t.Fatalf("the agent did not start unpacking within 2 minutes:\n%s", e.c.Job(t, jobID))
		}
		time.Sleep(200 * time.Microsecond)
	}
	a.kill()
	left := staging(n.ProgramDir)
	if len(left) > 0 {
		t.Logf("agent killed mid-unpack with %d of %d files in its staging dir %s", countFiles(filepath.Join(left[0], "lib")), files, left[0])
	}
	switch state := programDirState(t, n.ProgramDir, files, size); state {
	case "absent", "complete":
		t.Logf("program dir after the kill: %s", state)
	default:
		t.Errorf("program dir after the kill: %s; want it absent or complete", state)
	}

	job := e.c.WaitJob(t, jobID, 2*time.Minute)
	t.Logf("interrupted job:\n%s", job)
	if job.State != "failed" || job.Reason == "" {
		t.Errorf("job cut by the agent's death: %s (%q); want failed with a reason", job.State, job.Reason)
	}
	a.start(t)
	e.c.WaitStatus(t, a.id, "online", 60*time.Second)
	again := e.c.WaitJob(t, e.c.DeployCluster(t, cl.ID), 2*time.Minute)
	if again.State != "succeeded" {
		t.Fatalf("deploy after the agent came back:\n%s", again)
	}
	if state := programDirState(t, n.ProgramDir, files, size); state != "complete" {
		t.Errorf("program dir after the retry: %s", state)
	}
	if left := staging(n.ProgramDir); len(left) > 0 {
		t.Errorf("what the killed unpack left is still there after the retry: %v", left)
	}
	if s := starts(t, n.DataDir); len(s) != 1 {
		t.Errorf("node started %d times (pids %v), want once", len(s), s)
	}
}

// staging returns the staging dirs of an unpack into dir: the agent
// unpacks beside the program dir and renames the result into place.
func staging(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+"*.tmp-*"))
	return m
}

func countFiles(dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}

// programDirState says whether dir is absent, complete (the agent's
// marker and every file of the package, whole), or what is wrong with it.
func programDirState(t testing.TB, dir string, files int, size int64) string {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return "absent"
	}
	var problems []string
	if _, err := os.Stat(filepath.Join(dir, ".admq-package-sha256")); err != nil {
		problems = append(problems, "no install marker")
	}
	n := 0
	filepath.WalkDir(filepath.Join(dir, "lib"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
			if fi, err := d.Info(); err == nil && fi.Size() != size && len(problems) < 5 {
				problems = append(problems, fmt.Sprintf("%s holds %d of %d bytes", filepath.Base(p), fi.Size(), size))
			}
		}
		return nil
	})
	if n != files {
		problems = append(problems, fmt.Sprintf("%d of %d files", n, files))
	}
	if len(problems) == 0 {
		return "complete"
	}
	return "part of the package (" + strings.Join(problems, "; ") + ")"
}

// TestKillAgentMidConfigWrite kills the agent with SIGKILL while it
// writes a node's eight config files of 0.9 MiB each (a redeploy after
// config items were disabled). Each file must then be wholly the old or
// wholly the new version; the interrupted job fails with a reason; the
// retry completes, writes the new version everywhere and restarts the
// node exactly once, although the files it finds may already be new.
func TestKillAgentMidConfigWrite(t *testing.T) {
	chaosTest(t)
	t.Parallel()
	e := newEnv(t, testenv.ManagerProcessOptions{})
	a := e.startAgent(t)
	configs := map[string]string{}
	for f := range 8 {
		var b strings.Builder
		for k := range 40 {
			fmt.Fprintf(&b, "k%02d=%s\n", k, strings.Repeat(fmt.Sprintf("%d-%d,", f, k), 22<<10/5))
		}
		configs[fmt.Sprintf("c%d.properties", f)] = b.String()
	}
	p := e.c.UploadPackage(t, nodePackage(t, "1.0", false, configs))
	cl := e.c.CreateCluster(t, testenv.NewCluster{Name: "chaos-config", PackageID: p.ID,
		BrokerList: []testenv.ClusterNode{a.place(t.TempDir(), 7100)}})
	n := e.c.Nodes(t, cl.ID)[0]
	if job := e.c.WaitJob(t, e.c.DeployCluster(t, cl.ID), 2*time.Minute); job.State != "succeeded" {
		t.Fatalf("first deploy:\n%s", job)
	}
	conf := filepath.Join(n.ProgramDir, "conf")
	old := readConfigs(t, conf, configs)

	// Version two: k00 disabled in every file.
	var files []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	e.c.OK(t, http.MethodGet, "/cluster/node/config/file?nodeId="+n.ID, nil, &files)
	var off []string
	for _, f := range files {
		var items struct {
			List []struct {
				ID  string `json:"id"`
				Key string `json:"configKey"`
			} `json:"list"`
		}
		e.c.OK(t, http.MethodGet, "/cluster/node/config?pageSize=500&configFileId="+f.ID, nil, &items)
		for _, it := range items.List {
			if it.Key == "k00" {
				off = append(off, it.ID)
			}
		}
	}
	if len(off) != len(configs) {
		t.Fatalf("found %d k00 items, want %d", len(off), len(configs))
	}
	e.c.OK(t, http.MethodPut, "/cluster/node/config/status/batch", map[string]any{"ids": off, "effective": 0}, nil)

	jobID := e.c.DeployNode(t, n.ID)
	began := time.Now()
	// Kill the agent once it has replaced a file and writes another.
	for !writingConfig(conf) || sameSizes(conf, old) == len(old) {
		if time.Since(began) > 2*time.Minute {
			t.Fatalf("the agent did not start writing config files within 2 minutes:\n%s", e.c.Job(t, jobID))
		}
		time.Sleep(200 * time.Microsecond)
	}
	a.kill()
	cut := readConfigs(t, conf, configs)
	newCount := 0
	for name, b := range cut {
		switch {
		case bytes.Equal(b, old[name]):
		case !bytes.Contains(b, []byte("\nk00=")) && !bytes.HasPrefix(b, []byte("k00=")) && bytes.Contains(b, []byte("k39=")):
			newCount++ // old minus k00, whole: checked against the retry's below
		default:
			t.Errorf("%s after the kill is neither the old nor a whole new version (%d bytes)", name, len(b))
		}
	}
	t.Logf("agent killed mid-write: %d of %d config files were new", newCount, len(configs))

	job := e.c.WaitJob(t, jobID, 2*time.Minute)
	if job.State != "failed" || job.Reason == "" {
		t.Errorf("job cut by the agent's death: %s (%q); want failed with a reason", job.State, job.Reason)
	}
	a.start(t)
	e.c.WaitStatus(t, a.id, "online", 60*time.Second)
	if again := e.c.WaitJob(t, e.c.DeployNode(t, n.ID), 2*time.Minute); again.State != "succeeded" {
		t.Fatalf("redeploy after the agent came back:\n%s", again)
	}
	fresh := readConfigs(t, conf, configs)
	for name, b := range fresh {
		if bytes.Contains(b, []byte("k00=")) {
			t.Errorf("%s after the retry still has k00", name)
		}
		if c := cut[name]; !bytes.Equal(c, old[name]) && !bytes.Equal(c, b) {
			t.Errorf("%s after the kill was a version the retry did not write", name)
		}
	}
	if s := starts(t, n.DataDir); len(s) != 2 {
		t.Errorf("node started %d times (pids %v); want twice: the deploy and one restart for the new config", len(s), s)
	}
	if left, _ := filepath.Glob(filepath.Join(conf, ".*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left in %s: %v", conf, left)
	}
}

// writingConfig reports whether a config file is being replaced in dir.
func writingConfig(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			return true
		}
	}
	return false
}

// sameSizes counts the files of old whose size in dir is still theirs.
func sameSizes(dir string, old map[string][]byte) int {
	n := 0
	for name, b := range old {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Size() == int64(len(b)) {
			n++
		}
	}
	return n
}

// readConfigs reads the files named in configs from dir.
func readConfigs(t testing.TB, dir string, configs map[string]string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name := range configs {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}
