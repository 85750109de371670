package integration

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// TestDeleteKeepsDirsTheAgentDidNotCreate is the outside probe's break #1
// through the console API, with a real manager and agent: a node whose
// programDir and dataDir already existed with other files (a /usr/lib
// and a /var/lib/postgres) is refused at deploy, and deleting its cluster
// must stop there: both trees stay, and notCleaned says so and why. Dirs
// that overlap the agent's state dir or the manager's data dir, and
// system dirs, are refused when the cluster is created (code 1250).
func TestDeleteKeepsDirsTheAgentDidNotCreate(t *testing.T) {
	integrationTest(t)
	const (
		ip   = "127.0.91.1"
		port = 18191
	)
	root := t.TempDir()
	e := startFaultEnv(t, ip, root)
	c := e.c
	usrLib, pg := filepath.Join(root, "usr/lib"), filepath.Join(root, "var/lib/postgres")
	precious := []string{filepath.Join(usrLib, "libc.so.6"), filepath.Join(pg, "PG_VERSION")}
	for _, f := range precious {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("not the agent's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-dirs-V1.0-x86.tar.gz", sleeperManifest("admq-dirs", port)))
	cl := c.CreateCluster(t, testenv.NewCluster{Name: "probe", PackageID: pkg.ID, BrokerList: []testenv.ClusterNode{{
		ManagerIP: ip, ServerPort: port, ProgramDir: usrLib, DataDir: pg,
	}}})
	if job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute); job.State != "failed" || !strings.Contains(job.String(), "was not installed by the agent") {
		t.Fatalf("deploy into dirs that hold other files:\n%s", job)
	}
	var del deletedCluster
	c.OK(t, http.MethodDelete, "/cluster?id="+url.QueryEscape(cl.ID), nil, &del)
	for _, f := range precious {
		if !exists(f) {
			t.Errorf("%s is gone: deleting the cluster removed a dir the agent did not create", f)
		}
	}
	if len(del.NotCleaned) != 1 || del.NotCleaned[0].Queued || !slices.Equal(del.NotCleaned[0].KeptDirs, []string{usrLib, pg}) ||
		strings.Count(del.NotCleaned[0].Reason, "no install marker") != 2 {
		t.Fatalf("notCleaned %+v: want the node with both dirs kept for having no install marker", del.NotCleaned)
	}
	t.Logf("notCleaned: %s", del.NotCleaned[0].Reason)

	// Refused up front: the agent's state dir (as the agent reports it),
	// the manager's data dir, a system dir.
	stateDir, err := filepath.Abs(e.a.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the agent to report its state dir", func() bool {
		s, ok := c.ServerByIP(t, ip)
		return ok && s.Facts.StateDir == stateDir
	})
	for _, bad := range []struct{ prog, data, want string }{
		{filepath.Join(root, "opt/x"), stateDir, "overlaps the agent's state dir on " + ip},
		{filepath.Join(root, "opt/x"), filepath.Join(e.tm.Config().DataDir, "zk"), "overlaps the manager's data dir"},
		{"/usr/lib/admq", filepath.Join(root, "data/x"), "/usr and everything under it"},
		{filepath.Join(root, "opt/x"), "/var/lib", "/var/lib is a system directory"},
	} {
		env, status := c.Do(t, http.MethodPost, "/admq/cluster", testenv.NewCluster{Name: "refused", PackageID: pkg.ID, BrokerList: []testenv.ClusterNode{{
			ManagerIP: ip, ServerPort: port, ProgramDir: bad.prog, DataDir: bad.data,
		}}})
		if env.Code != 1250 || status != http.StatusBadRequest || !strings.Contains(env.Message, bad.want) {
			t.Errorf("cluster with programDir %s, dataDir %s: HTTP %d code %d %q, want 1250 saying %q", bad.prog, bad.data, status, env.Code, env.Message, bad.want)
		}
	}
	if _, list := c.Servers(t, ""); len(list) != 1 {
		t.Fatalf("servers %+v", list)
	}
}
