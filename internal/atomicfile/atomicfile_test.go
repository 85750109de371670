package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWholeAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, c := range []struct {
		data string
		perm os.FileMode
	}{{"first", 0o600}, {"second, longer", 0o644}} {
		if err := WriteFile(p, []byte(c.data), c.perm); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if string(got) != c.data || st.Mode().Perm() != c.perm {
			t.Fatalf("got %q %v, want %q %v", got, st.Mode().Perm(), c.data, c.perm)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries left in the dir, want 1", len(entries))
	}
}

func TestWriteFileFailureKeepsTheOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory in the way of the rename: the write must fail cleanly.
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing dir succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old content lost: %q", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	// What killed writers of "f" left: a temp file and a staging dir.
	tmp, err := WriteTemp(dir, "f", []byte("half"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	staging, err := os.MkdirTemp(dir, ".f.tmp-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Not theirs: the file itself, another base's temps, look-alikes.
	keep := []string{"f", ".g.tmp-123", ".f.tmp-", ".f.tmp-12a", ".f.tmp-5.tmp-6", "f.tmp-7"}
	for _, k := range keep {
		if err := os.WriteFile(filepath.Join(dir, k), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStale(dir, "f"); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{tmp, staging} {
		if _, err := os.Lstat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", gone, err)
		}
	}
	for _, k := range keep {
		if _, err := os.Lstat(filepath.Join(dir, k)); err != nil {
			t.Errorf("%s removed: %v", k, err)
		}
	}
}
