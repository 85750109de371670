package node

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/agent/supervisor"
	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/nodedir"
)

// plant creates the files (paths relative to root), each with a line of
// text, and returns root.
func plant(t *testing.T, root string, files ...string) string {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("not the agent's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mustExist(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s is gone: %v", p, err)
		}
	}
}

func mustBeGone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

// keptReasons maps each kept dir to its reason.
func keptReasons(res RemoveResult) map[string]string {
	out := map[string]string{}
	for _, k := range res.Kept {
		out[k.Path] = k.Reason
	}
	return out
}

func removeDirs(t *testing.T, m *Manager, op, name, prog, data string) RemoveResult {
	t.Helper()
	roots := []string{filepath.Dir(prog)}
	if data != "" {
		roots = append(roots, filepath.Dir(data))
	}
	res, err := m.Remove(t.Context(), RemoveRequest{
		OperationID: op, Name: name, RemoveDirs: true, ProgramDir: prog, DataDir: data, AllowedRoots: roots,
	})
	if err != nil {
		t.Fatalf("remove %s: %v", name, err)
	}
	return res
}

// TestRemoveKeepsDirsItDidNotCreate is the outside probe's break: a node
// whose dirs already existed with other files (a /usr/lib and a
// /var/lib/postgres) is refused at deploy, yet its removal deleted both
// and reported nothing; one whose data dir is the agent's state dir lost
// the agent's journal. Before the install marker this test failed on
// every check.
func TestRemoveKeepsDirsItDidNotCreate(t *testing.T) {
	m := newManager(t)
	root := plant(t, t.TempDir(), "usr/lib/libc.so.6", "var/lib/postgres/PG_VERSION")
	usrLib, pg := filepath.Join(root, "usr/lib"), filepath.Join(root, "var/lib/postgres")
	sha := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n")))
	r := DeployRequest{
		OperationID: "d1", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: usrLib, DataDir: pg, Argv: []string{"/bin/true"},
	}
	if _, err := m.Deploy(t.Context(), r); err == nil || !strings.Contains(err.Error(), "was not installed by the agent") {
		t.Fatalf("deploy into %s, which holds other files: %v", usrLib, err)
	}
	res := removeDirs(t, m, "r1", "n1", usrLib, pg)
	mustExist(t, filepath.Join(usrLib, "libc.so.6"), filepath.Join(pg, "PG_VERSION"))
	kept := keptReasons(res)
	for _, d := range []string{usrLib, pg} {
		if !strings.Contains(kept[d], "no install marker") {
			t.Errorf("kept %v: want %s kept for having no install marker", kept, d)
		}
	}

	// The data dir is the agent's own state dir: refused at deploy, kept
	// at removal.
	prog := filepath.Join(root, "opt", "n2")
	r = DeployRequest{
		OperationID: "d2", Name: "n2", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: prog, DataDir: m.stateDir, Argv: []string{"/bin/true"},
	}
	if _, err := m.Deploy(t.Context(), r); err == nil || !strings.Contains(err.Error(), "the agent's state dir") {
		t.Errorf("deploy with the agent's state dir as data dir: %v, want it refused", err)
	}
	res = removeDirs(t, m, "r2", "n2", prog, m.stateDir)
	mustExist(t, filepath.Join(m.dir, "journal.json"))
	if r := keptReasons(res)[m.stateDir]; !strings.Contains(r, "the agent's state dir") {
		t.Errorf("kept %+v: want the state dir kept as the agent's state dir", res.Kept)
	}
}

