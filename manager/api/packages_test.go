package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

// newPackageHarness is newHarness serving a package service that keeps its
// files in the returned directory and caps packages at maxSize bytes.
func newPackageHarness(t *testing.T, maxSize int64) (*harness, string) {
	t.Helper()
	h := newHarness(t)
	dir := filepath.Join(t.TempDir(), "packages")
	gen, _ := ids.NewGenerator(2)
	svc := pkg.NewService(h.db, dir, maxSize, gen, time.Now)
	deps := h.deps
	h.deps = func(t testing.TB) Deps {
		d := deps(t)
		d.Packages = svc
		return d
	}
	h.srv.Close()
	h.srv = httptest.NewServer(New(h.deps(t)))
	t.Cleanup(h.srv.Close)
	return h, dir
}

// upload sends fileName and content as the multipart field "file". A
// []byte body is sent with its Content-Length; an io.Reader is streamed
// (chunked) from a pipe, so that the client holds none of it in memory.
func (h *harness) upload(token, fileName string, content any) reply {
	h.t.Helper()
	var body io.Reader
	contentType := ""
	switch v := content.(type) {
	case []byte:
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("file", fileName)
		fw.Write(v)
		mw.Close()
		body, contentType = &b, mw.FormDataContentType()
	case io.Reader:
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			fw, err := mw.CreateFormFile("file", fileName)
			if err == nil {
				_, err = io.Copy(fw, v)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		body, contentType = pr, mw.FormDataContentType()
	default:
		h.t.Fatalf("upload of %T", content)
	}
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+Prefix+"/package", body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return h.send(req, token)
}

func (h *harness) send(req *http.Request, token string) reply {
	h.t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil {
		h.t.Fatalf("not an envelope: %s", raw)
	}
	r.Status = resp.StatusCode
	return r
}

type pkgItem struct {
	ID, CreateTime, UpdateTime, Name, Version, FilePath, FileSize, CPU, FileName, SHA256 string
	MqType, Effective                                                                    int
	Components                                                                           []string
}

func (h *harness) packageList(token string) page[pkgItem] {
	h.t.Helper()
	r := h.call("GET", "/package?pageSize=100", token, nil)
	want(h.t, r, 200, 0)
	return decodeData[page[pkgItem]](h.t, r)
}

// filesUnder lists the files (not directories) below dir.
func filesUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
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

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPackageUpload(t *testing.T) {
	h, dir := newPackageHarness(t, 1<<20)
	tok := h.userToken("operator")
	good := at.Package(t, "3.8.4")

	r := h.upload(tok, "admq-zookeeper-V3.8.4-x86.tar.gz", good)
	want(t, r, 200, 0)
	created := decodeData[pkgItem](t, r)

	list := h.packageList(tok)
	if list.Total != 1 {
		t.Fatalf("list: %+v", list)
	}
	p := list.List[0]
	wantPath := filepath.Join(dir, "sha256", hexSum(good))
	if p.ID != created.ID || p.Name != "admq-zookeeper" || p.Version != "3.8.4" || p.CPU != "x86" ||
		p.FileSize != fmt.Sprint(len(good)) || p.Effective != 1 || p.MqType != 1 || p.SHA256 != hexSum(good) ||
		p.FileName != "admq-zookeeper-V3.8.4-x86.tar.gz" || p.FilePath != wantPath ||
		strings.Join(p.Components, ",") != "coordinator" || p.CreateTime == "" || p.UpdateTime == "" {
		t.Fatalf("listed %+v", p)
	}
	stored, err := os.ReadFile(wantPath)
	if err != nil || hexSum(stored) != hexSum(good) {
		t.Fatalf("stored file: %v", err)
	}

	other := at.Package(t, "3.8.4", at.File("NOTICE", "another build"))
	manifestOnly := func(entries ...at.Entry) []byte {
		return at.TarGz(t, append([]at.Entry{at.File("admq-package.json", at.Manifest("1.0"))}, entries...)...)
	}
	withEntry := func(e at.Entry) []byte { return at.TarGz(t, append(at.PackageEntries("1.0"), e)...) }
	cases := []struct {
		name, file   string
		content      any
		status, code int
		says         string
	}{
		{"same file again", "admq-zookeeper-V3.8.4-x86.tar.gz", good, 409, codePackageExist, "already"},
		{"same bytes under another name", "zk-copy-V3.8.4-all.tgz", good, 409, codePackageExist, "the same file"},
		{"same name, version and arch, other bytes", "admq-zookeeper-V3.8.4-amd64.tar.gz", other, 409, codePackageExist, "was uploaded as admq-zookeeper-V3.8.4-x86.tar.gz"},
		{"name without version and arch", "foo.tar.gz", good, 400, codePackageNameIllegal, "name-Vversion-arch.ext"},
		{"empty file", "zk-V1.0-x86.tar.gz", []byte{}, 400, codePackageNeed, "is empty"},
		{"over the limit, streamed", "zk-V1.0-x86.tar.gz", io.LimitReader(rand.NewChaCha8([32]byte{}), 1<<20+1), 413, codeRequestTooLarge, "larger than the limit of 1048576 bytes"},
		{"over the limit by Content-Length", "zk-V1.0-x86.tar.gz", make([]byte, 3<<20), 413, codeRequestTooLarge, "larger than 1048576 bytes"},
		{"not a gzip", "zk-V1.0-x86.tar.gz", []byte("just text"), 400, codePackageIllegal, "not a tar.gz archive"},
		{"dotdot entry", "zk-V1.0-x86.tar.gz", withEntry(at.File("../../etc/cron.d/x", "x")), 400, codePackageIllegal, `".." element`},
		{"absolute entry", "zk-V1.0-x86.tar.gz", withEntry(at.File("/etc/cron.d/x", "x")), 400, codePackageIllegal, "absolute path"},
		{"escaping symlink", "zk-V1.0-x86.tar.gz", withEntry(at.Symlink("bin/etc", "../../etc")), 400, codePackageIllegal, "outside the archive"},
		{"hardlink escape", "zk-V1.0-x86.tar.gz", withEntry(at.Hardlink("bin/passwd", "../etc/passwd")), 400, codePackageIllegal, `".." element`},
		{"hardlink to nothing", "zk-V1.0-x86.tar.gz", withEntry(at.Hardlink("bin/passwd", "etc/passwd")), 400, codePackageIllegal, "not an earlier regular file"},
		{"no manifest", "zk-V1.0-x86.tar.gz", at.TarGz(t, at.File("conf/zoo.cfg", "a=b")), 400, codePackageIllegal, "admq-package.json is missing at the root"},
		{"manifest names a missing config file", "zk-V1.0-x86.tar.gz", manifestOnly(at.File("bin/zkServer.sh", "x")), 400, codePackageIllegal, "conf/zoo.cfg is not a regular file in the package"},
		{"manifest with a typo", "zk-V1.0-x86.tar.gz", at.TarGz(t, at.File("admq-package.json", strings.Replace(at.Manifest("1.0"), "serverPort", "serverport", 1))), 400, codePackageIllegal, `serverport: unknown field (did you mean "serverPort"?`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.upload(tok, c.file, c.content)
			want(t, r, c.status, c.code)
			if !strings.Contains(r.Message, c.says) {
				t.Fatalf("message %q does not say %q", r.Message, c.says)
			}
			// Nothing left behind: no row, no file but the first package.
			if n := h.packageList(tok).Total; n != 1 {
				t.Fatalf("%d packages", n)
			}
			if files := filesUnder(t, dir); len(files) != 1 || files[0] != filepath.Join("sha256", hexSum(good)) {
				t.Fatalf("package dir holds %v", files)
			}
		})
	}

	t.Run("no file part", func(t *testing.T) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("name", "zk-V1.0-x86.tar.gz")
		mw.Close()
		req, _ := http.NewRequest("POST", h.srv.URL+Prefix+"/package", &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		r := h.send(req, tok)
		want(t, r, 400, codePackageNeed)
		if !strings.Contains(r.Message, `field "file"`) {
			t.Fatalf("message %q", r.Message)
		}
	})
	t.Run("file field without a file", func(t *testing.T) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("file", "not a file")
		mw.Close()
		req, _ := http.NewRequest("POST", h.srv.URL+Prefix+"/package", &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		want(t, h.send(req, tok), 400, codePackageNeed)
	})
	t.Run("not multipart", func(t *testing.T) {
		want(t, h.call("POST", "/package", tok, map[string]string{"file": "x"}), 400, codePackageNeed)
	})
	t.Run("viewer may not upload", func(t *testing.T) {
		want(t, h.upload(h.userToken("viewer"), "zk-V9-x86.tar.gz", at.Package(t, "9")), 403, codePermissionDeny)
	})
	t.Run("not logged in", func(t *testing.T) {
		want(t, h.upload("", "zk-V9-x86.tar.gz", at.Package(t, "9")), 401, codeTokenInvalid)
	})
	if n := h.packageList(tok).Total; n != 1 {
		t.Fatalf("%d packages", n)
	}
	if files := filesUnder(t, dir); len(files) != 1 {
		t.Fatalf("package dir holds %v", files)
	}

	t.Run("audited", func(t *testing.T) {
		type entry struct {
			Method, Path, Detail, Username string
			Code                           int
		}
		log := decodeData[page[entry]](t, h.call("GET", "/audit?pageSize=100", h.login("admin", adminPassword), nil))
		var found bool
		for _, e := range log.List {
			if e.Method == "POST" && e.Path == Prefix+"/package" && e.Code == 0 {
				found = e.Detail == "package=admq-zookeeper-V3.8.4-x86.tar.gz sha256="+hexSum(good)[:12] && e.Username == "operator-user"
			}
		}
		if !found {
			t.Fatalf("no audit entry for the upload: %+v", log.List)
		}
	})
}

