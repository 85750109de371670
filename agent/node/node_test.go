package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/invalid"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	dir := t.TempDir()
	sup, err := supervisor.New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sup.Close)
	m, err := New(dir, sup, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.json")
	j, err := openJournal(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "b", "c", "d"} {
		if err := j.record(id, "deploy", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	j2, err := openJournal(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := j2.lookup("a", "deploy", nil); ok {
		t.Fatal("oldest entry kept beyond the limit")
	}
	var got map[string]int
	if ok, err := j2.lookup("c", "deploy", &got); !ok || err != nil || got["n"] != 2 {
		t.Fatalf("lookup c: %v %v %v", ok, err, got)
	}
	if _, err := j2.lookup("d", "remove", nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("id reused for another kind: %v", err)
	}
	// A damaged journal is started over, not fatal.
	os.WriteFile(path, []byte("{garbage"), 0o600)
	if j3, err := openJournal(path, 3); err != nil || len(j3.ops) != 0 {
		t.Fatalf("damaged journal: %v", err)
	}
}

func TestDeployValidation(t *testing.T) {
	m := newManager(t)
	good := DeployRequest{
		OperationID: "op1", Name: "n1", PackageSHA256: strings.Repeat("a", 64), PackageFormat: "tar.gz",
		ProgramDir: "/opt/admq/n1/program", DataDir: "/opt/admq/n1/data", Argv: []string{"sleep", "1"},
	}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*DeployRequest){
		"op id":           func(r *DeployRequest) { r.OperationID = "" },
		"op id chars":     func(r *DeployRequest) { r.OperationID = "a b" },
		"name":            func(r *DeployRequest) { r.Name = "../x" },
		"sha":             func(r *DeployRequest) { r.PackageSHA256 = "ABC" },
		"format":          func(r *DeployRequest) { r.PackageFormat = "zip" },
		"relative dir":    func(r *DeployRequest) { r.ProgramDir = "opt/x" },
		"unclean dir":     func(r *DeployRequest) { r.DataDir = "/opt/../etc" },
		"root dir":        func(r *DeployRequest) { r.DataDir = "/" },
		"nested dirs":     func(r *DeployRequest) { r.DataDir = r.ProgramDir + "/data" },
		"argv":            func(r *DeployRequest) { r.Argv = nil },
		"env":             func(r *DeployRequest) { r.Env = []string{"NOEQUALS"} },
		"config escapes":  func(r *DeployRequest) { r.ConfigFiles = []ConfigFile{{Path: "../etc/passwd"}} },
		"config absolute": func(r *DeployRequest) { r.ConfigFiles = []ConfigFile{{Path: "/etc/passwd"}} },
		"config mode":     func(r *DeployRequest) { r.ConfigFiles = []ConfigFile{{Path: "a.conf", Mode: os.ModeSetuid | 0o644}} },
		"free addr":       func(r *DeployRequest) { r.FreeAddrs = []string{"127.0.0.1:0"} },
		"free addrs":      func(r *DeployRequest) { r.FreeAddrs = slices.Repeat([]string{"127.0.0.1:2181"}, MaxFreeAddrs+1) },
	}
	for name, mut := range cases {
		r := good
		mut(&r)
		_, err := m.Deploy(t.Context(), r)
		if _, ok := invalid.As(err); !ok {
			t.Errorf("%s: %v, want an invalid.Error", name, err)
		}
	}
	// Absolute config paths inside the data dir are fine.
	r := good
	r.ConfigFiles = []ConfigFile{{Path: "/opt/admq/n1/data/myid"}}
	if err := r.validate(); err != nil {
		t.Fatal(err)
	}
	// A valid request for a package the agent lacks.
	if _, err := m.Deploy(t.Context(), good); !errors.Is(err, ErrNotCached) {
		t.Fatalf("deploy without the package: %v", err)
	}
}

func TestPushPackageChecks(t *testing.T) {
	m := newManager(t)
	data := bytes.Repeat([]byte("x"), 3000)
	s := sha256.Sum256(data)
	sha := hex.EncodeToString(s[:])
	eof := func() ([]byte, error) { return nil, io.EOF }
	ctx := context.Background()

	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: 0}, nil, eof); err == nil {
		t.Fatal("size 0 accepted")
	}
	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: MaxPackageSize + 1}, nil, eof); err == nil {
		t.Fatal("oversized package accepted")
	}
	// Too many bytes: refused and dropped.
	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: 10}, data, eof); err == nil {
		t.Fatal("more bytes than announced accepted")
	}
	// Not enough disk.
	m.freeSpace = func(string) (uint64, error) { return 100, nil }
	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: int64(len(data))}, data, eof); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("no space: %v", err)
	}
	m.freeSpace = diskFree
	// Short stream keeps the part; a resume from the wrong offset is refused.
	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: int64(len(data))}, data[:1000], eof); err == nil {
		t.Fatal("short stream accepted")
	}
	if info, _ := m.HasPackage(sha); info.Partial != 1000 {
		t.Fatalf("partial = %d", info.Partial)
	}
	if _, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: int64(len(data)), Offset: 500}, data[500:], eof); !errors.Is(err, ErrConflict) {
		t.Fatalf("wrong offset: %v", err)
	}
	res, err := m.PushPackage(ctx, PushHeader{SHA256: sha, Size: int64(len(data)), Offset: 1000}, data[1000:], eof)
	if err != nil || res.Received != 2000 {
		t.Fatalf("resume: %+v %v", res, err)
	}
	if info, _ := m.HasPackage(sha); !info.Present || info.Size != int64(len(data)) {
		t.Fatalf("after resume: %+v", info)
	}
}

