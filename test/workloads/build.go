package workloads

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/pkgname"
)

// Entry is one regular file of a package being built: Data, or Random
// bytes of pseudo-random content (incompressible, cheap to make, never
// held in memory).
type Entry struct {
	Name   string
	Data   []byte
	Random int64
	Mode   int64 // 0: 0644
}

// Build writes the package fileName into dir and returns its path: a .tar,
// or gzip-compressed for .tar.gz and .tgz, holding admq-package.json from
// m (validated first), a directory entry for every parent dir, then the
// entries in order, streamed. The result is checked as the manager's
// upload checks it: the name parses and the archive passes
// archive.Inspect with the manager's limits.
func Build(t testing.TB, dir, fileName string, m manifest.Manifest, entries ...Entry) string {
	t.Helper()
	p, err := BuildFile(dir, fileName, m, entries...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BuildFile is Build for programs that are not tests (test/load): it
// returns what Build fails the test with.
func BuildFile(dir, fileName string, m manifest.Manifest, entries ...Entry) (string, error) {
	n, err := pkgname.Parse(fileName)
	if err != nil {
		return "", fmt.Errorf("package name %s: %w", fileName, err)
	}
	if err := m.Validate(); err != nil {
		return "", fmt.Errorf("%s: invalid manifest: %w", fileName, err)
	}
	var mj bytes.Buffer
	enc := json.NewEncoder(&mj)
	enc.SetEscapeHTML(false) // keep "&&" and ">" of shell commands readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return "", err
	}
	entries = append([]Entry{{Name: manifest.FileName, Data: mj.Bytes()}}, entries...)
	p := filepath.Join(dir, fileName)
	if err := writeTar(p, n.Format() != "tar", entries); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := archive.Inspect(bufio.NewReaderSize(f, 1<<20), n.Format(), archive.Limits{}); err != nil {
		return "", fmt.Errorf("built package %s does not pass the manager's checks: %w", fileName, err)
	}
	return p, nil
}

func writeTar(p string, compress bool, entries []Entry) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var gz *gzip.Writer
	if compress {
		gz, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed) // -race makes compression slow
		w = gz
	}
	tw := tar.NewWriter(w)
	var dirs []string
	for _, e := range entries {
		for d := path.Dir(e.Name); d != "." && d != "/"; d = path.Dir(d) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	slices.Sort(dirs) // parents first
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
	}
	rng := rand.NewChaCha8([32]byte{'a', 'd', 'm', 'q'})
	for _, e := range entries {
		size, src := int64(len(e.Data)), io.Reader(bytes.NewReader(e.Data))
		if e.Random > 0 {
			size, src = e.Random, io.LimitReader(rng, e.Random)
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.Name, Typeflag: tar.TypeReg, Mode: mode, Size: size}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, src); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// UploadBody streams the package file at path as the multipart form that
// POST /package takes (the file in the field "file"). The body reports a
// read error of the file; close it if it is not sent.
func UploadBody(path string) (body io.ReadCloser, contentType string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		defer f.Close()
		part, err := mw.CreateFormFile("file", filepath.Base(path))
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType(), nil
}
