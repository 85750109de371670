package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/admq/admq-manager/internal/atomicfile"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/nodedir"
)

// A node's dirs are removed with its cluster, recursively, so the agent
// removes only a dir it can prove it created for that node:
//
//   - when a deploy creates a program or data dir (it did not exist), the
//     agent writes the install marker .admq-node into it, naming the node
//     and the dir, created: true. A program dir that existed empty is
//     replaced by the unpacked package but marked created: false; a data
//     dir that existed is used as it is and gets no marker. A deploy of
//     another node into a dir the agent created hands the marker over to
//     that node.
//   - a removal deletes a dir only when its marker is there, names this
//     node and this path, and says created; or, for a program dir deployed
//     by an agent from before the marker, when it holds the agent's own
//     package marker (.admq-package-sha256) and the agent's spec of the
//     node runs from it. Any other dir is kept and reported, never removed.
//   - whatever the markers say, a dir is kept when it is a system dir or a
//     home dir (internal/nodedir), overlaps the agent's state dir or
//     program dir, is reached through a symbolic link, or holds a mount
//     point, a manager's data dir (its lock file) or another node's dir.
//   - the markers are removed last, so a removal that fails half-way is
//     finished by a retry.

// Names the agent keeps for itself in a node's dirs; no config file may
// be written to a path with one of them as its last element.
const (
	// nodeMarkerName is the install marker in a node's dir.
	nodeMarkerName = ".admq-node"
	// maxMarkerSize bounds the marker file read.
	maxMarkerSize = 4 << 10
)

// reservedNames are the files no config file may replace.
var reservedNames = []string{nodeMarkerName, markerName}

// dirMarker is the content of an install marker.
type dirMarker struct {
	Node    string `json:"node"`
	Dir     string `json:"dir"`
	Created bool   `json:"created"`
}

// KeptDir is a dir a removal left where it was, and why.
type KeptDir struct {
	Path   string
	Reason string
}

// RemoveResult is what a removal did.
type RemoveResult struct {
	// Replayed: the operation had been applied before; this is its result.
	Replayed bool
	// Kept are the dirs asked to be removed that were left in place.
	Kept []KeptDir
}

// Dirs are a node's program and data dirs.
type Dirs struct {
	Program string
	Data    string
}

// protected are the dirs no node dir may overlap, each with what it is.
func (m *Manager) protected() map[string]string {
	p := map[string]string{m.stateDir: "the agent's state dir"}
	if m.exeDir != "" {
		p[m.exeDir] = "the agent's program dir"
	}
	return p
}

// CheckDir says whether the agent lets p be a node's dir (field names it
// in the error): absolute and clean, not a system or home dir, not
// overlapping the agent's own dirs, also with the symbolic links of its
// existing part resolved. The error is an *invalid.Error.
func (m *Manager) CheckDir(field, p string) error {
	if err := checkDir(field, p, false); err != nil {
		return err
	}
	real, err := realPath(p)
	if err != nil {
		return invalid.Field(field, "%q cannot be resolved: %v", p, err)
	}
	for _, q := range []string{p, real} {
		if err := m.dirPolicy(q); err != nil {
			if q != p {
				return invalid.Field(field, "%q leads through a symbolic link to %s: %v", p, real, err)
			}
			return invalid.Field(field, "%v", err)
		}
	}
	return nil
}

// dirPolicy applies internal/nodedir's rules and the agent's protected
// dirs to p.
func (m *Manager) dirPolicy(p string) error {
	if err := nodedir.Check(p); err != nil {
		return err
	}
	if err := nodedir.CheckHomes(p, m.homes()); err != nil {
		return err
	}
	return nodedir.CheckProtected(p, m.protected())
}

// CheckDirs checks both dirs of a node (CheckDir) and that neither
// contains the other.
func (m *Manager) CheckDirs(d Dirs) error {
	if err := m.CheckDir("program_dir", d.Program); err != nil {
		return err
	}
	if err := m.CheckDir("data_dir", d.Data); err != nil {
		return err
	}
	if nodedir.Overlaps(d.Program, d.Data) {
		return invalid.Field("data_dir", "%q and program_dir %q must not contain each other", d.Data, d.Program)
	}
	return nil
}