func TestPackageStatusAndDelete(t *testing.T) {
	h, dir := newPackageHarness(t, 1<<20)
	tok := h.userToken("operator")
	r := h.upload(tok, "zk-V1.0-all.tar", at.Tar(t, at.PackageEntries("1.0")...))
	want(t, r, 200, 0)
	p := decodeData[pkgItem](t, r)
	if p.CPU != "all" || p.Effective != 1 {
		t.Fatalf("uploaded %+v", p)
	}

	for _, eff := range []int{0, 1, 0} {
		r := h.call("PUT", "/package/status", tok, map[string]any{"id": p.ID, "effective": eff})
		want(t, r, 200, 0)
		if got := decodeData[pkgItem](t, r); got.Effective != eff {
			t.Fatalf("set %d: %+v", eff, got)
		}
		if got := h.packageList(tok).List[0].Effective; got != eff {
			t.Fatalf("listed effective %d, want %d", got, eff)
		}
	}
	for name, body := range map[string]any{
		"effective 2":       map[string]any{"id": p.ID, "effective": 2},
		"effective missing": map[string]any{"id": p.ID},
		"id missing":        map[string]any{"effective": 1},
		"effective as bool": map[string]any{"id": p.ID, "effective": true},
	} {
		t.Run(name, func(t *testing.T) {
			want(t, h.call("PUT", "/package/status", tok, body), 400, codeParamInvalid)
		})
	}
	want(t, h.call("PUT", "/package/status", tok, map[string]any{"id": "42", "effective": 1}), 404, codePackageNotExist)
	want(t, h.call("PUT", "/package/status", h.userToken("viewer"), map[string]any{"id": p.ID, "effective": 1}), 403, codePermissionDeny)

	want(t, h.call("DELETE", "/package?id="+p.ID, tok, nil), 200, 0)
	if n := h.packageList(tok).Total; n != 0 {
		t.Fatalf("%d packages after delete", n)
	}
	if files := filesUnder(t, dir); len(files) != 0 {
		t.Fatalf("files after delete: %v", files)
	}
	want(t, h.call("DELETE", "/package", tok, map[string]string{"id": p.ID}), 404, codePackageNotExist)

	// Deleted, it may be uploaded again.
	want(t, h.upload(tok, "zk-V1.0-all.tar", at.Tar(t, at.PackageEntries("1.0")...)), 200, 0)
}