// TestRemoveDeletesWhatItCreated: dirs a deploy created go with the node,
// the parents it made for them stay; a data dir that existed is used and
// kept; an empty program dir that existed is unpacked into and kept.
func TestRemoveDeletesWhatItCreated(t *testing.T) {
	m := newManager(t)
	sha := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n"), at.File(nodeMarkerName, `{"node":"n1","dir":"/","created":true}`)))
	root := t.TempDir()
	deploy := func(name, prog, data string) {
		t.Helper()
		r := DeployRequest{
			OperationID: "d-" + name, Name: name, PackageSHA256: sha, PackageFormat: "tar.gz",
			ProgramDir: prog, DataDir: data, Argv: []string{"/bin/true"},
			ConfigFiles: []ConfigFile{{Path: filepath.Join(data, "myid"), Content: []byte("1\n")}},
		}
		if _, err := m.Deploy(t.Context(), r); err != nil {
			t.Fatalf("deploy %s: %v", name, err)
		}
	}

	// Both dirs created by the deploy (and their parents).
	prog, data := filepath.Join(root, "opt/mq1/n1"), filepath.Join(root, "data/mq1/n1")
	deploy("n1", prog, data)
	mk, ok, err := readMarker(prog)
	if err != nil || !ok || mk != (dirMarker{Node: "n1", Dir: prog, Created: true}) {
		t.Fatalf("program dir marker %+v %v %v: the package's own %s must be replaced", mk, ok, err, nodeMarkerName)
	}
	if res := removeDirs(t, m, "r1", "n1", prog, data); len(res.Kept) != 0 {
		t.Fatalf("removal of dirs the deploy created kept %+v", res.Kept)
	}
	mustBeGone(t, prog, data)
	mustExist(t, filepath.Join(root, "opt/mq1"), filepath.Join(root, "data/mq1"))

	// A data dir that existed (a mount point, a dir made by hand) is used
	// and kept; so is an empty program dir that existed.
	prog, data = filepath.Join(root, "opt/n2"), filepath.Join(root, "mnt/disk1")
	plant(t, data, "lost+found/x")
	if err := os.MkdirAll(prog, 0o755); err != nil {
		t.Fatal(err)
	}
	deploy("n2", prog, data)
	mustExist(t, filepath.Join(prog, "run.sh"), filepath.Join(data, "myid"))
	res := removeDirs(t, m, "r2", "n2", prog, data)
	kept := keptReasons(res)
	if !strings.Contains(kept[prog], "existed before the agent installed the node there") || !strings.Contains(kept[data], "no install marker") {
		t.Fatalf("kept %v: want both kept, the program dir as existing before, the data dir as unmarked", kept)
	}
	mustExist(t, filepath.Join(data, "lost+found/x"), filepath.Join(prog, "run.sh"))
}