// WritePath is where the agent writes a file a request names by p for a
// node with dirs d, or the reason it refuses to: p is relative to the
// program dir or absolute inside the program or data dir, does not name
// one of the agent's markers, and does not lead out of its dir through a
// symbolic link; d itself passes CheckDirs. Every write of a file the
// manager asks for goes through it.
func (m *Manager) WritePath(d Dirs, p string) (string, error) {
	if err := m.CheckDirs(d); err != nil {
		return "", err
	}
	return d.writePath(p)
}

// writePath is WritePath for dirs that passed CheckDirs.
func (d Dirs) writePath(p string) (string, error) {
	path, err := d.configPath(p)
	if err != nil {
		return "", err
	}
	if err := d.checkNoEscape(path); err != nil {
		return "", err
	}
	return path, nil
}

// configPath resolves a config file's path (lexically) and checks that it
// stays in the program dir or the data dir and names no marker.
func (d Dirs) configPath(p string) (string, error) {
	if p == "" {
		return "", invalid.Field("config_files", "empty path")
	}
	for _, n := range reservedNames {
		if filepath.Base(p) == n {
			return "", invalid.Field("config_files", "%q: %s is the agent's own file", p, n)
		}
	}
	if !filepath.IsAbs(p) {
		joined := filepath.Join(d.Program, p)
		if !filepath.IsLocal(p) || !within(d.Program, joined) {
			return "", invalid.Field("config_files", "%q leaves the program dir, or is it", p)
		}
		return joined, nil
	}
	if filepath.Clean(p) != p || (!within(d.Program, p) && !within(d.Data, p)) {
		return "", invalid.Field("config_files", "%q: want a clean path inside program_dir or data_dir", p)
	}
	return p, nil
}

// checkNoEscape makes sure that the existing part of a file's parent,
// with symbolic links resolved, is still inside the dir it belongs to (a
// package may hold links).
func (d Dirs) checkNoEscape(p string) error {
	root := d.Program
	if within(d.Data, p) {
		root = d.Data
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the agent will create it: nothing there leads out
	}
	if err != nil {
		return fmt.Errorf("config file %s: %w", p, err)
	}
	dir := filepath.Dir(p)
	for {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			if real != realRoot && !within(realRoot, real) {
				return invalid.Field("config_files", "%q leads out of %s through a symbolic link", p, root)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) || dir == root {
			return fmt.Errorf("config file %s: %w", p, err)
		}
		dir = filepath.Dir(dir)
	}
}

// realPath is p with the symbolic links of its longest existing part
// resolved.
func realPath(p string) (string, error) {
	rest := ""
	for dir := p; ; dir = filepath.Dir(dir) {
		real, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) || dir == "/" {
			return "", err
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// readMarker reads the install marker of dir; ok is false when there is
// none (or it is not a regular file).
func readMarker(dir string) (dirMarker, bool, error) {
	p := filepath.Join(dir, nodeMarkerName)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return dirMarker{}, false, nil
	}
	if err != nil {
		return dirMarker{}, false, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxMarkerSize {
		return dirMarker{}, false, nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return dirMarker{}, false, err
	}
	var mk dirMarker
	if err := json.Unmarshal(data, &mk); err != nil {
		return dirMarker{}, false, nil
	}
	return mk, true, nil
}

func writeMarker(dir string, mk dirMarker) error {
	data, err := json.Marshal(mk)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, nodeMarkerName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("install marker of %s: %w", dir, err)
	}
	return nil
}

// createDataDir makes the node's data dir, marking it as created when
// this call made it; a data dir that exists is used as it is, its marker
// (if it has one) handed to this node.
func createDataDir(name, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	err := os.Mkdir(dir, 0o750)
	if err == nil {
		if err := writeMarker(dir, dirMarker{Node: name, Dir: dir, Created: true}); err != nil {
			_ = os.Remove(dir)
			return err
		}
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	return handOver(name, dir)
}

// handOver rewrites dir's marker, if it has one written for dir, to name
// node name: the node now deployed there owns it. A marker written for
// another path (the dir was copied or moved) is left as it is.
func handOver(name, dir string) error {
	mk, ok, err := readMarker(dir)
	if err != nil || !ok || mk.Dir != dir || mk.Node == name {
		return err
	}
	mk.Node = name
	return writeMarker(dir, mk)
}

// removable says whether the removal of node name may delete dir (its
// program dir when program is true), and if not, why. A dir that does not
// exist is removable (there is nothing to do).
func (m *Manager) removable(name, dir string, program bool, spec *specInfo) (bool, string) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, ""
	}
	if err != nil {
		return false, err.Error()
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return false, "it is a symbolic link"
	}
	if !fi.IsDir() {
		return false, "it is not a directory"
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err.Error()
	}
	for _, q := range []string{dir, real} {
		if err := m.dirPolicy(q); err != nil {
			return false, err.Error()
		}
	}
	mk, ok, err := readMarker(dir)
	switch {
	case err != nil:
		return false, "its install marker cannot be read: " + err.Error()
	case ok && mk.Dir != dir:
		return false, fmt.Sprintf("its install marker was written for %s (the dir was moved or copied)", mk.Dir)
	case ok && mk.Node != name:
		return false, fmt.Sprintf("it belongs to node %s", mk.Node)
	case ok && !mk.Created:
		return false, "it existed before the agent installed the node there"
	case !ok && !(program && legacyProgramDir(dir, spec)):
		return false, "it has no install marker: the agent did not create it, or an agent older than the marker deployed the node (remove it by hand)"
	}
	if reason := m.foreignInside(dir); reason != "" {
		return false, reason
	}
	return true, ""
}