func TestRemoveRoots(t *testing.T) {
	m := newManager(t)
	root := t.TempDir()
	outside := t.TempDir()
	prog := filepath.Join(root, "n1", "program")
	os.MkdirAll(prog, 0o755)
	// A link inside the root that leads out of it.
	os.Symlink(outside, filepath.Join(root, "link"))
	os.MkdirAll(filepath.Join(outside, "victim"), 0o755)
	cases := []RemoveRequest{
		{OperationID: "r1", Name: "n1", RemoveDirs: true, ProgramDir: prog},                                                                // no roots
		{OperationID: "r2", Name: "n1", RemoveDirs: true, ProgramDir: prog, AllowedRoots: []string{"/"}},                                   // "/" as a root
		{OperationID: "r3", Name: "n1", RemoveDirs: true, ProgramDir: root, AllowedRoots: []string{root}},                                  // the root itself
		{OperationID: "r4", Name: "n1", RemoveDirs: true, ProgramDir: outside, AllowedRoots: []string{root}},                               // elsewhere
		{OperationID: "r5", Name: "n1", RemoveDirs: true, ProgramDir: root + "/../x", AllowedRoots: []string{root}},                        // unclean
		{OperationID: "r6", Name: "n1", RemoveDirs: true, ProgramDir: filepath.Join(root, "link", "victim"), AllowedRoots: []string{root}}, // through a link
	}
	for _, r := range cases {
		if _, err := m.Remove(t.Context(), r); err == nil {
			t.Errorf("%s accepted", r.OperationID)
		} else if _, ok := invalid.As(err); !ok {
			t.Errorf("%s: %v, want an invalid.Error", r.OperationID, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "victim")); err != nil {
		t.Fatal("removed through a link")
	}
	// As if a deploy of n1 had created it.
	if err := writeMarker(prog, dirMarker{Node: "n1", Dir: prog, Created: true}); err != nil {
		t.Fatal(err)
	}
	if res, err := m.Remove(t.Context(), RemoveRequest{OperationID: "ok", Name: "n1", RemoveDirs: true, ProgramDir: prog, AllowedRoots: []string{root}}); err != nil || len(res.Kept) != 0 {
		t.Fatalf("remove: %+v %v", res, err)
	}
	if _, err := os.Stat(prog); !os.IsNotExist(err) {
		t.Fatal("program dir not removed")
	}
	if res, err := m.Remove(t.Context(), RemoveRequest{OperationID: "ok", Name: "n1"}); err != nil || !res.Replayed {
		t.Fatalf("repeated remove: %+v %v", res, err)
	}
}
