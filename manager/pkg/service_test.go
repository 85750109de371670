package pkg_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

const testMax = 64 << 10

type fixture struct {
	svc *pkg.Service
	db  *store.DB
	dir string
}

func newFixture(tb testing.TB, wrapStore func(pkg.Store) pkg.Store) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "admq.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	gen, _ := ids.NewGenerator(1)
	var st pkg.Store = db
	if wrapStore != nil {
		st = wrapStore(db)
	}
	pkgDir := filepath.Join(dir, "packages")
	return &fixture{svc: pkg.NewService(st, pkgDir, testMax, gen, time.Now), db: db, dir: pkgDir}
}

// files lists the files (not directories) under the package directory.
func (f *fixture) files(tb testing.TB) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(f.dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func (f *fixture) count(tb testing.TB) int {
	tb.Helper()
	_, n, err := f.svc.Packages(context.Background(), paging.Page{Num: 1, Size: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUpload(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	data := archivetest.Package(t, "3.8.4")
	p, err := f.svc.Upload(ctx, "admq-zookeeper-V3.8.4-x86_64.tar.gz", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if p.Name != "admq-zookeeper" || p.Version != "3.8.4" || p.Arch != "x86" || p.Ext != "tar.gz" ||
		p.Size != int64(len(data)) || p.SHA256 != digest(data) || !p.Effective || p.MqType != 1 ||
		p.FileName != "admq-zookeeper-V3.8.4-x86_64.tar.gz" || p.ID.IsZero() || p.CreatedAt.IsZero() {
		t.Fatalf("uploaded %+v", p)
	}
	if got := p.Manifest.ComponentNames(); len(got) != 1 || got[0] != "coordinator" {
		t.Fatalf("manifest components %v", got)
	}
	want := filepath.Join(f.dir, "sha256", digest(data))
	if p.FilePath != want || f.svc.Path(p) != want {
		t.Fatalf("FilePath %q, want %q", p.FilePath, want)
	}
	stored, err := os.ReadFile(want)
	if err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored file: %v", err)
	}
	if files := f.files(t); len(files) != 1 {
		t.Fatalf("package dir holds %v", files)
	}

	got, err := f.svc.Package(ctx, p.ID)
	if err != nil || got.FilePath != want || got.SHA256 != p.SHA256 {
		t.Fatalf("Package: %+v, %v", got, err)
	}

	t.Run("same content under another name", func(t *testing.T) {
		_, err := f.svc.Upload(ctx, "zk-copy-V3.8.4-all.tgz", bytes.NewReader(data))
		if !errors.Is(err, pkg.ErrPackageExists) || !strings.Contains(err.Error(), "the same file") {
			t.Fatalf("Upload: %v", err)
		}
	})
	t.Run("same name, version and arch", func(t *testing.T) {
		other := archivetest.Package(t, "3.8.4", archivetest.File("extra", "x"))
		_, err := f.svc.Upload(ctx, "admq-zookeeper-V3.8.4-amd64.tgz", neverRead{t})
		if !errors.Is(err, pkg.ErrPackageExists) || !strings.Contains(err.Error(), "delete it first") {
			t.Fatalf("Upload: %v", err)
		}
		// Another arch is another package.
		if _, err := f.svc.Upload(ctx, "admq-zookeeper-V3.8.4-arm.tar.gz", bytes.NewReader(other)); err != nil {
			t.Fatalf("other arch: %v", err)
		}
	})
	if n := f.count(t); n != 2 {
		t.Fatalf("%d packages", n)
	}
}

// neverRead fails the test if the upload body is read.
type neverRead struct{ tb testing.TB }

func (r neverRead) Read([]byte) (int, error) {
	r.tb.Error("the body was read")
	return 0, io.EOF
}

func TestUploadRefusals(t *testing.T) {
	pkgOf := func(entries ...archivetest.Entry) []byte {
		return archivetest.TarGz(t, append(archivetest.PackageEntries("1.0"), entries...)...)
	}
	manifestOnly := func(m string, entries ...archivetest.Entry) []byte {
		return archivetest.TarGz(t, append([]archivetest.Entry{archivetest.File("admq-package.json", m)}, entries...)...)
	}
	cases := []struct {
		name, file string
		body       io.Reader
		want       error
		says       string
	}{
		{"no name", "", neverRead{t}, pkg.ErrPackageNeeded, "no file name"},
		{"bad name", "foo.tar.gz", neverRead{t}, pkg.ErrNameIllegal, "name-Vversion-arch.ext"},
		{"bad arch", "zk-V1.0-sparc.tar.gz", neverRead{t}, pkg.ErrNameIllegal, `architecture "sparc"`},
		{"empty", "zk-V1.0-x86.tar.gz", strings.NewReader(""), pkg.ErrPackageNeeded, "is empty"},
		{"too large", "zk-V1.0-x86.tar.gz", bytes.NewReader(make([]byte, testMax+1)), pkg.ErrTooLarge, "larger than the limit of 65536 bytes"},
		{"not gzip", "zk-V1.0-x86.tar.gz", strings.NewReader("hello"), pkg.ErrArchiveInvalid, "is not a tar.gz archive"},
		{"tar named tgz", "zk-V1.0-x86.tgz", bytes.NewReader(archivetest.Tar(t, archivetest.PackageEntries("1.0")...)), pkg.ErrArchiveInvalid, "not gzip"},
		{"dotdot entry", "zk-V1.0-x86.tar.gz", bytes.NewReader(pkgOf(archivetest.File("../evil", "x"))), pkg.ErrArchiveUnsafe, `entry "../evil": has a ".." element`},
		{"absolute entry", "zk-V1.0-x86.tar.gz", bytes.NewReader(pkgOf(archivetest.File("/etc/evil", "x"))), pkg.ErrArchiveUnsafe, "absolute path"},
		{"escaping symlink", "zk-V1.0-x86.tar.gz", bytes.NewReader(pkgOf(archivetest.Symlink("conf/up", "../../etc"))), pkg.ErrArchiveUnsafe, "outside the archive"},
		{"hardlink escape", "zk-V1.0-x86.tar.gz", bytes.NewReader(pkgOf(archivetest.Hardlink("passwd", "../etc/passwd"))), pkg.ErrArchiveUnsafe, `".." element`},
		{"no manifest", "zk-V1.0-x86.tar.gz", bytes.NewReader(archivetest.TarGz(t, archivetest.File("conf/zoo.cfg", "a=b"))), pkg.ErrManifest, "admq-package.json is missing at the root of the package"},
		{"manifest in a subdirectory", "zk-V1.0-x86.tar.gz", bytes.NewReader(archivetest.TarGz(t, archivetest.File("zk/admq-package.json", archivetest.Manifest("1.0")))), pkg.ErrManifest, "there is one at zk/admq-package.json"},
		{"invalid manifest", "zk-V1.0-x86.tar.gz", bytes.NewReader(manifestOnly(`{"name": "zk"}`)), pkg.ErrManifest, "components: at least one component is required"},
		{"missing config file", "zk-V1.0-x86.tar.gz", bytes.NewReader(manifestOnly(archivetest.Manifest("1.0"), archivetest.File("bin/zkServer.sh", "x"))), pkg.ErrManifest, "components.coordinator.configFiles[0].path: conf/zoo.cfg is not a regular file in the package"},
		{"config file is a symlink", "zk-V1.0-x86.tar.gz", bytes.NewReader(manifestOnly(archivetest.Manifest("1.0"), archivetest.File("bin/zkServer.sh", "x"), archivetest.File("zoo.cfg", "a=b"), archivetest.Symlink("conf/zoo.cfg", "../zoo.cfg"))), pkg.ErrManifest, "conf/zoo.cfg is not a regular file"},
		{"missing start program", "zk-V1.0-x86.tar.gz", bytes.NewReader(manifestOnly(archivetest.Manifest("1.0"), archivetest.File("conf/zoo.cfg", "a=b"))), pkg.ErrManifest, "components.coordinator.start[0]: bin/zkServer.sh is not in the package"},
		{"version mismatch", "zk-V2.0-x86.tar.gz", bytes.NewReader(archivetest.Package(t, "1.0")), pkg.ErrManifest, "admq-package.json: version: is 1.0 but the file name says 2.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			_, err := f.svc.Upload(t.Context(), c.file, c.body)
			if !errors.Is(err, c.want) {
				t.Fatalf("Upload: %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q does not say %q", err, c.says)
			}
			if files := f.files(t); len(files) != 0 {
				t.Fatalf("left behind: %v", files)
			}
			if n := f.count(t); n != 0 {
				t.Fatalf("%d rows left behind", n)
			}
		})
	}
}

// failingStore fails CreatePackage after everything else has succeeded.
type failingStore struct{ pkg.Store }

func (failingStore) CreatePackage(context.Context, *pkg.Package) error {
	return errors.New("disk full")
}

func TestUploadInsertFails(t *testing.T) {
	f := newFixture(t, func(s pkg.Store) pkg.Store { return failingStore{s} })
	_, err := f.svc.Upload(t.Context(), "zk-V1.0-x86.tar.gz", bytes.NewReader(archivetest.Package(t, "1.0")))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Upload: %v", err)
	}
	if files := f.files(t); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}

// failingReader fails after some bytes, as a client that goes away does.
type failingReader struct{ n int }

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(b), r.n)
	r.n -= n
	return n, nil
}

