package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/archive"
	at "github.com/admq/admq-manager/internal/archive/archivetest"
)

func TestInspectGood(t *testing.T) {
	entries := at.PackageEntries("3.8.4",
		at.Dir("./lib/"),
		at.File("./lib/zk.jar", "jar"),
		at.Symlink("lib/current.jar", "zk.jar"),
		at.Symlink("bin/conf", "../conf"),
		at.Symlink("docs", "."),
		at.Hardlink("conf/zoo.cfg.orig", "conf/zoo.cfg"),
		at.Entry{Name: "lib/setuid", Body: "x", Mode: 0o4755},
		at.File("sub/admq-package.json", "{}"),
		at.Dir("sub/"), // an explicit entry for an implied directory
		at.Dir("./"),   // the root
	)
	for _, format := range []string{"tar.gz", "tar"} {
		t.Run(format, func(t *testing.T) {
			data := at.TarGz(t, entries...)
			if format == "tar" {
				data = at.Tar(t, entries...)
			}
			ins, err := archive.Inspect(bytes.NewReader(data), format, archive.Limits{})
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if string(ins.Manifest) != at.Manifest("3.8.4") {
				t.Errorf("manifest = %q", ins.Manifest)
			}
			if ins.ManifestElsewhere != "sub/admq-package.json" {
				t.Errorf("ManifestElsewhere = %q", ins.ManifestElsewhere)
			}
			for _, f := range []string{"admq-package.json", "conf/zoo.cfg", "conf/zoo.cfg.orig", "lib/zk.jar", "bin/zkServer.sh"} {
				if _, ok := ins.Files[f]; !ok {
					t.Errorf("Files lacks %q: %v", f, ins.Files)
				}
			}
			if ins.Files["conf/zoo.cfg.orig"] != ins.Files["conf/zoo.cfg"] {
				t.Errorf("hard link size %d, file size %d", ins.Files["conf/zoo.cfg.orig"], ins.Files["conf/zoo.cfg"])
			}
			if ins.Symlinks["bin/conf"] != "../conf" || len(ins.Symlinks) != 3 {
				t.Errorf("Symlinks = %v", ins.Symlinks)
			}
			if ins.Entries != len(entries) {
				t.Errorf("Entries = %d, want %d", ins.Entries, len(entries))
			}
		})
	}
}

