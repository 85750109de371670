package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/atomicfile"
)

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustWrite(t testing.TB, path, data string, keep int) Version {
	t.Helper()
	v, err := Write(path, []byte(data), 0o644, keep)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWriteReplaceRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "zoo.cfg") // parent is created
	v := mustWrite(t, path, "v1", 3)
	if v.Previous || v.Size != 2 || len(v.SHA256) != 64 {
		t.Fatalf("first Write = %+v", v)
	}
	if _, err := Previous(path); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Previous after first write: %v", err)
	}
	if err := Restore(path); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("Restore with no history: %v", err)
	}
	if v := mustWrite(t, path, "v2", 3); !v.Previous {
		t.Fatalf("second Write = %+v", v)
	}
	mustWrite(t, path, "v3", 3)
	if got := mustRead(t, path); got != "v3" {
		t.Fatalf("current = %q", got)
	}
	if b, err := Previous(path); err != nil || string(b) != "v2" {
		t.Fatalf("Previous = %q, %v", b, err)
	}
	if err := Restore(path); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path); got != "v2" {
		t.Fatalf("after Restore current = %q", got)
	}
	if b, err := Previous(path); err != nil || string(b) != "v1" {
		t.Fatalf("after Restore Previous = %q, %v", b, err)
	}
	if err := Restore(path); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path); got != "v1" {
		t.Fatalf("after second Restore current = %q", got)
	}
	if err := Restore(path); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("third Restore: %v", err)
	}
	assertNoTemps(t, filepath.Dir(path))
}

func TestKeepLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   int
		writes int
		want   map[string]string // suffix → content; others must not exist
	}{
		{"keep 0 means 1", 0, 4, map[string]string{"": "w3", ".prev": "w2"}},
		{"keep 1", 1, 4, map[string]string{"": "w3", ".prev": "w2"}},
		{"keep 3", 3, 6, map[string]string{"": "w5", ".prev": "w4", ".prev.1": "w3", ".prev.2": "w2"}},
		{"fewer writes than keep", 5, 2, map[string]string{"": "w1", ".prev": "w0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			for i := range tc.writes {
				mustWrite(t, path, "w"+string(rune('0'+i)), tc.keep)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != len(tc.want) {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("files = %v; want %d", names, len(tc.want))
			}
			for suf, want := range tc.want {
				if got := mustRead(t, path+suf); got != want {
					t.Errorf("%s = %q; want %q", "f"+suf, got, want)
				}
			}
		})
	}
}

// TestCrashBeforeCommit simulates the agent dying after the temp file was
// written but before the rename: the file must still hold the complete old
// content, and no partial file may be visible under its name.
func TestCrashBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zoo.cfg")
	old := strings.Repeat("old\n", 1000)
	mustWrite(t, path, old, 2)

	crash := errors.New("simulated crash")
	var sawTemp string
	beforeCommit = func(tmp string) error {
		sawTemp = tmp
		if got := mustRead(t, tmp); got != strings.Repeat("new\n", 2000) {
			t.Errorf("temp file incomplete before commit: %d bytes", len(got))
		}
		if got := mustRead(t, path); got != old {
			t.Errorf("file changed before commit")
		}
		return crash
	}
	t.Cleanup(func() { beforeCommit = func(string) error { return nil } })

	if _, err := Write(path, []byte(strings.Repeat("new\n", 2000)), 0o644, 2); !errors.Is(err, crash) {
		t.Fatalf("Write = %v; want the simulated crash", err)
	}
	if sawTemp == "" || filepath.Dir(sawTemp) != dir {
		t.Fatalf("temp file %q not in the target dir", sawTemp)
	}
	if got := mustRead(t, path); got != old {
		t.Fatalf("file after failed Write has %d bytes; want the old content", len(got))
	}
	assertNoTemps(t, dir)
}

