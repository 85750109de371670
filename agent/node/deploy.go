package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/internal/invalid"
)

// DeployRequest installs one node.
type DeployRequest struct {
	OperationID   string
	Name          string
	PackageSHA256 string
	PackageFormat string // archive.FormatTarGz or archive.FormatTar
	ProgramDir    string
	DataDir       string
	ConfigFiles   []ConfigFile
	Argv          []string
	Env           []string
	WorkDir       string // empty: ProgramDir
	LogDir        string // empty: DataDir/logs
	StopGrace     time.Duration
	Start         bool
	// FreeAddrs are TCP "ip:port" addresses (an empty ip: every address)
	// that must be free when the node is started; see checkFree. A node
	// the supervisor runs already is not checked: it holds them itself.
	FreeAddrs []string
}

// Status is a node's state. Desired is empty for a node that is installed
// but was never started.
type Status = supervisor.State

// DeployResult is what a deploy did.
type DeployResult struct {
	Unpacked bool
	Status   Status
	// Replayed: the operation had been applied before; this is its result.
	Replayed bool
	// Started: the node was not running and the deploy started it.
	Started bool
	// Restarted: the node was running and the deploy restarted it, because
	// its package, a config file or its command had changed. A deploy that
	// changes none of them leaves a running node alone (Started and
	// Restarted both false).
	Restarted bool
}

func (r DeployRequest) validate() error {
	if err := checkOp(r.OperationID); err != nil {
		return err
	}
	if err := checkName("name", r.Name); err != nil {
		return err
	}
	if err := checkSHA("package_sha256", r.PackageSHA256); err != nil {
		return err
	}
	if r.PackageFormat != archive.FormatTarGz && r.PackageFormat != archive.FormatTar {
		return invalid.Field("package_format", "%q: want tar.gz or tar", r.PackageFormat)
	}
	if err := checkDir("program_dir", r.ProgramDir, false); err != nil {
		return err
	}
	if err := checkDir("data_dir", r.DataDir, false); err != nil {
		return err
	}
	if within(r.ProgramDir, r.DataDir) || within(r.DataDir, r.ProgramDir) || r.ProgramDir == r.DataDir {
		return invalid.Field("data_dir", "%q and program_dir %q must not contain each other", r.DataDir, r.ProgramDir)
	}
	if err := checkDir("work_dir", r.WorkDir, true); err != nil {
		return err
	}
	if err := checkDir("log_dir", r.LogDir, true); err != nil {
		return err
	}
	if r.LogDir != "" && r.LogDir != r.DataDir && !within(r.DataDir, r.LogDir) && !within(r.ProgramDir, r.LogDir) {
		return invalid.Field("log_dir", "%q: want the data dir %s or a dir inside it or the program dir", r.LogDir, r.DataDir)
	}
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return invalid.Field("argv", "empty command")
	}
	for _, a := range r.Argv {
		if strings.ContainsRune(a, 0) {
			return invalid.Field("argv", "argument holds a NUL byte")
		}
	}
	for _, e := range r.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsRune(e, 0) {
			return invalid.Field("env", "%q: want KEY=value", e)
		}
	}
	if r.StopGrace < 0 || r.StopGrace > time.Hour {
		return invalid.Field("stop_grace_ms", "%v: want 0 to 1h", r.StopGrace)
	}
	if err := r.dirs().checkFiles(r.ConfigFiles); err != nil {
		return err
	}
	if len(r.FreeAddrs) > MaxFreeAddrs {
		return invalid.Field("free_addrs", "%d addresses: at most %d", len(r.FreeAddrs), MaxFreeAddrs)
	}
	for _, a := range r.FreeAddrs {
		if err := checkFreeAddr(a); err != nil {
			return err
		}
	}
	return nil
}

func (r DeployRequest) dirs() Dirs { return Dirs{Program: r.ProgramDir, Data: r.DataDir} }

