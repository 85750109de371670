// Package node is the agent's side of deploying and running nodes: a cache
// of packages the manager streams over the tunnel (content-addressed by
// sha256, resumable, verified), the deploy of one node (unpack, dirs,
// config files, supervisor spec, and before the start a check that the
// node's ports are free), commands and status through the supervisor, safe
// removal, and local health checks.
//
// Operations that change something carry an operation id; the Manager
// records the ids of the ones that succeeded, with their result, in a small
// journal under the state dir, so that a manager retrying after a lost
// connection never applies an operation twice.
package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/nodedir"
)

// Errors callers branch on. Bad input is an *invalid.Error.
var (
	// ErrNotFound: no node of that name is installed.
	ErrNotFound = errors.New("no such node")
	// ErrNoSpace: a disk the agent writes to has too little free space:
	// the state dir's for a package transfer, the program dir's for an
	// unpack.
	ErrNoSpace = errors.New("not enough disk space")
	// ErrCorrupt: the bytes received do not have the announced sha256.
	ErrCorrupt = errors.New("package does not match its sha256")
	// ErrBusy: another call is working on the same thing: receiving the
	// same package, or applying config to the same node.
	ErrBusy = errors.New("busy with another operation")
	// ErrConflict: the request cannot be applied to the current state
	// (offset not matching the partial file, program dir holding something
	// else, node running with another package).
	ErrConflict = errors.New("conflicts with the agent's state")
	// ErrNotCached: the package to deploy is not in the agent's cache.
	ErrNotCached = errors.New("package is not in the agent's cache")
)

// Limits.
const (
	// MaxPackageSize bounds one package.
	MaxPackageSize = 4 << 30
	// MaxChunk bounds one piece of a package transfer.
	MaxChunk = 1 << 20
	// MaxLogBytes bounds Logs.
	MaxLogBytes = supervisor.MaxLogTail
	// MaxConfigFiles and MaxConfigSize bound a deploy's config files.
	MaxConfigFiles = 64
	MaxConfigSize  = 4 << 20
	// JournalSize is how many completed operations are remembered.
	JournalSize = 1000
	// configKeep is how many earlier versions of a config file are kept.
	configKeep = 5
	// markerName is the file in a program dir naming the package unpacked there.
	markerName = ".admq-package-sha256"
)

// Manager deploys and runs the agent's nodes.
type Manager struct {
	stateDir string
	dir      string // stateDir/node: journal and specs
	pkgDir   string // stateDir/packages
	// exeDir is the dir of the agent's executable; no node dir may
	// overlap it or the state dir.
	exeDir string
	// homes returns the host's users' home dirs, which no node dir may
	// be; tests replace it.
	homes func() []string
	sup   *supervisor.Supervisor
	log   *slog.Logger

	// mu serializes the operations that change nodes, so that a journal
	// lookup and the work it guards are one step.
	mu      sync.Mutex
	journal *journal

	// busy maps a node to the apply operation working on it, and
	// inflight an apply's operation id to its call; guarded by mu.
	busy     map[string]string
	inflight map[string]*applyCall

	pushMu  sync.Mutex
	pushing map[string]bool

	// freeSpace reports the bytes available to the agent on the disk
	// holding dir; tests replace it.
	freeSpace func(dir string) (uint64, error)
}

// Directories under the agent's state dir that the node manager owns.
const (
	specSubdir    = "node"
	packageSubdir = "packages"
)

// StateSubdirs names the directories under the agent's state dir that the
// node manager keeps: node specs and the operation journal, and the
// package cache.
func StateSubdirs() []string { return []string{specSubdir, packageSubdir} }

// New returns a Manager keeping its state under stateDir and running nodes
// through sup.
func New(stateDir string, sup *supervisor.Supervisor, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("node state dir: %w", err)
	}
	m := &Manager{
		stateDir:  stateDir,
		homes:     passwdHomes,
		dir:       filepath.Join(stateDir, specSubdir),
		pkgDir:    filepath.Join(stateDir, packageSubdir),
		sup:       sup,
		log:       log,
		pushing:   map[string]bool{},
		busy:      map[string]string{},
		inflight:  map[string]*applyCall{},
		freeSpace: diskFree,
	}
	if exe, err := os.Executable(); err == nil {
		// A system dir (/usr/bin) is refused anyway, and an executable
		// in "/" would make every dir overlap it.
		if exe, err = filepath.EvalSymlinks(exe); err == nil && nodedir.Check(filepath.Dir(exe)) == nil {
			m.exeDir = filepath.Dir(exe)
		}
	}
	for _, d := range []string{m.dir, filepath.Join(m.dir, "specs"), m.pkgDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("node state dir: %w", err)
		}
	}
	j, err := openJournal(filepath.Join(m.dir, "journal.json"), JournalSize)
	if err != nil {
		return nil, err
	}
	m.journal = j
	return m, nil
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	opRE   = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	shaRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func checkName(field, name string) error {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return invalid.Field(field, "%q is not a node name ([A-Za-z0-9_.-]{1,64})", name)
	}
	return nil
}

func checkOp(id string) error {
	if !opRE.MatchString(id) {
		return invalid.Field("operation_id", "%q: want 1 to 128 characters of [A-Za-z0-9_.:-]", id)
	}
	return nil
}

func checkSHA(field, sha string) error {
	if !shaRE.MatchString(sha) {
		return invalid.Field(field, "%q is not a sha256 (64 lowercase hex digits)", sha)
	}
	return nil
}

// checkDir requires an absolute, clean path other than "/".
func checkDir(field, p string, optional bool) error {
	if p == "" && optional {
		return nil
	}
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return invalid.Field(field, "%q: want an absolute, clean path other than /", p)
	}
	return nil
}

// within reports whether p is strictly inside root (both clean, absolute).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// specPath is where the node's supervisor spec is kept between a deploy
// and a start.
func (m *Manager) specPath(name string) string {
	return filepath.Join(m.dir, "specs", name+".json")
}

func (m *Manager) saveSpec(spec supervisor.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.specPath(spec.Name), data, 0o600)
}

func (m *Manager) loadSpec(name string) (supervisor.Spec, bool, error) {
	data, err := os.ReadFile(m.specPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return supervisor.Spec{}, false, nil
	}
	if err != nil {
		return supervisor.Spec{}, false, err
	}
	var s supervisor.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return supervisor.Spec{}, false, fmt.Errorf("spec of %s: %w", name, err)
	}
	return s, true, nil
}