func TestUploadReadFails(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.svc.Upload(t.Context(), "zk-V1.0-x86.tar.gz", &failingReader{n: 1000})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, pkg.ErrUploadInterrupted) {
		t.Fatalf("Upload: %v", err)
	}
	if files := f.files(t); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}

func TestConcurrentUploadsOfOneFile(t *testing.T) {
	f := newFixture(t, nil)
	data := archivetest.Package(t, "1.0")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			// Different names, one content: exactly one may win.
			name := "zk" + string(rune('a'+i)) + "-V1.0-x86.tar.gz"
			_, errs[i] = f.svc.Upload(context.Background(), name, bytes.NewReader(data))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, pkg.ErrPackageExists):
			t.Errorf("Upload: %v", err)
		}
	}
	if won != 1 || f.count(t) != 1 {
		t.Fatalf("%d uploads won, %d rows", won, f.count(t))
	}
	if files := f.files(t); len(files) != 1 || files[0] != filepath.Join("sha256", digest(data)) {
		t.Fatalf("package dir holds %v", files)
	}
}

func TestEffectiveAndDelete(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	p, err := f.svc.Upload(ctx, "zk-V1.0-all.tar", bytes.NewReader(archivetest.Tar(t, archivetest.PackageEntries("1.0")...)))
	if err != nil {
		t.Fatal(err)
	}
	off, err := f.svc.SetEffective(ctx, p.ID, false)
	if err != nil || off.Effective || off.FilePath != p.FilePath {
		t.Fatalf("disable: %+v, %v", off, err)
	}
	on, err := f.svc.SetEffective(ctx, p.ID, true)
	if err != nil || !on.Effective {
		t.Fatalf("enable: %+v, %v", on, err)
	}
	if _, err := f.svc.SetEffective(ctx, 42, true); !errors.Is(err, pkg.ErrPackageNotFound) {
		t.Fatalf("SetEffective(42): %v", err)
	}

	gone, err := f.svc.Delete(ctx, p.ID)
	if err != nil || gone.ID != p.ID {
		t.Fatalf("Delete: %+v, %v", gone, err)
	}
	if _, err := os.Stat(p.FilePath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file after delete: %v", err)
	}
	if _, err := f.svc.Delete(ctx, p.ID); !errors.Is(err, pkg.ErrPackageNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if n := f.count(t); n != 0 {
		t.Fatalf("%d rows", n)
	}
}

func TestRemoveStaleUploads(t *testing.T) {
	f := newFixture(t, nil)
	if err := f.svc.RemoveStaleUploads(); err != nil {
		t.Fatalf("without a tmp dir: %v", err)
	}
	tmp := filepath.Join(f.dir, "tmp")
	os.MkdirAll(tmp, 0o700)
	os.WriteFile(filepath.Join(tmp, "upload-123"), []byte("half"), 0o600)
	if err := f.svc.RemoveStaleUploads(); err != nil {
		t.Fatal(err)
	}
	if files := f.files(t); len(files) != 0 {
		t.Fatalf("left: %v", files)
	}
}