// legacyProgramDir reports whether dir is the program dir of a node that
// an agent from before the install marker deployed: it holds the agent's
// package marker and the agent's spec of the node runs from it.
func legacyProgramDir(dir string, spec *specInfo) bool {
	if spec == nil || (spec.Dir != dir && !within(dir, spec.Dir)) {
		return false
	}
	fi, err := os.Lstat(filepath.Join(dir, markerName))
	return err == nil && fi.Mode().IsRegular()
}

// specInfo is what removable needs of a node's spec.
type specInfo struct{ Dir string }

// foreignInside walks dir, without following links, for what must not be
// removed with it: a mount point, the agent's state or program dir, a
// manager's data dir or another node's dir. It returns why, or "".
func (m *Manager) foreignInside(dir string) string {
	root, err := os.Lstat(dir)
	if err != nil {
		return err.Error()
	}
	dev := devOf(root)
	protected := m.protected()
	var reason string
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			if what, ok := protected[p]; ok {
				reason = fmt.Sprintf("it holds %s %s", what, p)
				return filepath.SkipAll
			}
		}
		switch {
		case e.IsDir():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if devOf(fi) != dev {
				reason = fmt.Sprintf("it holds a mount point, %s", p)
				return filepath.SkipAll
			}
		case e.Name() == nodedir.ManagerLockName:
			reason = fmt.Sprintf("it holds a manager's data dir (%s)", p)
			return filepath.SkipAll
		case e.Name() == nodedir.AgentLockName:
			reason = fmt.Sprintf("it holds an agent's state dir (%s)", p)
			return filepath.SkipAll
		case e.Name() == nodeMarkerName && filepath.Dir(p) != dir:
			reason = fmt.Sprintf("it holds another node's dir, %s", filepath.Dir(p))
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil && reason == "" {
		return "it cannot be checked: " + err.Error()
	}
	return reason
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev) //nolint:unconvert // uint32 on some platforms
	}
	return 0
}

// removeOwned deletes dir, which removable allowed: first everything but
// the markers, then the markers, then the dir, so that a removal that
// fails half-way still finds its proof when it is tried again.
func removeOwned(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == nodeMarkerName || e.Name() == markerName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	for _, n := range []string{markerName, nodeMarkerName} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// passwdHomes reads the home dirs of the host's users.
func passwdHomes() []string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil
	}
	defer f.Close()
	return nodedir.PasswdHomes(io.LimitReader(f, 4<<20))
}

// keptReason joins the reasons of kept dirs for a log line.
func keptReason(k []KeptDir) string {
	var b strings.Builder
	for i, d := range k {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.Path + ": " + d.Reason)
	}
	return b.String()
}