// Deploy installs (and, if asked, starts) one node. See the package doc
// for the operation id.
func (m *Manager) Deploy(ctx context.Context, r DeployRequest) (DeployResult, error) {
	if err := r.validate(); err != nil {
		return DeployResult{}, err
	}
	if err := m.CheckDirs(r.dirs()); err != nil {
		return DeployResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var res DeployResult
	if ok, err := m.journal.lookup(r.OperationID, "deploy", &res); err != nil || ok {
		res.Replayed = ok
		return res, err
	}
	if err := m.busyErr(r.Name); err != nil {
		return res, err
	}
	pkg := m.PackagePath(r.PackageSHA256)
	if _, err := os.Stat(pkg); err != nil {
		return res, fmt.Errorf("%w: %s", ErrNotCached, r.PackageSHA256)
	}
	// Before anything is written: the command must be the package's, and
	// every config file must stay in the node's dirs as they are now (they
	// are checked again once the package is unpacked, for its links).
	mf, err := m.packageManifest(r.PackageSHA256, r.PackageFormat)
	if err != nil {
		return res, err
	}
	if err := CheckDeclared(mf, r); err != nil {
		return res, err
	}
	for _, f := range r.ConfigFiles {
		if _, err := r.dirs().writePath(f.Path); err != nil {
			return res, err
		}
	}
	unpacked, err := m.install(ctx, r, pkg)
	if err != nil {
		return res, err
	}
	res.Unpacked = unpacked
	logDir := r.LogDir
	if logDir == "" {
		logDir = filepath.Join(r.DataDir, "logs")
	}
	if err := createDataDir(r.Name, r.DataDir); err != nil {
		return res, fmt.Errorf("deploy %s: data dir: %w", r.Name, err)
	}
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		return res, fmt.Errorf("deploy %s: %w", r.Name, err)
	}
	writes, err := r.dirs().plan(r.Name, r.ConfigFiles)
	if err != nil {
		return res, err
	}
	changed := make([]string, len(writes))
	for i, w := range writes {
		changed[i] = w.path
	}
	st, serr := m.sup.Status(r.Name)
	running := serr == nil && st.Running
	pending, err := m.restartPending(r.Name)
	if err != nil {
		return res, fmt.Errorf("deploy %s: %w", r.Name, err)
	}
	if running && (unpacked || len(changed) > 0) && !pending {
		// Noted before the files change, so that a deploy that fails
		// (or an agent that dies) between writing them and restarting
		// the node does not leave it running the old config while a retry
		// finds nothing changed.
		if err := m.markRestart(r.Name); err != nil {
			return res, fmt.Errorf("deploy %s: %w", r.Name, err)
		}
	}
	if _, err := writeFiles(r.Name, writes); err != nil {
		return res, fmt.Errorf("deploy %s: %w", r.Name, err)
	}
	workDir := r.WorkDir
	if workDir == "" {
		workDir = r.ProgramDir
	}
	spec := supervisor.Spec{
		Name: r.Name, Argv: r.Argv, Env: r.Env, Dir: workDir, LogDir: logDir, StopGrace: r.StopGrace,
	}
	if err := m.saveSpec(spec); err != nil {
		return res, fmt.Errorf("deploy %s: %w", r.Name, err)
	}
	if r.Start {
		// Last thing before the start, so that the node is installed (its
		// log can be asked for) but no process runs that would die on a
		// bind error, or be mistaken for healthy by a TCP check that
		// reaches the other process.
		if !running {
			if err := checkFree(r.FreeAddrs); err != nil {
				m.log.Warn("deploy: node not started: an address it listens on is not free",
					"node", r.Name, "operation", r.OperationID, "err", err)
				return res, err
			}
		}
		// A running node is restarted when its package or config changed
		// (now or in an earlier deploy that did not get to restart it),
		// or when its command did (Start refuses another spec); else
		// Start leaves it alone.
		restart := running && (unpacked || len(changed) > 0 || pending)
		specChanged := false
		if !restart {
			err = m.sup.Start(ctx, spec)
			specChanged = errors.Is(err, supervisor.ErrSpecChanged)
			restart = specChanged
		}
		if restart {
			m.log.Info("deploy: restarting the node to apply its changes",
				"node", r.Name, "operation", r.OperationID, "changed_files", changed,
				"unpacked", unpacked, "command_changed", specChanged, "pending_from_earlier_deploy", pending)
			if err = m.sup.Stop(ctx, r.Name); err == nil {
				err = m.sup.Start(ctx, spec)
			}
		}
		if err != nil {
			return res, fmt.Errorf("deploy %s: %w", r.Name, err)
		}
		if err := m.clearRestart(r.Name); err != nil {
			// The node runs what was deployed; a mark left behind costs
			// one needless restart at the next deploy.
			m.log.Warn("deploy: pending restart not cleared", "node", r.Name, "err", err)
		}
		res.Started, res.Restarted = !running, restart
	}
	if res.Status, err = m.status(r.Name); err != nil {
		return res, err
	}
	if err := m.journal.record(r.OperationID, "deploy", res); err != nil {
		return res, err
	}
	return res, nil
}

