package config

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/properties"
)

// Imported is a config file of a package as a new cluster layer gets it:
// its File without ids, and its entries in file order.
type Imported struct {
	File    File
	Entries []Entry
}

// ImportPackage reads the config files a component names out of the
// package archive at file (ext "tar", "tar.gz" or "tgz") and imports them
// (Import).
func ImportPackage(file, ext string, files []manifest.ConfigFile) ([]Imported, error) {
	if len(files) == 0 {
		return nil, nil
	}
	contents, err := readFiles(file, ext, files)
	if err != nil {
		return nil, fmt.Errorf("read config files from package %s: %w", path.Base(file), err)
	}
	return Import(files, contents)
}

// Import turns each of a component's config files, given its content by
// package path, into a layer: a properties file one entry per key (its
// comment lines kept; a key given twice keeps its last value, as Java
// does), a raw file one entry RawKey holding it all. Braces that are not
// one of manifest.Variables are escaped ("{{", "}}"), so that only the
// package's own {variables} are filled in at render time.
func Import(files []manifest.ConfigFile, contents map[string][]byte) ([]Imported, error) {
	var out []Imported
	for _, cf := range files {
		format := cf.Format
		if format == "" {
			format = FormatProperties
		}
		target := cf.Target
		if target == "" {
			target = cf.Path
		}
		if _, _, err := cf.Destination(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRender, err)
		}
		data, ok := contents[cf.Path]
		if !ok {
			return nil, fmt.Errorf("%s is not a regular file in the package", cf.Path)
		}
		im := Imported{File: File{Name: cf.Name, Path: cf.Path, Format: format, Target: target}}
		if format == FormatRaw {
			im.Entries = []Entry{{Key: RawKey, Value: EscapeBraces(string(data)), Effective: true}}
		} else {
			entries, _ := properties.Parse(data)
			for _, e := range entries {
				im.Entries = append(im.Entries, Entry{Key: e.Key, Value: EscapeBraces(e.Value), Comment: e.Comment, Effective: true})
			}
		}
		out = append(out, im)
	}
	return out, nil
}

// readFiles streams through the package archive and returns the content
// of each wanted file by its manifest path.
func readFiles(file, ext string, files []manifest.ConfigFile) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 64<<10)
	if ext != "tar" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	want := map[string]bool{}
	for _, cf := range files {
		want[cf.Path] = true
	}
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for len(out) < len(want) {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !want[name] || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			continue
		}
		if h.Size > MaxFileSize {
			return nil, fmt.Errorf("%s is %d bytes; config files may have at most %d", name, h.Size, MaxFileSize)
		}
		data, err := io.ReadAll(io.LimitReader(tr, MaxFileSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxFileSize {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxFileSize)
		}
		out[name] = data
	}
	for _, cf := range files {
		if _, ok := out[cf.Path]; !ok {
			return nil, fmt.Errorf("%s is not a regular file in the package", cf.Path)
		}
	}
	return out, nil
}

// EscapeBraces doubles every brace of s except those of a {variable} named
// in manifest.Variables: what import does to a package's file so that
// literal braces (log patterns, NATS blocks) render as written.
func EscapeBraces(s string) string {
	if !strings.ContainsAny(s, "{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			if end := strings.IndexByte(s[i:], '}'); end > 0 && slices.Contains(manifest.Variables, s[i+1:i+end]) {
				b.WriteString(s[i : i+end+1])
				i += end
				continue
			}
			b.WriteString("{{")
		case '}':
			b.WriteString("}}")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ResolveTarget is where a file whose layer target is target is written on
// a node with those dirs, as the agent takes it: relative to the program
// dir, or absolute in the data dir.
func ResolveTarget(target, dataDir string) (string, error) {
	dir, rel, err := manifest.ConfigFile{Name: path.Base(target), Path: "x", Target: target}.Destination()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrRender, err)
	}
	if dir == manifest.DirData {
		return path.Join(dataDir, rel), nil
	}
	return rel, nil
}
