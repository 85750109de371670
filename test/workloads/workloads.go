// Package workloads is test-only support for running real workloads
// (Debian's ZooKeeper and NATS) through ADMQ: it builds admq packages
// (tarball + admq-package.json) from the files Debian installed, renders
// their config files per node the way the manager does (config.RenderFiles),
// runs an in-process tunnel hub with real agent tunnel clients, and talks
// to the servers (ZooKeeper four-letter words and zkCli.sh, the NATS text
// protocol and monitoring endpoints).
//
// It is a normal package so that several test packages can import it; no
// production code may.
package workloads

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/pkgname"
	"github.com/admq/admq-manager/manager/config"
)

// build writes the package fileName into dir (Build), small files first
// so that readers wanting only the manifest and config stop early, and
// checks it further as Load does: the manifest's version matches the
// name and it names only files that are there.
func build(t testing.TB, dir, fileName string, m manifest.Manifest, files []Entry) string {
	t.Helper()
	slices.SortFunc(files, func(a, b Entry) int {
		if len(a.Data) != len(b.Data) {
			return len(a.Data) - len(b.Data)
		}
		return strings.Compare(a.Name, b.Name)
	})
	p := Build(t, dir, fileName, m, files...)
	if _, err := Load(p); err != nil {
		t.Fatalf("built package does not check out: %v", err)
	}
	return p
}

// readFile returns the content of a file, resolving symbolic links.
func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// Package is a built package as the manager and an agent see it.
type Package struct {
	Path     string
	Name     pkgname.Name
	SHA256   string
	Size     int64
	Data     []byte
	Manifest manifest.Manifest
	// Config holds each config file's content by its package path.
	Config map[string][]byte
}

// Load reads a package file and checks it as manager/pkg's Upload does.
func Load(p string) (*Package, error) {
	n, err := pkgname.Parse(filepath.Base(p))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	ins, err := archive.Inspect(bytes.NewReader(data), n.Format(), archive.Limits{})
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", p, err)
	}
	if ins.Manifest == nil {
		return nil, fmt.Errorf("%s: no %s at the root", p, manifest.FileName)
	}
	m, err := manifest.Parse(ins.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if m.Version != n.Version {
		return nil, fmt.Errorf("%s: manifest version %s, file name %s", p, m.Version, n.Version)
	}
	want := map[string]bool{}
	for _, c := range m.Components {
		for _, cf := range c.ConfigFiles {
			if _, ok := ins.Files[cf.Path]; !ok {
				return nil, fmt.Errorf("%s: config file %s is not in the package", p, cf.Path)
			}
			want[cf.Path] = true
		}
		if rest, ok := strings.CutPrefix(c.Start[0], "{programDir}/"); ok {
			if _, ok := ins.Files[rest]; !ok {
				return nil, fmt.Errorf("%s: start program %s is not in the package", p, rest)
			}
		}
	}
	config, err := readTar(data, want)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &Package{Path: p, Name: n, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Data: data, Manifest: m, Config: config}, nil
}

func readTar(data []byte, want map[string]bool) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for len(out) < len(want) {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if name := path.Clean(h.Name); want[name] {
			if out[name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Render renders the component's config files for node n of the cluster
// t as the manager does, through config.Import (each file imported into a
// layer: a properties file per key, a raw file whole, braces that are not
// {variables} escaped) and config.RenderFiles (the rendering the manager's
// Render uses), each file addressed to its target as the agent takes it:
// relative to the program dir, or absolute in the data dir.
func (p *Package) Render(component string, t config.Topology, n config.Member) (config.NodeConfig, error) {
	c, ok := p.Manifest.Components[component]
	if !ok {
		return config.NodeConfig{}, fmt.Errorf("package %s has no component %q", p.Name, component)
	}
	layers, err := config.Import(c.ConfigFiles, p.Config)
	if err != nil {
		return config.NodeConfig{}, fmt.Errorf("package %s: %w", p.Name, err)
	}
	files := make([]config.FileEntries, len(layers))
	for i, l := range layers {
		target, err := config.ResolveTarget(l.File.Target, n.DataDir)
		if err != nil {
			return config.NodeConfig{}, fmt.Errorf("package %s: %w", p.Name, err)
		}
		files[i] = config.FileEntries{File: config.NodeFile{Name: l.File.Name, Path: l.File.Path, Format: l.File.Format, Target: target},
			Entries: l.Entries}
	}
	return config.RenderFiles(t, n, c.Peer, files)
}

// Expand fills the variables of every string of argv.
func Expand(argv []string, vars config.Vars) ([]string, error) {
	out := make([]string, len(argv))
	for i, a := range argv {
		v, err := manifest.Expand(a, vars)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