// restartPath is the file that says that the node's package or config
// changed while it ran, and it was not restarted since. It sits beside the
// node's spec; List ignores it (no .json suffix).
func (m *Manager) restartPath(name string) string {
	return filepath.Join(m.dir, "specs", name+".restart")
}

func (m *Manager) markRestart(name string) error {
	if err := atomicfile.WriteFile(m.restartPath(name), nil, 0o600); err != nil {
		return fmt.Errorf("note pending restart: %w", err)
	}
	return nil
}

func (m *Manager) restartPending(name string) (bool, error) {
	_, err := os.Lstat(m.restartPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pending restart: %w", err)
	}
	return true, nil
}

func (m *Manager) clearRestart(name string) error {
	if err := os.Remove(m.restartPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clear pending restart: %w", err)
	}
	return nil
}

// install unpacks the package into the program dir unless the dir holds it
// already; it reports whether it unpacked.
func (m *Manager) install(ctx context.Context, r DeployRequest, pkg string) (bool, error) {
	marker := filepath.Join(r.ProgramDir, markerName)
	have, err := os.ReadFile(marker)
	if err == nil && strings.TrimSpace(string(have)) == r.PackageSHA256 {
		return false, m.claimProgramDir(r.Name, r.ProgramDir)
	}
	// created: whether the program dir counts as the agent's own (see
	// dirs.go): it is, unless it existed, empty, before the agent unpacked
	// into it, or replaces one that was not.
	replace, created := false, true
	if _, serr := os.Lstat(r.ProgramDir); serr == nil {
		switch {
		case err == nil: // another package: replace it, if the node is down
			if st, serr := m.sup.Status(r.Name); serr == nil && st.Running {
				return false, fmt.Errorf("%w: %s runs from %s, which holds another package; stop it first", ErrConflict, r.Name, r.ProgramDir)
			}
			replace = true
			if created, err = m.programDirCreated(r.Name, r.ProgramDir); err != nil {
				return false, err
			}
		case isEmptyDir(r.ProgramDir):
			if err := os.Remove(r.ProgramDir); err != nil {
				return false, err
			}
			created = false
		default:
			return false, fmt.Errorf("%w: program dir %s exists and was not installed by the agent", ErrConflict, r.ProgramDir)
		}
	}
	if err := os.MkdirAll(filepath.Dir(r.ProgramDir), 0o755); err != nil {
		return false, err
	}
	f, err := os.Open(pkg)
	if err != nil {
		return false, err
	}
	defer f.Close()
	dest := r.ProgramDir
	if replace {
		dest = r.ProgramDir + ".admq-new"
		_ = os.RemoveAll(dest)
	}
	if err := archive.Extract(ctx, f, r.PackageFormat, dest, archive.Limits{}); err != nil {
		if errors.Is(err, archive.ErrUnsafe) || errors.Is(err, archive.ErrFormat) || errors.Is(err, archive.ErrLimit) {
			return false, invalid.Field("package_sha256", "package %s: %v", r.PackageSHA256, err)
		}
		if errors.Is(err, syscall.ENOSPC) {
			// The program dir's disk, not the state dir's; the manager
			// tells it apart from other failures by ErrNoSpace.
			return false, fmt.Errorf("%w: unpack %s into %s: %w", ErrNoSpace, r.PackageSHA256, r.ProgramDir, err)
		}
		return false, fmt.Errorf("unpack %s: %w", r.PackageSHA256, err)
	}
	// dest now holds a complete unpack that no marker vouches for yet. If
	// anything below fails (the disk filling up just as the marker is
	// written, say), remove it: left there, the next deploy would find a
	// program dir "not installed by the agent" and refuse it until someone
	// removed it by hand.
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(dest)
		}
	}()
	if err := atomicfile.WriteFile(filepath.Join(dest, markerName), []byte(r.PackageSHA256+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("unpack %s: mark %s: %w", r.PackageSHA256, dest, err)
	}
	if err := writeMarker(dest, dirMarker{Node: r.Name, Dir: r.ProgramDir, Created: created}); err != nil {
		return false, fmt.Errorf("unpack %s: mark %s: %w", r.PackageSHA256, dest, err)
	}
	if replace {
		old := r.ProgramDir + ".admq-old"
		_ = os.RemoveAll(old)
		if err := os.Rename(r.ProgramDir, old); err != nil {
			return false, err
		}
		if err := os.Rename(dest, r.ProgramDir); err != nil {
			_ = os.Rename(old, r.ProgramDir)
			return false, err
		}
		_ = os.RemoveAll(old)
	}
	done = true
	return true, nil
}