// TestRemoveRefusesOthersDirs: whatever the manager asks, the agent keeps
// a dir it created for another node, one moved or copied elsewhere, one
// holding a manager's data dir or the agent's state dir, and one reached
// through a symbolic link; and a removal that fails half-way is finished
// by its retry.
func TestRemoveRefusesOthersDirs(t *testing.T) {
	m := newManager(t)
	root := t.TempDir()
	mk := func(dir, node string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeMarker(dir, dirMarker{Node: node, Dir: dir, Created: true}); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	other := mk(filepath.Join(root, "other"), "n9")
	moved := mk(filepath.Join(root, "moved"), "n1")
	if err := os.Rename(moved, filepath.Join(root, "moved2")); err != nil {
		t.Fatal(err)
	}
	moved = filepath.Join(root, "moved2")
	withManager := mk(filepath.Join(root, "withmanager"), "n1")
	plant(t, withManager, "admq/"+nodedir.ManagerLockName, "admq/admq.db")
	withAgent := mk(filepath.Join(root, "withagent"), "n1")
	plant(t, withAgent, "state/"+nodedir.AgentLockName, "state/agent.key")
	nested := mk(filepath.Join(root, "nested"), "n1")
	mk(filepath.Join(nested, "inner"), "n9")
	target := mk(filepath.Join(root, "target"), "n1")
	link := filepath.Join(root, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		other:       "belongs to node n9",
		moved:       "was written for " + filepath.Join(root, "moved"),
		withManager: "holds a manager's data dir",
		withAgent:   "holds an agent's state dir",
		nested:      "holds another node's dir",
		link:        "symbolic link",
	}
	for dir, reason := range want {
		res := removeDirs(t, m, "r-"+filepath.Base(dir), "n1", dir, "")
		if got := keptReasons(res)[dir]; !strings.Contains(got, reason) {
			t.Errorf("removal of %s: kept %+v, want %q", dir, res.Kept, reason)
		}
		mustExist(t, dir)
	}
	mustExist(t, target)

	// A dir that holds the agent's state dir: a manager whose state dir
	// sits in a dir the agent created.
	m2dir := mk(filepath.Join(root, "holder"), "n1")
	sup, err := supervisor.New(filepath.Join(m2dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sup.Close)
	m2, err := New(filepath.Join(m2dir, "state"), sup, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := removeDirs(t, m2, "r-holder", "n1", m2dir, "")
	if got := keptReasons(res)[m2dir]; !strings.Contains(got, "the agent's state dir") {
		t.Errorf("removal of the dir holding the state dir: kept %+v", res.Kept)
	}
	mustExist(t, filepath.Join(m2dir, "state", "node", "journal.json"))

	// Half-way: a file the agent cannot remove (immutable as root, in a
	// read-only dir otherwise) fails the removal; the marker stays, so
	// the retry finishes it.
	half := mk(filepath.Join(root, "half"), "n1")
	plant(t, half, "b", "ro/a")
	unpin := pin(t, filepath.Join(half, "ro/a"))
	if _, err := m.Remove(t.Context(), RemoveRequest{OperationID: "h1", Name: "n1", RemoveDirs: true, ProgramDir: half, AllowedRoots: []string{root}}); err == nil {
		t.Fatal("removal of a dir holding a file that cannot be removed succeeded")
	}
	if _, ok, _ := readMarker(half); !ok {
		t.Fatal("the failed removal took the marker")
	}
	unpin()
	if res := removeDirs(t, m, "h2", "n1", half, ""); len(res.Kept) != 0 {
		t.Fatalf("retry kept %+v", res.Kept)
	}
	mustBeGone(t, half)
}

// pin makes file impossible to remove until the returned func is called:
// immutable (chattr +i) as root, in a read-only dir otherwise.
func pin(t *testing.T, file string) func() {
	t.Helper()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", file).CombinedOutput(); err != nil {
			t.Skipf("chattr +i: %v: %s", err, out)
		}
		undo := func() { exec.Command("chattr", "-i", file).Run() }
		t.Cleanup(undo)
		return undo
	}
	dir := filepath.Dir(file)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	undo := func() { os.Chmod(dir, 0o755) }
	t.Cleanup(undo)
	return undo
}

// TestRemoveKeepsMountPoints: a dir the agent created that someone
// mounted a filesystem inside is kept. It needs root, to mount a tmpfs.
func TestRemoveKeepsMountPoints(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	m := newManager(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := createDataDir("n1", dir); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "disk")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "admq-node-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	plant(t, mnt, "precious")
	res := removeDirs(t, m, "r1", "n1", filepath.Join(t.TempDir(), "p"), dir)
	if got := keptReasons(res)[dir]; !strings.Contains(got, "mount point") {
		t.Fatalf("kept %+v: want the dir kept for its mount point", res.Kept)
	}
	mustExist(t, filepath.Join(mnt, "precious"))
}

// TestRemoveLegacyProgramDir: a node deployed by an agent from before the
// install marker has a program dir with only the package marker. Its
// removal deletes the program dir (the agent's package marker and its spec
// prove it unpacked it there for the node) and keeps the data dir, which
// nothing proves.
func TestRemoveLegacyProgramDir(t *testing.T) {
	m := newManager(t)
	sha := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n")))
	root := t.TempDir()
	prog, data := filepath.Join(root, "opt/n1"), filepath.Join(root, "data/n1")
	r := DeployRequest{
		OperationID: "d1", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: prog, DataDir: data, Argv: []string{"/bin/true"},
	}
	if _, err := m.Deploy(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	// What an older agent left: no install markers.
	for _, d := range []string{prog, data} {
		if err := os.Remove(filepath.Join(d, nodeMarkerName)); err != nil {
			t.Fatal(err)
		}
	}
	// Deployed again by this agent: the program dir is proved and marked,
	// the data dir is not.
	r.OperationID = "d2"
	if res, err := m.Deploy(t.Context(), r); err != nil || res.Unpacked {
		t.Fatalf("redeploy: %+v %v", res, err)
	}
	if mk, ok, _ := readMarker(prog); !ok || mk != (dirMarker{Node: "n1", Dir: prog, Created: true}) {
		t.Fatalf("legacy program dir after a redeploy: marker %+v %v", mk, ok)
	}
	if _, ok, _ := readMarker(data); ok {
		t.Fatal("legacy data dir marked by a redeploy")
	}
	if err := os.Remove(filepath.Join(prog, nodeMarkerName)); err != nil { // not redeployed after all
		t.Fatal(err)
	}
	// Another node's spec does not prove it, nor does a program dir
	// without the package marker.
	plant(t, root, "opt/n2/"+markerName)
	res := removeDirs(t, m, "r-n2", "n2", filepath.Join(root, "opt/n2"), "")
	if len(res.Kept) != 1 {
		t.Fatalf("legacy dir of a node without a spec: kept %+v, want it kept", res.Kept)
	}

	res = removeDirs(t, m, "r1", "n1", prog, data)
	kept := keptReasons(res)
	if _, ok := kept[prog]; ok || !strings.Contains(kept[data], "no install marker") {
		t.Fatalf("kept %v: want the program dir removed, the data dir kept", kept)
	}
	mustBeGone(t, prog)
	mustExist(t, data)
}

// TestDeployRefusesSystemDirs: the agent refuses, itself, a node whose
// dirs are system dirs, home dirs, its own dirs or lead to one through a
// symbolic link, and config files that would replace its markers.
func TestDeployRefusesSystemDirs(t *testing.T) {
	m := newManager(t)
	m.homes = func() []string { return []string{"/srv/postgres"} }
	sha := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n")))
	root := t.TempDir()
	toUsr := filepath.Join(root, "usr")
	if err := os.Symlink("/usr/lib", toUsr); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(root, "data")
	cases := []struct{ prog, data, want string }{
		{"/usr/lib/admq", good, "/usr and everything under it"},
		{"/etc/admq", good, "/etc and everything under it"},
		{filepath.Join(root, "p"), "/var/lib", "system directory"},
		{filepath.Join(root, "p"), "/home/alice", "home directory"},
		{filepath.Join(root, "p"), "/srv/postgres", "user's home directory"},
		{filepath.Join(root, "p"), "/proc/1", "/proc"},
		{filepath.Join(toUsr, "zk"), good, "symbolic link"},
		{filepath.Join(root, "p"), filepath.Join(m.stateDir, "data"), "the agent's state dir"},
		{"/nonexistent/admq/p", filepath.Dir(m.stateDir), "the agent's state dir"},
	}
	for i, c := range cases {
		r := DeployRequest{
			OperationID: "d" + string(rune('a'+i)), Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
			ProgramDir: c.prog, DataDir: c.data, Argv: []string{"/bin/true"},
		}
		_, err := m.Deploy(t.Context(), r)
		if _, ok := invalid.As(err); !ok || !strings.Contains(err.Error(), c.want) {
			t.Errorf("deploy with program dir %s, data dir %s: %v, want an invalid.Error about %q", c.prog, c.data, err, c.want)
		}
	}
	mustBeGone(t, filepath.Join(root, "p"), good)

	for _, p := range []string{nodeMarkerName, "conf/" + markerName, filepath.Join(good, nodeMarkerName)} {
		r := DeployRequest{
			OperationID: "m", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
			ProgramDir: filepath.Join(root, "p"), DataDir: good, Argv: []string{"/bin/true"},
			ConfigFiles: []ConfigFile{{Path: p, Content: []byte(`{"node":"n1","dir":"/var/lib/postgresql","created":true}`)}},
		}
		if _, err := m.Deploy(t.Context(), r); err == nil || !strings.Contains(err.Error(), "the agent's own file") {
			t.Errorf("config file %s: %v, want it refused", p, err)
		}
	}
}

// TestDeployHandsMarkerOver: a node deployed into the dirs another node's
// deploy created (its removal was queued, say) takes them over, so the
// other node's late removal keeps them.
func TestDeployHandsMarkerOver(t *testing.T) {
	m := newManager(t)
	sha := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n")))
	root := t.TempDir()
	prog, data := filepath.Join(root, "p"), filepath.Join(root, "d")
	for _, name := range []string{"a", "b"} {
		r := DeployRequest{
			OperationID: "d-" + name, Name: name, PackageSHA256: sha, PackageFormat: "tar.gz",
			ProgramDir: prog, DataDir: data, Argv: []string{"/bin/true"},
		}
		if _, err := m.Deploy(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	res := removeDirs(t, m, "r-a", "a", prog, data)
	kept := keptReasons(res)
	if !strings.Contains(kept[prog], "belongs to node b") || !strings.Contains(kept[data], "belongs to node b") {
		t.Fatalf("late removal of a: kept %v, want both kept as b's", kept)
	}
	b, _ := os.ReadFile(filepath.Join(prog, nodeMarkerName))
	var mk dirMarker
	if err := json.Unmarshal(b, &mk); err != nil || mk.Node != "b" {
		t.Fatalf("marker %s %v", b, err)
	}
	if res := removeDirs(t, m, "r-b", "b", prog, data); len(res.Kept) != 0 {
		t.Fatalf("removal of b kept %+v", res.Kept)
	}
	mustBeGone(t, prog, data)
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("left in %s: %v", root, ents)
	}
}

// TestCheckDeclared: the command, environment and work dir a deploy asks
// for must be one component's, with the node's own dirs.
func TestCheckDeclared(t *testing.T) {
	mf, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	base := DeployRequest{
		ProgramDir: "/opt/n1", DataDir: "/data/n1",
		Argv:    []string{"/opt/n1/bin/server", "--data", "/data/n1/db", "--id=3"},
		Env:     []string{"SERVER_HOME=/opt/n1", "ADDR=10.0.0.1:2181"},
		WorkDir: "/opt/n1/bin",
	}
	if err := CheckDeclared(mf, base); err != nil {
		t.Fatalf("the declared command: %v", err)
	}
	for name, change := range map[string]func(r *DeployRequest){
		"other program dir":   func(r *DeployRequest) { r.Argv[0] = "/opt/n2/bin/server" },
		"other data dir":      func(r *DeployRequest) { r.Argv[2] = "/tmp/db" },
		"literal changed":     func(r *DeployRequest) { r.Argv[1] = "--config" },
		"undeclared env":      func(r *DeployRequest) { r.Env = append(r.Env, "LD_PRELOAD=/tmp/x.so") },
		"env of another dir":  func(r *DeployRequest) { r.Env[0] = "SERVER_HOME=/etc" },
		"work dir not bin":    func(r *DeployRequest) { r.WorkDir = "/opt/n1" },
		"one argument less":   func(r *DeployRequest) { r.Argv = r.Argv[:3] },
		"another component's": func(r *DeployRequest) { r.Argv = []string{"/bin/sleep", "1"}; r.Env = r.Env[:1] },
	} {
		r := base
		r.Argv, r.Env = slices.Clone(base.Argv), slices.Clone(base.Env)
		change(&r)
		if err := CheckDeclared(mf, r); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		} else if _, ok := invalid.As(err); !ok {
			t.Errorf("%s: %v, want an *invalid.Error", name, err)
		}
	}
	// Another component's command, without the env it does not declare.
	r := base
	r.Argv, r.Env, r.WorkDir = []string{"/bin/sleep", "600"}, nil, ""
	if err := CheckDeclared(mf, r); err != nil {
		t.Fatalf("sleep: %v", err)
	}
}
