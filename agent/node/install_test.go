package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
)

// testManifest declares a component for each command the package's tests
// run; tgz packs it with the entries given.
const testManifest = `{"manifestVersion": 1, "name": "test", "version": "1.0", "components": {
  "run": {"start": ["./run.sh"], "serverPort": 1, "health": {"command": ["true"]}},
  "true": {"start": ["true"], "serverPort": 1, "health": {"command": ["true"]}},
  "bintrue": {"start": ["/bin/true"], "serverPort": 1, "health": {"command": ["true"]}},
  "sleep": {"start": ["/bin/sleep", "{myid}"], "serverPort": 1, "health": {"command": ["true"]}},
  "declared": {"start": ["{programDir}/bin/server", "--data", "{dataDir}/db", "--id={myid}"],
               "env": {"SERVER_HOME": "{programDir}", "ADDR": "{managerIp}:{serverPort}"}, "workDir": "bin", "serverPort": 1, "health": {"command": ["true"]}}}}`

func tgz(t *testing.T, entries ...at.Entry) []byte {
	t.Helper()
	return at.TarGz(t, append([]at.Entry{at.File("admq-package.json", testManifest)}, entries...)...)
}

// declaring is a manifest that declares exactly argv (braces escaped), to
// be packed as the package's first entry.
func declaring(t *testing.T, argv ...string) at.Entry {
	t.Helper()
	start := make([]string, len(argv))
	for i, a := range argv {
		start[i] = strings.NewReplacer("{", "{{", "}", "}}").Replace(a)
	}
	b, err := json.Marshal(map[string]any{"manifestVersion": 1, "name": "test", "version": "1.0", "components": map[string]any{
		"main": map[string]any{"start": start, "serverPort": 1, "health": map[string]any{"command": []string{"true"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return at.File("admq-package.json", string(b))
}

// cache puts the tar.gz data in m's package cache and returns its sha256.
func cache(t *testing.T, m *Manager, data []byte) string {
	t.Helper()
	s := sha256.Sum256(data)
	sha := hex.EncodeToString(s[:])
	eof := func() ([]byte, error) { return nil, io.EOF }
	if _, err := m.PushPackage(t.Context(), PushHeader{SHA256: sha, Size: int64(len(data))}, data, eof); err != nil {
		t.Fatal(err)
	}
	return sha
}

// A failed install leaves no program dir behind, so that the next deploy
// into the same place is not refused as "not installed by the agent".
func TestInstallFailureLeavesNoProgramDir(t *testing.T) {
	m := newManager(t)
	root := t.TempDir()
	// The package holds a directory where the agent writes its marker: the
	// unpack succeeds, marking it fails (as it would on a disk that fills
	// up just then).
	bad := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n"), at.File(markerName+"/x", "in the way\n")))
	good := cache(t, m, tgz(t, at.File("run.sh", "#!/bin/sh\n")))
	r := DeployRequest{
		OperationID: "op1", Name: "n1", PackageSHA256: bad, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(root, "program"), DataDir: filepath.Join(root, "data"), Argv: []string{"./run.sh"},
	}
	if _, err := m.Deploy(t.Context(), r); err == nil || !strings.Contains(err.Error(), "mark "+r.ProgramDir) {
		t.Fatalf("deploy of a package that cannot be marked: %v, want an error about the marker", err)
	}
	if _, err := os.Lstat(r.ProgramDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed install left its program dir: %v", err)
	}
	r.OperationID, r.PackageSHA256 = "op2", good
	if res, err := m.Deploy(t.Context(), r); err != nil || !res.Unpacked {
		t.Fatalf("deploy of a good package after the failed one: %+v %v", res, err)
	}
	// Replacing it: the failed unpack leaves the installed one as it was,
	// and no staging dir.
	r.OperationID, r.PackageSHA256 = "op3", bad
	if _, err := m.Deploy(t.Context(), r); err == nil {
		t.Fatal("replacement by a package that cannot be marked succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(r.ProgramDir, markerName)); err != nil || strings.TrimSpace(string(b)) != good {
		t.Fatalf("program dir after the failed replacement holds %q %v, want the marker of %s", b, err, good)
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if e.Name() != "program" && e.Name() != "data" {
			t.Errorf("the failed replacement left %s in %s", e.Name(), root)
		}
	}
}

// An unpack that fills the disk is ErrNoSpace and leaves nothing on it.
// It needs root, to mount a small tmpfs.
func TestInstallNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "admq-node-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	m := newManager(t)
	sha := cache(t, m, tgz(t, at.File("big", strings.Repeat("x", 1<<20))))
	r := DeployRequest{
		OperationID: "op1", Name: "n1", PackageSHA256: sha, PackageFormat: "tar.gz",
		ProgramDir: filepath.Join(mnt, "program"), DataDir: filepath.Join(t.TempDir(), "data"), Argv: []string{"true"},
	}
	_, err := m.Deploy(t.Context(), r)
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), r.ProgramDir) {
		t.Fatalf("deploy of 1 MiB into 256 KiB: %v, want ErrNoSpace wrapping ENOSPC and naming %s", err, r.ProgramDir)
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Fatalf("the failed unpack left %v", ents)
	}
}
