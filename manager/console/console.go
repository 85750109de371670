// Package console serves the web console (管控台): a single-page
// application built from the sources beside this file (Vue, TypeScript,
// `make console`) into dist/, which is committed and embedded here, so a
// Go build needs no Node.js.
//
// Hashed assets under /assets/ are cached for a year as immutable;
// index.html, answered for every client route, is revalidated on each
// load, so a new manager version is picked up at the next page load. Every
// answer carries a Content-Security-Policy that allows scripts, styles,
// images and connections from the manager's own origin only, and no inline
// script.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// CSP is the Content-Security-Policy of every console answer. Element
// Plus positions popups with style attributes, hence style-src-attr
// 'unsafe-inline'; scripts and style sheets come only from the manager.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; " +
	"img-src 'self'; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Cache-Control values.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// file is one embedded file, ready to serve. Its bytes stay in the
// embedded build (the binary's read-only data, which the kernel pages in
// when they are served and may drop again): a copy in the Go heap was
// 1.9 MiB kept for the manager's life, 40 % of a manager's live heap
// before any agent connects, and let the GC leave as much garbage again.
type file struct {
	name  string // in Handler.root
	size  int64
	ctype string
	etag  string
	cache string

	gzOnce sync.Once
	gz     []byte // nil: not worth compressing
}

// Handler serves the console. It is safe for concurrent use.
type Handler struct {
	root  fs.FS
	files map[string]*file // by URL path, "/index.html"
	index *file
}

// New loads the embedded build.
func New() (*Handler, error) { return load(dist) }

func load(fsys fs.FS) (*Handler, error) {
	root, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	h := &Handler{root: root, files: map[string]*file{}}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f := &file{name: p, cache: cacheRevalidate}
		head, sum, err := f.scan(root)
		if err != nil {
			return err
		}
		f.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		if f.ctype = mime.TypeByExtension(path.Ext(p)); f.ctype == "" {
			f.ctype = http.DetectContentType(head)
		}
		if strings.HasPrefix(p, "assets/") {
			f.cache = cacheImmutable // the name carries the content's hash
		}
		h.files["/"+p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: read build: %w", err)
	}
	if h.index = h.files["/index.html"]; h.index == nil {
		return nil, fmt.Errorf("console: the build has no index.html: run make console")
	}
	h.index.ctype = "text/html; charset=utf-8"
	return h, nil
}

// ServeHTTP answers GET and HEAD: a file of the build, or index.html for
// any other path (a client route), except under /assets/, where a missing
// file is 404 rather than a page in place of a script.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	f := h.files[p]
	if f == nil {
		if strings.HasPrefix(p, "/assets/") {
			hd.Set("Cache-Control", "no-store")
			http.Error(w, "no such asset", http.StatusNotFound)
			return
		}
		f = h.index
	}
	h.serve(w, r, f)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, f *file) {
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", f.cache)
	hd.Set("ETag", f.etag)
	hd.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var gz []byte
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		gz = f.gzipped(h.root)
	}
	if gz != nil {
		hd.Set("Content-Encoding", "gzip")
		hd.Set("Content-Length", strconv.Itoa(len(gz)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(gz)
		}
		return
	}
	body, err := h.root.Open(f.name)
	if err != nil { // the embedded build cannot fail to open; a test's may
		http.Error(w, "console file unavailable", http.StatusInternalServerError)
		return
	}
	defer body.Close()
	hd.Set("Content-Length", strconv.FormatInt(f.size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, body)
	}
}

// scan reads the file once, at load: its size, its first 512 bytes (for
// content sniffing) and its SHA-256 (for the ETag).
func (f *file) scan(root fs.FS) (head []byte, sum [sha256.Size]byte, err error) {
	r, err := root.Open(f.name)
	if err != nil {
		return nil, sum, err
	}
	defer r.Close()
	hash := sha256.New()
	head = make([]byte, 512)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, sum, err
	}
	head = head[:n]
	hash.Write(head)
	rest, err := io.Copy(hash, r)
	if err != nil {
		return nil, sum, err
	}
	f.size = int64(n) + rest
	hash.Sum(sum[:0])
	return head, sum, nil
}

// gzipped compresses the file once, on first use; small or incompressible
// files are served as they are (nil), as is a file that cannot be read.
func (f *file) gzipped(root fs.FS) []byte {
	f.gzOnce.Do(func() {
		if f.size < 1024 || !compressible(f.ctype) {
			return
		}
		body, err := fs.ReadFile(root, f.name)
		if err != nil {
			return
		}
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if b.Len() < len(body)*9/10 {
			f.gz = bytes.Clone(b.Bytes()) // not the buffer's spare capacity
		}
	})
	return f.gz
}

func compressible(ctype string) bool {
	for _, p := range []string{"text/", "application/javascript", "text/javascript", "image/svg", "application/json"} {
		if strings.HasPrefix(ctype, p) {
			return true
		}
	}
	return false
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q, found := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !found {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// Size reports the embedded build's size in bytes, raw and gzip-compressed
// as served, for the manager's log and the docs.
func (h *Handler) Size() (raw, gz int) {
	for _, f := range h.files {
		raw += int(f.size)
		if z := f.gzipped(h.root); z != nil {
			gz += len(z)
		} else {
			gz += int(f.size)
		}
	}
	return raw, gz
}