// claimProgramDir is for a deploy that finds its package in the program
// dir already: the dir's install marker goes to this node, and a dir that
// an agent from before the marker installed gets one when the agent can
// prove it made it (programDirCreated).
func (m *Manager) claimProgramDir(name, dir string) error {
	_, ok, err := readMarker(dir)
	if err != nil {
		return err
	}
	if ok {
		return handOver(name, dir)
	}
	created, err := m.programDirCreated(name, dir)
	if err != nil || !created {
		return err
	}
	return writeMarker(dir, dirMarker{Node: name, Dir: dir, Created: true})
}

// programDirCreated reports whether the program dir a deploy replaces
// counts as the agent's own: its install marker says so, or (deployed by
// an agent from before the marker) the agent's spec of the node runs from
// it.
func (m *Manager) programDirCreated(name, dir string) (bool, error) {
	mk, ok, err := readMarker(dir)
	if err != nil {
		return false, err
	}
	if ok {
		return mk.Created && mk.Dir == dir, nil
	}
	spec, have, err := m.loadSpec(name)
	if err != nil {
		return false, err
	}
	return have && legacyProgramDir(dir, &specInfo{Dir: spec.Dir}), nil
}

func isEmptyDir(p string) bool {
	ents, err := os.ReadDir(p)
	return err == nil && len(ents) == 0
}

