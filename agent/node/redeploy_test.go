package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
)

// sleeper is a deploy of a node that runs /bin/sleep with two config files,
// one in the program dir and one in the data dir; the node is removed
// (its process stopped) when the test ends.
func sleeper(t *testing.T, m *Manager, sha string) DeployRequest {
	t.Helper()
	root := t.TempDir()
	r := DeployRequest{
		OperationID: "op0", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(root, "program"), DataDir: filepath.Join(root, "data"),
		ConfigFiles: []ConfigFile{
			{Path: "conf/app.conf", Content: []byte("port=1\n")},
			{Path: filepath.Join(root, "data", "myid"), Content: []byte("1\n")},
		},
		Argv: []string{"/bin/sleep", "600"}, StopGrace: 5 * time.Second, Start: true,
	}
	t.Cleanup(func() { m.Remove(t.Context(), RemoveRequest{OperationID: "cleanup", Name: r.Name}) })
	return r
}

// TestRedeployRestartsOnlyOnChange deploys one node again and again: each
// step changes the request (or not), or the program dir behind the agent's
// back, and says what the deploy must have done to the running process.
func TestRedeployRestartsOnlyOnChange(t *testing.T) {
	m := newManager(t)
	pkg1 := cache(t, m, tgz(t, at.File("README", "package 1\n")))
	pkg2 := cache(t, m, tgz(t, at.File("README", "package 2\n")))
	r := sleeper(t, m, pkg1)
	conf := filepath.Join(r.ProgramDir, "conf", "app.conf")
	myid := r.ConfigFiles[1].Path

	type want struct {
		started, restarted, unpacked bool
		newPID                       bool
		conf, confPrev               string // "": absent
		conf1                        string // conf's .prev.1; "": absent
	}
	steps := []struct {
		name   string
		change func(*DeployRequest)
		want   want
	}{
		{"first deploy starts it", func(*DeployRequest) {},
			want{started: true, unpacked: true, newPID: true, conf: "port=1\n"}},
		{"identical redeploy leaves it alone", func(*DeployRequest) {},
			want{conf: "port=1\n"}},
		{"changed config restarts it", func(r *DeployRequest) { r.ConfigFiles[0].Content = []byte("port=2\n") },
			want{restarted: true, newPID: true, conf: "port=2\n", confPrev: "port=1\n"}},
		{"identical redeploy keeps the history", func(*DeployRequest) {},
			want{conf: "port=2\n", confPrev: "port=1\n"}},
		{"and again", func(*DeployRequest) {},
			want{conf: "port=2\n", confPrev: "port=1\n"}},
		{"changed mode restarts it", func(r *DeployRequest) { r.ConfigFiles[0].Mode = 0o600 },
			want{restarted: true, newPID: true, conf: "port=2\n", confPrev: "port=2\n", conf1: "port=1\n"}},
		{"changed command restarts it", func(r *DeployRequest) { r.Argv = []string{"/bin/sleep", "601"} },
			want{restarted: true, newPID: true, conf: "port=2\n", confPrev: "port=2\n", conf1: "port=1\n"}},
		{"install only writes the config but leaves the node alone",
			func(r *DeployRequest) { r.ConfigFiles[0].Content, r.Start = []byte("port=3\n"), false },
			want{conf: "port=3\n", confPrev: "port=2\n", conf1: "port=2\n"}},
		{"the next deploy restarts it for that config", func(*DeployRequest) {},
			want{restarted: true, newPID: true, conf: "port=3\n", confPrev: "port=2\n", conf1: "port=2\n"}},
		{"identical redeploy after that leaves it alone", func(*DeployRequest) {},
			want{conf: "port=3\n", confPrev: "port=2\n", conf1: "port=2\n"}},
		{"a package unpacked again restarts it", func(r *DeployRequest) {
			// Someone removed the program dir under the running node
			// (its config file with it).
			if err := os.RemoveAll(r.ProgramDir); err != nil {
				t.Fatal(err)
			}
		}, want{restarted: true, unpacked: true, newPID: true, conf: "port=3\n"}},
		{"a stopped node gets another package and is started", func(r *DeployRequest) {
			if _, _, err := m.Command(t.Context(), "stop-"+r.OperationID, r.Name, CommandStop); err != nil {
				t.Fatal(err)
			}
			r.PackageSHA256 = pkg2
		}, want{started: true, unpacked: true, newPID: true, conf: "port=3\n"}},
	}
	pid := 0
	for i, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			r.OperationID = "op" + string(rune('a'+i))
			r.Start = true
			s.change(&r)
			res, err := m.Deploy(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			w := s.want
			if res.Started != w.started || res.Restarted != w.restarted || res.Unpacked != w.unpacked {
				t.Errorf("started %v, restarted %v, unpacked %v; want %v, %v, %v",
					res.Started, res.Restarted, res.Unpacked, w.started, w.restarted, w.unpacked)
			}
			if r.Start && !res.Status.Running {
				t.Fatalf("not running after the deploy: %+v", res.Status)
			}
			if got := res.Status.PID; (got != pid) != w.newPID {
				t.Errorf("pid %d after the deploy, %d before; want a new one: %v", got, pid, w.newPID)
			}
			pid = res.Status.PID
			for p, want := range map[string]string{conf: w.conf, conf + ".prev": w.confPrev, conf + ".prev.1": w.conf1} {
				b, err := os.ReadFile(p)
				if want == "" && !errors.Is(err, os.ErrNotExist) || want != "" && string(b) != want {
					t.Errorf("%s holds %q (%v), want %q", filepath.Base(p), b, err, want)
				}
			}
			// The data dir's file never changed: written once, no history.
			if b, err := os.ReadFile(myid); err != nil || string(b) != "1\n" {
				t.Errorf("myid holds %q %v", b, err)
			}
			if _, err := os.Lstat(myid + ".prev"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("myid was rewritten: %v", err)
			}
			// The result is recorded with the operation.
			again, err := m.Deploy(t.Context(), r)
			if err != nil || !again.Replayed || again.Restarted != res.Restarted || again.Started != res.Started {
				t.Errorf("replay: %+v %v, want the recorded %+v", again, err, res)
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	if _, err := os.Lstat(m.restartPath(r.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a pending restart is left: %v", err)
	}
}

// A running node is not given another package: the agent will not unpack
// over the dir the process runs from. The deploy changes nothing.
func TestRedeployOtherPackageOfRunningNode(t *testing.T) {
	m := newManager(t)
	pkg1 := cache(t, m, tgz(t, at.File("README", "package 1\n")))
	pkg2 := cache(t, m, tgz(t, at.File("README", "package 2\n")))
	r := sleeper(t, m, pkg1)
	res, err := m.Deploy(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	r.OperationID, r.PackageSHA256 = "op1", pkg2
	r.ConfigFiles[0].Content = []byte("port=2\n")
	if _, err := m.Deploy(t.Context(), r); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("deploy of another package onto the running node: %v, want ErrConflict", err)
	}
	st, err := m.sup.Status(r.Name)
	if err != nil || st.PID != res.Status.PID {
		t.Fatalf("after the refused deploy: %+v %v, want pid %d", st, err, res.Status.PID)
	}
	if b, _ := os.ReadFile(filepath.Join(r.ProgramDir, "conf", "app.conf")); string(b) != "port=1\n" {
		t.Fatalf("config after the refused deploy: %q", b)
	}
}
