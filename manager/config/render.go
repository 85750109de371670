package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/properties"
)

// RenderFile renders a config file from its effective entries with a
// node's variables filled in. A properties file is written key=value as
// java.util.Properties reads it (internal/properties), each entry after
// its comment lines; an entry whose key is just "{variable}" with an empty
// value (a line "{zkEnsemble}" in the package's file) stands for the
// variable's value written as lines of its own. A raw file is its RawKey
// entry. Entries that are not Effective are left out. A template that uses
// an unknown variable, or is malformed, is ErrRender naming every such
// entry.
func RenderFile(name, format string, entries []Entry, vars Vars) ([]byte, error) {
	var (
		out      []byte
		problems []string
	)
	for _, it := range entries {
		if !it.Effective {
			continue
		}
		if format == FormatRaw {
			if it.Key != RawKey {
				continue
			}
			v, err := manifest.Expand(it.Value, vars)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", it.Key, err))
				continue
			}
			out = append(out, v...)
			continue
		}
		if vname, ok := variableLine(it); ok {
			v, known := vars[vname]
			if !known || !slices.Contains(manifest.Variables, vname) {
				problems = append(problems, fmt.Sprintf("%s: unknown variable {%s}", it.Key, vname))
				continue
			}
			out = append(out, properties.RenderComment(it.Comment)...)
			if v != "" {
				out = append(out, v...)
				out = append(out, '\n')
			}
			continue
		}
		v, err := manifest.Expand(it.Value, vars)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", it.Key, err))
			continue
		}
		out = append(out, properties.Render([]properties.Entry{{Key: it.Key, Value: v, Comment: it.Comment}})...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s: %s", ErrRender, name, strings.Join(problems, "; "))
	}
	return out, nil
}

// variableLine reports whether e is a line "{variable}" of a properties
// file, and the variable's name.
func variableLine(e Entry) (string, bool) {
	name, ok := strings.CutPrefix(e.Key, "{")
	if !ok || !strings.HasSuffix(name, "}") || e.Value != "" {
		return "", false
	}
	return strings.TrimSuffix(name, "}"), true
}

// Rendered is one config file of a node as it is written there.
type Rendered struct {
	// NodeFileID is the node's file; zero for files rendered without a
	// store (RenderFiles called by tests).
	NodeFileID ids.ID
	Name       string
	// Path is where the agent writes it: relative to the program dir, or
	// absolute in the data dir.
	Path    string
	Content []byte
}

// SHA256 is the hex sha256 of the content.
func (r Rendered) SHA256() string { return Digest(r.Content) }

// Digest is the hex sha256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// FileEntries are a config file to render: its node file (or a layer
// with its target resolved) and its effective entries.
type FileEntries struct {
	File    NodeFile
	Entries []Entry
}

// NodeConfig is a node's rendered configuration: its place in the cluster,
// its variables (which also fill its start command and health check) and
// its files.
type NodeConfig struct {
	Node  Member
	Vars  Vars
	Files []Rendered
}

// RenderFiles renders node n's files in the cluster t: the one rendering
// that deployment, flushes and tests share. peer is the component's peer
// template from its manifest.
func RenderFiles(t Topology, n Member, peer string, files []FileEntries) (NodeConfig, error) {
	vars, err := VarsFor(t, n, peer)
	if err != nil {
		return NodeConfig{}, err
	}
	nc := NodeConfig{Node: n, Vars: vars}
	for _, f := range files {
		b, err := RenderFile(f.File.Name, f.File.Format, f.Entries, vars)
		if err != nil {
			return NodeConfig{}, err
		}
		nc.Files = append(nc.Files, Rendered{NodeFileID: f.File.ID, Name: f.File.Name, Path: f.File.Target, Content: b})
	}
	return nc, nil
}