// status is the node's state; a node that was deployed but never started
// has only its name.
func (m *Manager) status(name string) (Status, error) {
	st, err := m.sup.Status(name)
	if errors.Is(err, supervisor.ErrNotFound) {
		if _, ok, lerr := m.loadSpec(name); lerr != nil {
			return Status{}, lerr
		} else if ok {
			return Status{Name: name}, nil
		}
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return st, err
}

// Command is what NodeCommand does.
type Command int

// Commands.
const (
	CommandStart Command = iota + 1
	CommandStop
	CommandRestart
)

func (c Command) String() string {
	switch c {
	case CommandStart:
		return "start"
	case CommandStop:
		return "stop"
	case CommandRestart:
		return "restart"
	}
	return fmt.Sprintf("command(%d)", int(c))
}

// Command starts, stops or restarts a node; it returns the node's state
// after the command and whether that is a recorded result.
func (m *Manager) Command(ctx context.Context, opID, name string, cmd Command) (Status, bool, error) {
	if err := checkOp(opID); err != nil {
		return Status{}, false, err
	}
	if err := checkName("name", name); err != nil {
		return Status{}, false, err
	}
	if cmd < CommandStart || cmd > CommandRestart {
		return Status{}, false, invalid.Field("command", "want START, STOP or RESTART")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var st Status
	if ok, err := m.journal.lookup(opID, "command", &st); err != nil || ok {
		return st, ok, err
	}
	if err := m.busyErr(name); err != nil {
		return st, false, err
	}
	spec, haveSpec, err := m.loadSpec(name)
	if err != nil {
		return st, false, err
	}
	_, serr := m.sup.Status(name)
	registered := serr == nil
	if !registered && !haveSpec {
		return st, false, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	switch {
	case cmd == CommandStop && registered:
		err = m.sup.Stop(ctx, name)
	case cmd == CommandStop:
		// installed but never started: nothing runs
	case cmd == CommandStart && haveSpec:
		err = m.sup.Start(ctx, spec)
	case cmd == CommandRestart && registered:
		err = m.sup.Restart(ctx, name)
	case cmd == CommandRestart:
		err = m.sup.Start(ctx, spec)
	default: // start, registered, no spec kept (deployed by an older agent)
		if cur, _ := m.sup.Status(name); !cur.Running {
			err = m.sup.Restart(ctx, name)
		}
	}
	if err != nil {
		return st, false, fmt.Errorf("%s %s: %w", cmd, name, err)
	}
	if st, err = m.status(name); err != nil {
		return st, false, err
	}
	return st, false, m.journal.record(opID, "command", st)
}

// List returns the state of the named nodes (all when names is empty);
// unknown names are left out.
func (m *Manager) List(names []string) ([]Status, error) {
	for _, n := range names {
		if err := checkName("names", n); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		all := m.sup.List()
		seen := map[string]bool{}
		for _, s := range all {
			seen[s.Name] = true
		}
		ents, _ := os.ReadDir(filepath.Join(m.dir, "specs"))
		for _, e := range ents {
			if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && !seen[n] && nameRE.MatchString(n) {
				all = append(all, Status{Name: n})
			}
		}
		return all, nil
	}
	var out []Status
	for _, n := range names {
		st, err := m.status(n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Logs returns the end of the node's current log, at most maxBytes (capped
// at MaxLogBytes).
func (m *Manager) Logs(name string, maxBytes int) ([]byte, error) {
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	if maxBytes < 0 {
		return nil, invalid.Field("max_bytes", "%d: want 0 to %d", maxBytes, MaxLogBytes)
	}
	b, err := m.sup.LogTail(name, min(maxBytes, MaxLogBytes))
	if errors.Is(err, supervisor.ErrNotFound) {
		if _, ok, _ := m.loadSpec(name); ok {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return b, err
}

// RemoveRequest removes one node.
type RemoveRequest struct {
	OperationID  string
	Name         string
	RemoveDirs   bool
	ProgramDir   string
	DataDir      string
	AllowedRoots []string
}

// Remove stops and forgets a node, and with RemoveDirs deletes those of
// its dirs the agent created for it (see dirs.go); the others are kept
// and listed in the result. Each dir must lie strictly inside one of
// AllowedRoots, symbolic links resolved, or nothing is done. Removing a
// node that is not installed is not an error.
func (m *Manager) Remove(ctx context.Context, r RemoveRequest) (RemoveResult, error) {
	var res RemoveResult
	if err := checkOp(r.OperationID); err != nil {
		return res, err
	}
	if err := checkName("name", r.Name); err != nil {
		return res, err
	}
	type dir struct {
		path    string
		program bool
	}
	var dirs []dir
	if r.RemoveDirs {
		if len(r.AllowedRoots) == 0 {
			return res, invalid.Field("allowed_roots", "required to remove dirs")
		}
		for _, root := range r.AllowedRoots {
			if err := checkDir("allowed_roots", root, false); err != nil {
				return res, err
			}
		}
		for _, d := range []struct {
			field, path string
			program     bool
		}{{"program_dir", r.ProgramDir, true}, {"data_dir", r.DataDir, false}} {
			if d.path == "" {
				continue
			}
			if err := checkDir(d.field, d.path, false); err != nil {
				return res, err
			}
			if err := insideRoots(d.field, d.path, r.AllowedRoots); err != nil {
				return res, err
			}
			dirs = append(dirs, dir{d.path, d.program})
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok, err := m.journal.lookup(r.OperationID, "remove", &res); err != nil || ok {
		res.Replayed = ok
		return res, err
	}
	if err := m.busyErr(r.Name); err != nil {
		return res, err
	}
	// Decided before anything changes: the node's spec is part of the
	// proof for a program dir deployed before the install marker.
	var spec *specInfo
	if s, ok, err := m.loadSpec(r.Name); err != nil {
		return res, err
	} else if ok {
		spec = &specInfo{Dir: s.Dir}
	}
	var remove []string
	for _, d := range dirs {
		if ok, reason := m.removable(r.Name, d.path, d.program, spec); ok {
			remove = append(remove, d.path)
		} else {
			res.Kept = append(res.Kept, KeptDir{Path: d.path, Reason: reason})
		}
	}
	if len(res.Kept) > 0 {
		m.log.Warn("remove: dirs kept", "node", r.Name, "operation", r.OperationID, "kept", keptReason(res.Kept))
	}
	if err := m.sup.Remove(ctx, r.Name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
		return res, err
	}
	for _, d := range remove {
		if err := removeOwned(d); err != nil {
			return res, fmt.Errorf("remove %s: %w", r.Name, err)
		}
	}
	for _, p := range []string{m.specPath(r.Name), m.restartPath(r.Name), m.applyPath(r.Name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, err
		}
	}
	return res, m.journal.record(r.OperationID, "remove", res)
}

// insideRoots checks that p lies strictly inside one of roots, both as
// written and with the symbolic links of p's parent and of the root
// resolved.
func insideRoots(field, p string, roots []string) error {
	for _, root := range roots {
		if !within(root, p) {
			continue
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		parent, err := filepath.EvalSymlinks(filepath.Dir(p))
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing there to remove
		}
		if err != nil {
			continue
		}
		if within(realRoot, filepath.Join(parent, filepath.Base(p))) {
			return nil
		}
	}
	return invalid.Field(field, "%q is not strictly inside an allowed root (%s)", p, strings.Join(roots, ", "))
}
