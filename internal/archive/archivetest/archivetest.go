// Package archivetest builds tar archives and ADMQ packages for tests,
// including the malformed and hostile ones that archive must refuse.
package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// Entry is one tar entry. The zero Type is a regular file, or a directory
// when Name ends in "/".
type Entry struct {
	Name string
	Type byte
	// Body is a regular file's content; Reader and Size give it instead for
	// content too large to hold in memory.
	Body   string
	Reader io.Reader
	Size   int64
	// Link is the target of a symbolic or hard link.
	Link string
	// Mode defaults to 0644 for files and 0755 for directories.
	Mode int64
}

// File returns a regular file entry.
func File(name, body string) Entry { return Entry{Name: name, Body: body} }

// Dir returns a directory entry.
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir} }

// Symlink returns a symbolic link entry.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target}
}

// Hardlink returns a hard link entry.
func Hardlink(name, target string) Entry { return Entry{Name: name, Type: tar.TypeLink, Link: target} }

// WriteTar writes the entries as a tar stream to w.
func WriteTar(w io.Writer, entries ...Entry) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(1_750_000_000, 0)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode, ModTime: mtime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.Name, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		body := e.Reader
		if h.Typeflag == tar.TypeReg {
			if body == nil {
				body = strings.NewReader(e.Body)
				h.Size = int64(len(e.Body))
			} else {
				h.Size = e.Size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("header %q: %w", e.Name, err)
		}
		if body != nil {
			if _, err := io.Copy(tw, body); err != nil {
				return fmt.Errorf("body %q: %w", e.Name, err)
			}
		}
	}
	return tw.Close()
}

// WriteTarGz writes the entries as a gzip-compressed tar stream to w at
// the given compression level (gzip.NoCompression for fast big archives).
func WriteTarGz(w io.Writer, level int, entries ...Entry) error {
	gz, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	if err := WriteTar(gz, entries...); err != nil {
		return err
	}
	return gz.Close()
}

// Tar returns the entries as a tar archive.
func Tar(tb testing.TB, entries ...Entry) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := WriteTar(&b, entries...); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// TarGz returns the entries as a gzip-compressed tar archive.
func TarGz(tb testing.TB, entries ...Entry) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := WriteTarGz(&b, gzip.BestSpeed, entries...); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// Manifest returns an admq-package.json for a ZooKeeper-like package of
// the given version whose one component reads conf/zoo.cfg.
func Manifest(version string) string {
	return `{
  "name": "zookeeper",
  "version": "` + version + `",
  "mqType": 1,
  "components": {
    "coordinator": {
      "start": ["{programDir}/bin/zkServer.sh", "start-foreground", "{programDir}/conf/zoo.cfg"],
      "env": {"JAVA_OPTS": "-Xmx512m"},
      "configFiles": [{"name": "zoo.cfg", "path": "conf/zoo.cfg", "format": "properties"}],
      "serverPort": 2181,
      "portKey": "clientPort",
      "health": {"tcp": "{managerIp}:{serverPort}"}
    }
  }
}`
}

// PackageEntries are the entries of a good package of the given version:
// the manifest, its config file and its start script, plus extra.
func PackageEntries(version string, extra ...Entry) []Entry {
	return append([]Entry{
		File("admq-package.json", Manifest(version)),
		Dir("conf/"),
		File("conf/zoo.cfg", "tickTime=2000\ndataDir={dataDir}\nclientPort=2181\n"),
		Dir("bin/"),
		{Name: "bin/zkServer.sh", Body: "#!/bin/sh\nexec java \"$@\"\n", Mode: 0o755},
	}, extra...)
}

// Package returns a good package of the given version as a tar.gz, with
// the extra entries appended.
func Package(tb testing.TB, version string, extra ...Entry) []byte {
	tb.Helper()
	return TarGz(tb, PackageEntries(version, extra...)...)
}