// TestPackageUploadStreams uploads a 50 MB package and checks that the
// heap never grew by anything near its size: the body went to disk as it
// arrived.
func TestPackageUploadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 50 MB package")
	}
	const size = 50 << 20
	h, dir := newPackageHarness(t, 64<<20)
	tok := h.userToken("operator")
	file, sum := bigPackage(t, size)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := h.upload(tok, "big-V1.0-x86.tar.gz", io.Reader(f))
	close(stop)
	<-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	want(t, r, 200, 0)

	growth := int64(peak.Load()) - int64(before.HeapAlloc)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("package %d MiB: peak heap growth %.1f MiB, %.1f MiB allocated in all", size>>20, float64(growth)/(1<<20), float64(allocated)/(1<<20))
	// Sampling may miss a short-lived buffer; the total allocated cannot.
	if growth > 16<<20 || allocated > 16<<20 {
		t.Errorf("a %d-byte upload grew the heap by %d bytes and allocated %d: it is buffered", size, growth, allocated)
	}
	if got := decodeData[pkgItem](t, r).SHA256; got != sum {
		t.Fatalf("sha256 %s, want %s", got, sum)
	}
	fi, err := os.Stat(filepath.Join(dir, "sha256", sum))
	if err != nil || fi.Size() < size {
		t.Fatalf("stored file: %v", err)
	}
}