// TestKilledWriteLeftovers: an agent killed between writing the temp file
// and renaming it left the temp behind; the next Write of the file (even
// one that finds the content unchanged) removes it, and only it.
func TestKilledWriteLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zoo.cfg")
	mustWrite(t, path, "old\n", 2)
	other := filepath.Join(dir, "myid")
	mustWrite(t, other, "1\n", 2)
	for _, content := range []string{"old\n", "new\n"} {
		left, err := atomicfile.WriteTemp(dir, "zoo.cfg", []byte("half"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		otherLeft, err := atomicfile.WriteTemp(dir, "myid", []byte("2"), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, path, content, 2)
		if _, err := os.Lstat(left); !os.IsNotExist(err) {
			t.Errorf("Write of %q left the killed write's temp %s (%v)", content, left, err)
		}
		if _, err := os.Lstat(otherLeft); err != nil {
			t.Errorf("Write of zoo.cfg removed myid's temp: %v", err)
		}
		os.Remove(otherLeft)
	}
}

func TestPermissions(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{
		{"private", 0o600},
		{"world readable", 0o644},
		{"group write ignores umask", 0o664},
		{"executable", 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if _, err := Write(path, []byte("x"), tc.mode, 1); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Errorf("mode = %v; want %v", fi.Mode().Perm(), tc.mode)
			}
			// A replacement gets the new mode; the kept version keeps the old.
			if _, err := Write(path, []byte("y"), 0o640, 1); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("replaced mode = %v; want 0640", fi.Mode().Perm())
			}
			if fi, _ := os.Stat(path + PrevSuffix); fi.Mode().Perm() != tc.mode {
				t.Errorf("previous mode = %v; want %v", fi.Mode().Perm(), tc.mode)
			}
		})
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatal(err)
	}
}

func TestRefusesNonRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(path, []byte("x"), 0o644, 1); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Write over a directory = %v", err)
	}
	assertNoTemps(t, filepath.Dir(path))
}

func assertNoTemps(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", e.Name())
		}
	}
}

func TestSame(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zoo.cfg")
	mustWrite(t, path, "tickTime=2000\n", 3) // mode 0644
	link := filepath.Join(dir, "link.cfg")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		data string
		mode os.FileMode
		want bool
	}{
		{"identical", path, "tickTime=2000\n", 0o644, true},
		{"type bits of mode ignored", path, "tickTime=2000\n", os.ModeSetuid | 0o644, true},
		{"other content, same size", path, "tickTime=3000\n", 0o644, false},
		{"other size", path, "tickTime=2000\ninitLimit=5\n", 0o644, false},
		{"empty", path, "", 0o644, false},
		{"other mode", path, "tickTime=2000\n", 0o600, false},
		{"missing", filepath.Join(dir, "nope.cfg"), "tickTime=2000\n", 0o644, false},
		{"symlink to identical", link, "tickTime=2000\n", 0o644, false},
		{"directory", dir, "", 0o755, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Same(tc.path, []byte(tc.data), tc.mode)
			if err != nil || got != tc.want {
				t.Fatalf("Same = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := Same(filepath.Join(path, "under-a-file"), nil, 0o644); err == nil {
		t.Fatal("Same below a regular file: no error")
	}
}

// Writing what the file holds already leaves the file and its history
// alone; a change of content or of mode is a new version.
func TestWriteUnchangedKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zoo.cfg")
	mustWrite(t, path, "v1", 3)
	mustWrite(t, path, "v2", 3)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		v := mustWrite(t, path, "v2", 3)
		if !v.Unchanged || v.Previous || v.Size != 2 || len(v.SHA256) != 64 {
			t.Fatalf("identical Write %d = %+v, want Unchanged", i, v)
		}
	}
	if after, err := os.Stat(path); err != nil || !os.SameFile(before, after) {
		t.Fatalf("identical Writes replaced the file: %v", err)
	}
	if b, err := Previous(path); err != nil || string(b) != "v1" {
		t.Fatalf("Previous after identical Writes = %q, %v; want v1", b, err)
	}
	if _, err := os.Lstat(path + PrevSuffix + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("identical Writes shifted the history: %v", err)
	}
	// Same content, other mode: written, history shifted.
	if v, err := Write(path, []byte("v2"), 0o600, 3); err != nil || v.Unchanged || !v.Previous {
		t.Fatalf("Write with another mode = %+v, %v", v, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Write = %v, want 0600", fi.Mode().Perm())
	}
	if got := mustRead(t, path+PrevSuffix+".1"); got != "v1" {
		t.Fatalf(".prev.1 = %q, want v1", got)
	}
	assertNoTemps(t, dir)
}