// bad are archives Inspect and Extract must refuse, with the error they
// must wrap and a phrase the message must hold.
var bad = []struct {
	name    string
	entries []at.Entry
	want    error
	says    string
}{
	{"dotdot", []at.Entry{at.File("../evil", "x")}, archive.ErrUnsafe, `has a ".." element`},
	{"dotdot inside", []at.Entry{at.File("conf/../../evil", "x")}, archive.ErrUnsafe, `has a ".." element`},
	{"dotdot that cleans away", []at.Entry{at.File("conf/../zoo.cfg", "x")}, archive.ErrUnsafe, `has a ".." element`},
	{"absolute", []at.Entry{at.File("/etc/cron.d/evil", "x")}, archive.ErrUnsafe, "absolute path"},
	{"backslash", []at.Entry{at.File(`..\evil`, "x")}, archive.ErrUnsafe, "backslash"},
	{"control char", []at.Entry{at.File("a\nb", "x")}, archive.ErrUnsafe, "control character"},
	{"not utf-8", []at.Entry{at.File("a\xffb", "x")}, archive.ErrUnsafe, "not UTF-8"},
	{"symlink absolute", []at.Entry{at.Symlink("passwd", "/etc/passwd")}, archive.ErrUnsafe, "absolute path"},
	{"symlink escapes", []at.Entry{at.Dir("a/"), at.Symlink("a/up", "../../etc")}, archive.ErrUnsafe, "outside the archive"},
	{"symlink to parent of root", []at.Entry{at.Symlink("up", "..")}, archive.ErrUnsafe, "outside the archive"},
	{"symlink chain escapes", []at.Entry{
		// a/b/s resolves to the root, so t -> a/b/s/.. is its parent,
		// though the text "a/b/s/../../.." stays inside.
		at.Dir("a/b/"), at.Symlink("a/b/s", "../.."), at.Symlink("t", "a/b/s/../../.."),
	}, archive.ErrUnsafe, "leads outside the archive"},
	{"symlink chain through later link", []at.Entry{
		// Each text stays inside, but x is the root, so x/.. is not.
		at.Symlink("t", "x/.."), at.Symlink("x", "."),
	}, archive.ErrUnsafe, "leads outside the archive"},
	{"symlink loop", []at.Entry{at.Symlink("a", "b/c"), at.Symlink("b", "a/c")}, archive.ErrUnsafe, "too many symbolic links"},
	{"write through symlink", []at.Entry{at.Symlink("lib", "."), at.File("lib/x", "x")}, archive.ErrUnsafe, `parent "lib" is a symbolic link`},
	{"write below file", []at.Entry{at.File("f", "x"), at.File("f/x", "x")}, archive.ErrUnsafe, `parent "f" is a file`},
	{"hardlink outside", []at.Entry{at.Hardlink("passwd", "/etc/passwd")}, archive.ErrUnsafe, "absolute path"},
	{"hardlink dotdot", []at.Entry{at.Hardlink("passwd", "../../etc/passwd")}, archive.ErrUnsafe, `".." element`},
	{"hardlink to nothing", []at.Entry{at.Hardlink("x", "missing")}, archive.ErrUnsafe, "not an earlier regular file"},
	{"hardlink to later file", []at.Entry{at.Hardlink("x", "later"), at.File("later", "x")}, archive.ErrUnsafe, "not an earlier regular file"},
	{"hardlink to symlink", []at.Entry{at.Symlink("s", "f"), at.Hardlink("x", "s")}, archive.ErrUnsafe, "not an earlier regular file"},
	{"hardlink to dir", []at.Entry{at.Dir("d/"), at.Hardlink("x", "d")}, archive.ErrUnsafe, "not an earlier regular file"},
	{"char device", []at.Entry{{Name: "dev", Type: tar.TypeChar}}, archive.ErrUnsafe, "is a device"},
	{"block device", []at.Entry{{Name: "dev", Type: tar.TypeBlock}}, archive.ErrUnsafe, "is a device"},
	{"fifo", []at.Entry{{Name: "fifo", Type: tar.TypeFifo}}, archive.ErrUnsafe, "FIFO"},
	{"duplicate file", []at.Entry{at.File("a", "1"), at.File("./a", "2")}, archive.ErrUnsafe, "duplicate path"},
	{"duplicate dir", []at.Entry{at.Dir("d/"), at.Dir("d/")}, archive.ErrUnsafe, "duplicate path"},
	{"file over dir", []at.Entry{at.File("d/x", "1"), at.File("d", "2")}, archive.ErrUnsafe, `"d" is already a directory`},
	{"symlink over dir", []at.Entry{at.File("d/x", "1"), at.Symlink("d", "e")}, archive.ErrUnsafe, "duplicate path"},
	{"root as file", []at.Entry{{Name: ".", Type: tar.TypeReg}}, archive.ErrUnsafe, "names the archive root but is not a directory"},
	{"manifest as symlink", []at.Entry{at.File("m", "{}"), at.Symlink("admq-package.json", "m")}, archive.ErrUnsafe, "must be a regular file"},
	{"too many entries", []at.Entry{at.File("1", ""), at.File("2", ""), at.File("3", ""), at.File("4", ""), at.File("5", "")}, archive.ErrLimit, "more than 4 entries"},
	{"too many bytes", []at.Entry{at.File("a", strings.Repeat("x", 600)), at.File("b", strings.Repeat("x", 600))}, archive.ErrLimit, "more than 1000 bytes"},
	{"manifest too large", []at.Entry{at.File("admq-package.json", strings.Repeat(" ", 200))}, archive.ErrLimit, "at most 100 are allowed"},
}

var testLimits = archive.Limits{MaxEntries: 4, MaxSize: 1000, MaxManifestSize: 100}

func TestInspectBad(t *testing.T) {
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := archive.Inspect(bytes.NewReader(at.TarGz(t, c.entries...)), "tar.gz", testLimits)
			checkErr(t, err, c.want, c.says)
		})
	}
}

func TestExtractBad(t *testing.T) {
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "dest")
			err := archive.Extract(t.Context(), bytes.NewReader(at.Tar(t, c.entries...)), "tar", dest, testLimits)
			if c.name == "manifest as symlink" || c.name == "manifest too large" {
				// Only packages need a manifest; Extract unpacks any archive.
				if err != nil {
					t.Fatalf("Extract: %v", err)
				}
				return
			}
			checkErr(t, err, c.want, c.says)
			if left := listTree(t, parent); len(left) != 0 {
				t.Fatalf("Extract left %v behind", left)
			}
		})
	}
}

func TestInspectCorrupt(t *testing.T) {
	good := at.Package(t, "1.0")
	cases := []struct {
		name, format string
		data         []byte
	}{
		{"not gzip", "tar.gz", []byte("hello, world")},
		{"truncated gzip", "tar.gz", good[:len(good)/2]},
		{"bad gzip checksum", "tar.gz", append(append([]byte{}, good[:len(good)-8]...), 0, 0, 0, 0, 0, 0, 0, 0)},
		{"gzip of garbage", "tar.gz", append(good[:10:10], bytes.Repeat([]byte{0xff}, 100)...)},
		{"garbage tar", "tar", bytes.Repeat([]byte("x"), 1024)},
		{"unknown format", "zip", good},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := archive.Inspect(bytes.NewReader(c.data), c.format, archive.Limits{})
			checkErr(t, err, archive.ErrFormat, "")
		})
	}
}