// bigPackage writes a package holding size bytes of incompressible data
// to a temporary file, stored rather than compressed so that it is quick
// to make, and returns its path and sha256.
func bigPackage(tb testing.TB, size int64) (string, string) {
	tb.Helper()
	f, err := os.Create(filepath.Join(tb.TempDir(), "big.tar.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	blob := at.Entry{Name: "lib/blob.bin", Reader: io.LimitReader(rand.NewChaCha8([32]byte{1}), size), Size: size}
	if err := at.WriteTarGz(io.MultiWriter(f, h), gzip.NoCompression, at.PackageEntries("1.0", blob)...); err != nil {
		tb.Fatal(err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil))
}

// BenchmarkUpload uploads a 64 MiB package through the API: multipart
// parsing, hashing, writing, inspecting and committing it.
func BenchmarkUpload(b *testing.B) {
	const size = 64 << 20
	ctx := context.Background()
	dir := b.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "admq.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	gen, _ := ids.NewGenerator(1)
	authSvc, err := auth.NewService(db, bytes.Repeat([]byte("s"), 32), time.Hour, bcrypt.MinCost, gen, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := authSvc.EnsureAdmin(ctx, adminPassword); err != nil {
		b.Fatal(err)
	}
	token, _, _, err := authSvc.Login(ctx, "admin", adminPassword)
	if err != nil {
		b.Fatal(err)
	}
	pkgSvc := pkg.NewService(db, filepath.Join(dir, "packages"), size+(1<<20), gen, time.Now)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(New(Deps{
		Auth: authSvc, Audit: db, IDs: gen, Now: time.Now, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: reg, Gatherer: reg, Packages: pkgSvc,
	}))
	defer srv.Close()
	file, _ := bigPackage(b, size)
	fi, _ := os.Stat(file)

	b.SetBytes(fi.Size())
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			fw, err := mw.CreateFormFile("file", "bench-V1.0-x86.tar.gz")
			if err == nil {
				_, err = io.Copy(fw, f)
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		req, _ := http.NewRequest("POST", srv.URL+Prefix+"/package", pr)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var env struct {
			Code int
			Data struct{ ID ids.ID }
		}
		json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		f.Close()
		if env.Code != 0 {
			b.Fatalf("upload: code %d", env.Code)
		}
		b.StopTimer()
		if _, err := pkgSvc.Delete(ctx, env.Data.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func TestPackageRoutesDocumented(t *testing.T) {
	h, _ := newPackageHarness(t, 1<<20)
	resp, err := http.Get(h.srv.URL + Prefix + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	item := doc.Paths.Find(Prefix + "/package")
	if item == nil || item.Post == nil || item.Get == nil || item.Delete == nil || doc.Paths.Find(Prefix+"/package/status").Put == nil {
		t.Fatal("package routes are not documented")
	}
	form := item.Post.RequestBody.Value.Content.Get("multipart/form-data")
	if form == nil || !item.Post.RequestBody.Value.Required {
		t.Fatalf("upload body is not a required multipart/form-data: %+v", item.Post.RequestBody.Value)
	}
	file := form.Schema.Value.Properties["file"]
	if file == nil || file.Value.Format != "binary" || form.Schema.Value.Required[0] != "file" {
		t.Fatalf("upload form lacks a binary file: %+v", form.Schema.Value)
	}
	list := item.Get.Responses.Status(200).Value.Content.Get("application/json").Schema.Value.Properties["data"].Value.Properties["list"].Value.Items.Value
	for _, f := range []string{"id", "createTime", "updateTime", "name", "version", "filePath", "fileSize", "mqType", "cpu", "effective", "sha256", "fileName", "components"} {
		if list.Properties[f] == nil {
			t.Errorf("package list item lacks %q in the document", f)
		}
	}
	for _, code := range []string{"| 1202 | PACKAGE_NEED | 400 |", "| 1204 | PACKAGE_NAME_ILLEGAL | 400 |", "| 1205 | PACKAGE_EXIST | 409 |", "| 1206 | PACKAGE_ILLEGAL | 400 |"} {
		if !strings.Contains(doc.Info.Description, code) {
			t.Errorf("code table lacks %q", code)
		}
	}
}

// slowReader yields its data in small pieces with pauses, as a slow link.
type slowReader struct {
	data  []byte
	pause time.Duration
}

func (r *slowReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := copy(b[:min(len(b), 1024)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestPackageUploadOutlastsReadTimeout: the server's ReadTimeout suits
// small requests; an upload gets time in proportion to the package cap.
func TestPackageUploadOutlastsReadTimeout(t *testing.T) {
	h, _ := newPackageHarness(t, 1<<20)
	tok := h.userToken("operator")
	srv := httptest.NewUnstartedServer(New(h.deps(t)))
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	h.srv = srv

	data := at.Package(t, "1.0")
	pause := 600 * time.Millisecond / time.Duration(len(data)/1024+1)
	r := h.upload(tok, "zk-V1.0-x86.tar.gz", &slowReader{data: data, pause: pause})
	want(t, r, 200, 0)
}
