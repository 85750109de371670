package cluster

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/properties"
	"github.com/admq/admq-manager/manager/pkg"
)

const (
	formatProperties = manifest.FormatProperties
	formatRaw        = manifest.FormatRaw
)

// MaxConfigFileSize caps a config file read out of a package.
const MaxConfigFileSize = 1 << 20

// ZooKeeper's quorum and leader-election ports are derived from a
// coordinator's client port (its serverPort) so that the defaults come out
// as ZooKeeper's (2181 → 2888 and 3888) and two ensembles on one host that
// differ in client port do not clash in the others.
const (
	QuorumPortOffset   = 2888 - 2181
	ElectionPortOffset = 3888 - 2181
)

// importConfig reads the component's config files out of the package file
// at file and turns each into items: one per key of a properties file (its
// comment lines kept), one item "content" for a raw file. Braces that are
// not one of manifest.Variables are escaped ("{{", "}}"), so that only
// the package's own {variables} are filled in at render time. The
// returned files and items have no ids yet.
func importConfig(file string, p pkg.Package, files []manifest.ConfigFile) ([]NewFile, error) {
	if len(files) == 0 {
		return nil, nil
	}
	contents, err := readFiles(file, p.Ext, files)
	if err != nil {
		return nil, fmt.Errorf("read config files from package %s: %w", p.FileName, err)
	}
	var out []NewFile
	for _, cf := range files {
		format := cf.Format
		if format == "" {
			format = formatProperties
		}
		nf := NewFile{File: ConfigFile{Name: cf.Name, Path: cf.Path, Format: format}}
		data := contents[cf.Path]
		if format == formatRaw {
			nf.Items = []ConfigItem{{Key: RawKey, Value: EscapeBraces(string(data)), Effective: true}}
		} else {
			entries, _ := properties.Parse(data) // duplicates: the last one wins, as in Java
			for _, e := range entries {
				nf.Items = append(nf.Items, ConfigItem{Key: e.Key, Value: EscapeBraces(e.Value), Comment: e.Comment, Effective: true})
			}
		}
		out = append(out, nf)
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
		if h.Size > MaxConfigFileSize {
			return nil, fmt.Errorf("%s is %d bytes; config files may have at most %d", name, h.Size, MaxConfigFileSize)
		}
		data, err := io.ReadAll(io.LimitReader(tr, MaxConfigFileSize+1))
		if err != nil {
			return nil, err
		}
		if len(data) > MaxConfigFileSize {
			return nil, fmt.Errorf("%s is larger than %d bytes", name, MaxConfigFileSize)
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
// in manifest.Variables: what config import does to a package's file so
// that literal braces (log patterns, NATS blocks) render as written.
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

// checkTemplate reports whether v is a well-formed template with known
// variables.
func checkTemplate(v string) error {
	_, err := manifest.Refs(v)
	return err
}

// Vars are the values of manifest.Variables for one node.
type Vars map[string]string

// VarsFor returns the variables of node n of cluster c, whose nodes are
// all: {cluster} {node} and {nodeDir} ("<component>-<ordinal>")
// {component} {programDir} {dataDir} {managerIp} {dataIp} (the manager IP
// when the server has none) {serverPort} {myid} (the ordinal); from the
// cluster's coordinators, by ordinal: {zkServers}, "dataIp:serverPort"
// joined by commas, and {zkEnsemble}, one "server.<myid>=dataIp:quorum:election"
// line each, the ports being serverPort+QuorumPortOffset and
// serverPort+ElectionPortOffset; and {peers}: every node of n's component
// in c, n included, by ordinal, each written with peer (the manifest
// component's Peer, filled in with that node's variables) or, when peer is
// empty, as dataIp:serverPort, joined by ", ".
func VarsFor(c Cluster, n Node, all []Node, peer string) (Vars, error) {
	var coords, peers []Node
	for _, m := range all {
		if m.ClusterID != c.ID {
			continue
		}
		if m.Component == Coordinator {
			coords = append(coords, m)
		}
		if m.Component == n.Component {
			peers = append(peers, m)
		}
	}
	byOrdinal := func(a, b Node) int { return a.Ordinal - b.Ordinal }
	slices.SortFunc(coords, byOrdinal)
	slices.SortFunc(peers, byOrdinal)
	var servers, ensemble []string
	for _, m := range coords {
		ip := dataIP(m)
		servers = append(servers, net.JoinHostPort(ip, strconv.Itoa(m.ServerPort)))
		q, e := m.ServerPort+QuorumPortOffset, m.ServerPort+ElectionPortOffset
		if q < 1 || e > 65535 {
			return nil, fmt.Errorf("%w: coordinator %s has client port %d, which leaves no room for its quorum port %d and election port %d",
				ErrRender, m.NodeDir, m.ServerPort, q, e)
		}
		ensemble = append(ensemble, fmt.Sprintf("server.%d=%s:%d", m.Ordinal, net.JoinHostPort(ip, strconv.Itoa(q)), e))
	}
	zkServers, zkEnsemble := strings.Join(servers, ","), strings.Join(ensemble, "\n")
	if peer != "" {
		// The manifest refuses a peer template with {peers}, which would
		// hold the list being made; a stored package is checked again here.
		if refs, err := manifest.Refs(peer); err != nil {
			return nil, fmt.Errorf("%w: peer template %q: %v", ErrRender, peer, err)
		} else if slices.Contains(refs, "peers") {
			return nil, fmt.Errorf("%w: peer template %q: a peer may not use {peers}", ErrRender, peer)
		}
	}
	list := make([]string, 0, len(peers))
	for _, m := range peers {
		if peer == "" {
			list = append(list, net.JoinHostPort(dataIP(m), strconv.Itoa(m.ServerPort)))
			continue
		}
		p, err := manifest.Expand(peer, nodeVars(c, m, zkServers, zkEnsemble))
		if err != nil {
			return nil, fmt.Errorf("%w: peer template %q for %s: %v", ErrRender, peer, m.NodeDir, err)
		}
		list = append(list, p)
	}
	v := nodeVars(c, n, zkServers, zkEnsemble)
	v["peers"] = strings.Join(list, ", ")
	return v, nil
}

// nodeVars are the variables of node n but {peers}.
func nodeVars(c Cluster, n Node, zkServers, zkEnsemble string) Vars {
	return Vars{
		"cluster":    c.Name,
		"node":       n.NodeDir,
		"component":  n.Component,
		"nodeDir":    n.NodeDir,
		"programDir": n.ProgramDir,
		"dataDir":    n.DataDir,
		"managerIp":  n.ManagerIP,
		"dataIp":     dataIP(n),
		"serverPort": strconv.Itoa(n.ServerPort),
		"myid":       strconv.Itoa(n.Ordinal),
		"zkServers":  zkServers,
		"zkEnsemble": zkEnsemble,
	}
}

func dataIP(n Node) string {
	if n.DataIP != "" {
		return n.DataIP
	}
	return n.ManagerIP
}

// Render renders a node's config file from its effective items with the
// node's variables filled in. A properties file is written key=value (see
// internal/properties), each item after its comment lines; an item whose
// key is just "{variable}" with an empty value (a line "{zkEnsemble}" in
// the package's file) stands for the variable's value written as lines
// of its own. A raw file is its "content" item. A template that uses an
// unknown variable, or is malformed, is ErrRender naming every such item.
func Render(file ConfigFile, items []ConfigItem, vars Vars) ([]byte, error) {
	var (
		out      []byte
		problems []string
	)
	for _, it := range items {
		if !it.Effective {
			continue
		}
		if file.Format == formatRaw {
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
		if name, ok := strings.CutPrefix(it.Key, "{"); ok && strings.HasSuffix(name, "}") && it.Value == "" {
			name = strings.TrimSuffix(name, "}")
			v, known := vars[name]
			if !known || !slices.Contains(manifest.Variables, name) {
				problems = append(problems, fmt.Sprintf("%s: unknown variable {%s}", it.Key, name))
				continue
			}
			out = append(out, properties.Render([]properties.Entry{{Comment: it.Comment}})...)
			out = out[:len(out)-2] // drop the empty "=\n" entry, keep the comment
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
		return nil, fmt.Errorf("%w: %s: %s", ErrRender, file.Name, strings.Join(problems, "; "))
	}
	return out, nil
}