func TestExtract(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "zk")
	entries := at.PackageEntries("3.8.4",
		at.Symlink("bin/conf", "../conf"),
		at.Hardlink("conf/zoo.cfg.orig", "conf/zoo.cfg"),
		at.Entry{Name: "bin/setuid", Body: "x", Mode: 0o6777},
		at.Entry{Name: "private/", Type: tar.TypeDir, Mode: 0o1777},
		at.Entry{Name: "private/key", Body: "k", Mode: 0o400},
	)
	if err := archive.Extract(t.Context(), bytes.NewReader(at.TarGz(t, entries...)), "tar.gz", dest, archive.Limits{}); err != nil {
		t.Fatalf("Extract: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dest, "bin", "conf", "zoo.cfg"))
	if err != nil || !strings.Contains(string(b), "clientPort=2181") {
		t.Fatalf("zoo.cfg through the link: %q, %v", b, err)
	}
	modes := map[string]fs.FileMode{
		".": fs.ModeDir | 0o755, "bin/zkServer.sh": 0o755, "conf/zoo.cfg": 0o644,
		"bin/setuid": 0o755, "private": fs.ModeDir | 0o755, "private/key": 0o600,
	}
	for p, want := range modes {
		fi, err := os.Lstat(filepath.Join(dest, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	a, _ := os.Stat(filepath.Join(dest, "conf/zoo.cfg"))
	o, _ := os.Stat(filepath.Join(dest, "conf/zoo.cfg.orig"))
	if !os.SameFile(a, o) {
		t.Errorf("hard link is not the same file")
	}
	if beside, _ := os.ReadDir(parent); len(beside) != 1 || beside[0].Name() != "zk" {
		t.Errorf("beside dest: %v", beside)
	}

	t.Run("dest exists", func(t *testing.T) {
		err := archive.Extract(t.Context(), bytes.NewReader(at.Package(t, "1")), "tar.gz", dest, archive.Limits{})
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Extract over an existing dir: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		p := t.TempDir()
		err := archive.Extract(ctx, bytes.NewReader(at.Package(t, "1")), "tar.gz", filepath.Join(p, "x"), archive.Limits{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Extract with a cancelled context: %v", err)
		}
		if left := listTree(t, p); len(left) != 0 {
			t.Fatalf("left %v", left)
		}
	})
	t.Run("a killed extract's staging dir", func(t *testing.T) {
		// An agent killed in the middle of an unpack left this.
		p := t.TempDir()
		staging, err := os.MkdirTemp(p, ".x.tmp-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(staging, "half"), []byte("h"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := archive.Extract(t.Context(), bytes.NewReader(at.Package(t, "1")), "tar.gz", filepath.Join(p, "x"), archive.Limits{}); err != nil {
			t.Fatal(err)
		}
		if beside, _ := os.ReadDir(p); len(beside) != 1 || beside[0].Name() != "x" {
			t.Errorf("beside dest after the next extract: %v", beside)
		}
	})
}

func checkErr(tb testing.TB, err, want error, says string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("accepted; want %v", want)
	}
	if !errors.Is(err, want) {
		tb.Fatalf("error %q does not wrap %q", err, want)
	}
	if !strings.Contains(err.Error(), says) {
		tb.Fatalf("error %q does not say %q", err, says)
	}
}

// listTree lists every path below dir, relative to it.
func listTree(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func FuzzInspect(f *testing.F) {
	f.Add(at.Package(f, "1.0"), true)
	f.Add(at.Tar(f, at.PackageEntries("1.0")...), false)
	for _, c := range bad {
		f.Add(at.Tar(f, c.entries...), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, gz bool) {
		format := "tar"
		if gz {
			format = "tar.gz"
		}
		lim := archive.Limits{MaxEntries: 1000, MaxSize: 1 << 20}
		ins, inspectErr := archive.Inspect(bytes.NewReader(data), format, lim)
		if inspectErr == nil {
			for p := range ins.Files {
				if strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
					t.Fatalf("unsafe path accepted: %q", p)
				}
			}
		}

		// Extract must write nothing outside dest, and nothing at all if
		// it fails.
		parent := t.TempDir()
		dest := filepath.Join(parent, "dest")
		err := archive.Extract(t.Context(), bytes.NewReader(data), format, dest, lim)
		left := listTree(t, parent)
		for _, p := range left {
			if p != "dest" && !strings.HasPrefix(p, "dest"+string(filepath.Separator)) {
				t.Fatalf("Extract wrote %q outside dest", p)
			}
		}
		if err != nil && len(left) != 0 {
			t.Fatalf("failed Extract (%v) left %v", err, left)
		}
		if (err == nil) != (inspectErr == nil) && !errors.Is(inspectErr, archive.ErrUnsafe) && !errors.Is(inspectErr, archive.ErrLimit) {
			t.Fatalf("Inspect says %v but Extract says %v", inspectErr, err)
		}
	})
}
