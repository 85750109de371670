package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func testHandler(t *testing.T) *Handler {
	t.Helper()
	js := "console.log(1);" + strings.Repeat("const a = 1;\n", 200)
	h, err := load(fstest.MapFS{
		"dist/index.html":           {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc.js"></script>`)},
		"dist/favicon.svg":          {Data: []byte(`<svg/>`)},
		"dist/assets/index-abc.js":  {Data: []byte(js)},
		"dist/assets/index-def.css": {Data: []byte(`body{}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestServing(t *testing.T) {
	h := testHandler(t)
	cases := []struct {
		name, method, path  string
		status              int
		ctype, cache, body0 string
	}{
		{"root is index.html", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"a client route is index.html", "GET", "/clusters/1995325829847502849", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"a dotted client route too", "GET", "/servers/a.b", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"hashed asset is immutable", "GET", "/assets/index-abc.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "console.log(1)"},
		{"css", "GET", "/assets/index-def.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body{}"},
		{"unhashed root file is revalidated", "GET", "/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg/>"},
		{"missing asset is 404, not the page", "GET", "/assets/gone-123.js", 404, "text/plain; charset=utf-8", "no-store", "no such asset"},
		{"dot segments stay inside", "GET", "/assets/../../../etc/passwd", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"HEAD has headers, no body", "HEAD", "/", 200, "text/html; charset=utf-8", "no-cache", ""},
		{"POST is refused", "POST", "/", 405, "text/plain; charset=utf-8", "", "method not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, h, tc.method, tc.path, nil)
			if w.Code != tc.status {
				t.Fatalf("HTTP %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := w.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if !strings.HasPrefix(w.Body.String(), tc.body0) || (tc.body0 == "" && w.Body.Len() != 0) {
				t.Errorf("body %.60q, want it to start with %q", w.Body.String(), tc.body0)
			}
			if got := w.Header().Get("Content-Security-Policy"); got != CSP {
				t.Errorf("CSP %q", got)
			}
			if tc.method == "GET" && tc.status == http.StatusOK && w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %s with a body of %d bytes", w.Header().Get("Content-Length"), w.Body.Len())
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

func TestCSPForbidsInlineScriptsAndForeignOrigins(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(CSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	if directives["default-src"] != "'none'" || directives["script-src"] != "'self'" || directives["connect-src"] != "'self'" {
		t.Errorf("CSP %q: want default-src 'none', script-src and connect-src 'self'", CSP)
	}
	for name, v := range directives {
		if name != "style-src-attr" && strings.Contains(v, "unsafe") {
			t.Errorf("%s allows %s", name, v)
		}
		if strings.Contains(v, "http") || strings.Contains(v, "*") || strings.Contains(v, "data:") {
			t.Errorf("%s allows a foreign origin: %s", name, v)
		}
	}
}

func TestGzipAndETag(t *testing.T) {
	h := testHandler(t)
	w := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.HasPrefix(string(plain), "console.log(1);") {
		t.Errorf("gunzipped body %.40q", plain)
	}
	if w := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
	if w := get(t, h, "GET", "/assets/index-def.css", map[string]string{"Accept-Encoding": "gzip"}); w.Header().Get("Content-Encoding") != "" {
		t.Error("a 6-byte file was compressed")
	}
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if w := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match with the ETag: HTTP %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}
}

// TestEmbeddedBuild checks the committed build: an index.html that loads
// only same-origin module scripts and no inline script.
func TestEmbeddedBuild(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	idx := get(t, h, "GET", "/", nil).Body.String()
	if !strings.Contains(idx, `<script type="module" crossorigin src="/assets/`) {
		t.Errorf("index.html loads no module from /assets/:\n%s", idx)
	}
	if strings.Count(idx, "<script") != strings.Count(idx, `<script type="module" crossorigin src="/assets/`) {
		t.Errorf("index.html has an inline or foreign script:\n%s", idx)
	}
	raw, gz := h.Size()
	t.Logf("figure: embedded console %d bytes, %d bytes gzip-compressed as served", raw, gz)
}
