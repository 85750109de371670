// Package service makes admq-agent a system service: it installs, controls
// and removes the service through github.com/kardianos/service (systemd, or
// System V init and the others it knows where systemd is absent), runs the
// agent under the service manager, renders the systemd unit that the
// install command and the admq-agent package share, and keeps the
// join-token file that hands a token to the service without putting it on a
// command line.
package service

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	kservice "github.com/kardianos/service"

	"github.com/admq/admq-manager/agent"
	"github.com/admq/admq-manager/agent/identity"
	"github.com/admq/admq-manager/agent/node"
	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/dirlock"
	"github.com/admq/admq-manager/internal/joinstring"
	"github.com/admq/admq-manager/internal/nodedir"
)

// DefaultName is the service's name unless told otherwise.
const DefaultName = "admq-agent"

// Errors callers branch on.
var (
	ErrAlreadyInstalled = errors.New("already installed; uninstall first")
	ErrNotInstalled     = errors.New("not installed")
	ErrNotRoot          = errors.New("must run as root")
)

// Config says what Install installs.
type Config struct {
	// Name is the service's name (default DefaultName).
	Name string
	// Agent is what `admq-agent run` gets. Its JoinToken (with the CA pin
	// folded in) goes to the state dir's join-token file, never onto the
	// service's command line.
	Agent agent.Config
	// Executable is the admq-agent binary the service runs (default: the
	// running one).
	Executable string
}

// Arguments is the service's command line after the executable. The state
// dir must be absolute: the service does not start in the caller's dir.
func (c Config) Arguments() []string {
	args := []string{"run", "--manager", c.Agent.ManagerAddr, "--state-dir", c.Agent.StateDir}
	if c.Agent.AdvertiseIP != "" {
		args = append(args, "--advertise-ip", c.Agent.AdvertiseIP)
	}
	return append(args, "--log-format", "json", "--service-name", c.Name)
}

// Installed says where Install put the service.
type Installed struct {
	// Platform is the service manager kardianos/service chose, such as
	// "linux-systemd" or "unix-systemv".
	Platform string
	// Path is the unit file or init script.
	Path string
	// TokenFile is the join-token file written, or "" when the agent was
	// already enrolled.
	TokenFile string
}

// Install checks c as `admq-agent run` would, creates the state dir (0700),
// writes the join token there unless the agent is already enrolled, and
// installs the service without starting it. A service of the same name
// that already exists is left alone (ErrAlreadyInstalled); any other
// failure undoes what Install did.
func Install(c Config) (Installed, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if err := validName(c.Name); err != nil {
		return Installed{}, err
	}
	token, pin, err := c.Agent.Validate()
	if err != nil {
		return Installed{}, err
	}
	if c.Agent.StateDir, err = filepath.Abs(c.Agent.StateDir); err != nil {
		return Installed{}, fmt.Errorf("state dir: %w", err)
	}
	enrolled, err := Enrolled(c.Agent.StateDir)
	if err != nil {
		return Installed{}, err
	}
	if !enrolled {
		switch {
		case token == "":
			return Installed{}, fmt.Errorf("--token is required: the agent in %s is not enrolled", c.Agent.StateDir)
		case pin == "":
			return Installed{}, errors.New("the join token carries no CA pin: pass --ca-cert-hash sha256:<hex> or the whole token the manager printed")
		}
	}
	if c.Executable == "" {
		if c.Executable, err = os.Executable(); err != nil {
			return Installed{}, fmt.Errorf("find this executable: %w", err)
		}
	}
	if c.Executable, err = filepath.Abs(c.Executable); err != nil {
		return Installed{}, err
	}
	if fi, err := os.Stat(c.Executable); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return Installed{}, fmt.Errorf("executable %s: not an executable file", c.Executable)
	}
	if os.Geteuid() != 0 {
		return Installed{}, fmt.Errorf("install: %w", ErrNotRoot)
	}

	unit, err := SystemdUnit(Unit{Name: c.Name, Executable: c.Executable, Arguments: c.Arguments()})
	if err != nil {
		return Installed{}, err
	}
	s, err := kservice.New(nopProgram{}, &kservice.Config{
		Name:        c.Name,
		DisplayName: c.Name,
		Description: description(c.Name),
		Executable:  c.Executable,
		Arguments:   c.Arguments(),
		Option:      kservice.KeyValue{"SystemdScript": unit},
	})
	if err != nil {
		return Installed{}, err
	}
	in := Installed{Platform: s.Platform(), Path: ownPath(s.Platform(), c.Name)}
	if path := existing(s.Platform(), c.Name); path != "" {
		return Installed{}, fmt.Errorf("service %s is %w (%s)", c.Name, ErrAlreadyInstalled, path)
	}
	if in.Path == "" { // a service manager whose files we do not know: ask it
		if _, err := s.Status(); !errors.Is(err, kservice.ErrNotInstalled) {
			return Installed{}, fmt.Errorf("service %s is %w", c.Name, ErrAlreadyInstalled)
		}
	}

	_, statErr := os.Stat(c.Agent.StateDir)
	if err := os.MkdirAll(c.Agent.StateDir, 0o700); err != nil {
		return Installed{}, fmt.Errorf("state dir: %w", err)
	}
	undo := func() {
		if in.TokenFile != "" {
			os.Remove(in.TokenFile)
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			os.Remove(c.Agent.StateDir) // ours, and empty again
		}
	}
	if !enrolled {
		if err := WriteJoinToken(c.Agent.StateDir, joinstring.Format(token, pin)); err != nil {
			undo()
			return Installed{}, err
		}
		in.TokenFile = TokenPath(c.Agent.StateDir)
	}
	if err := s.Install(); err != nil {
		undo()
		removeDefinition(s, c.Name) // kardianos may have written its file before failing
		return Installed{}, fmt.Errorf("install service %s: %w", c.Name, err)
	}
	return in, nil
}

// Uninstall stops the service and removes it. A service that is not
// installed is not an error: Uninstall reports false. purgeDir, if not
// empty, is a state dir whose identity and join-token file go too (and the
// dir itself when that leaves it empty), installed or not. A failure to
// stop is logged, not fatal: the service's definition goes all the same.
func Uninstall(name, purgeDir string, log *slog.Logger) (bool, error) {
	s, err := control(name)
	if err != nil {
		return false, err
	}
	installed := false
	switch own, path := ownPath(s.Platform(), name), existing(s.Platform(), name); {
	case own == "":
		_, err := s.Status()
		installed = !errors.Is(err, kservice.ErrNotInstalled)
	case path == own:
		installed = true
	case path != "":
		return false, fmt.Errorf("service %s is defined by %s, which a package owns: remove the package instead", name, path)
	}
	if installed {
		if os.Geteuid() != 0 {
			return false, fmt.Errorf("uninstall: %w", ErrNotRoot)
		}
		if err := s.Stop(); err != nil {
			log.Warn("could not stop the service; removing it all the same", "service", name, "err", err)
		}
		if err := removeDefinition(s, name); err != nil {
			return false, fmt.Errorf("uninstall service %s: %w", name, err)
		}
	}
	if purgeDir != "" {
		if err := purge(purgeDir, purgeWait); err != nil {
			return installed, err
		}
	}
	return installed, nil
}

// purge removes what the agent keeps in dir: its identity, the key of an
// enrollment under way, the join-token file, the supervisor's records, node
// specs and the package cache; then dir itself when nothing else is left in
// it. Nothing else: the dir may be
// shared. Nodes still running are forgotten, not stopped. An agent still
// running on dir (its lock is held) is not purged from under it.
func purge(dir string, wait time.Duration) error {
	lock, err := lockStopped(dir, wait)
	var held *dirlock.HeldError
	switch {
	case errors.As(err, &held):
		return fmt.Errorf("purge: an agent still runs on %s (%s): stop it first", dir, held.Holder())
	case errors.Is(err, fs.ErrNotExist):
		return nil // no state dir: nothing to purge
	case err != nil:
		return fmt.Errorf("purge: %w", err)
	}
	defer lock.Release()
	for _, f := range []string{identity.KeyFile, identity.CertFile, identity.CAFile, identity.IDFile, identity.PendingKeyFile, TokenFile, nodedir.AgentLockName} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("purge: %w", err)
		}
	}
	for _, d := range append(node.StateSubdirs(), supervisor.StateSubdir) {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("purge: %w", err)
		}
	}
	err = os.Remove(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

// lockStopped takes the state dir's lock, giving an agent that was just
// told to stop up to wait to exit and let it go.
func lockStopped(dir string, wait time.Duration) (*dirlock.Lock, error) {
	deadline := time.Now().Add(wait)
	for {
		l, err := dirlock.Acquire(filepath.Join(dir, nodedir.AgentLockName))
		var held *dirlock.HeldError
		if !errors.As(err, &held) || time.Now().After(deadline) {
			return l, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// purgeWait is how long purge waits for a stopping agent to exit.
const purgeWait = 10 * time.Second

// Start starts the installed service.
func Start(name string) error { return act(name, "start", kservice.Service.Start) }

// Stop stops the installed service.
func Stop(name string) error { return act(name, "stop", kservice.Service.Stop) }

func act(name, verb string, f func(kservice.Service) error) error {
	s, err := control(name)
	if err != nil {
		return err
	}
	if existing(s.Platform(), name) == "" && ownPath(s.Platform(), name) != "" {
		return fmt.Errorf("service %s is %w", name, ErrNotInstalled)
	}
	if err := f(s); err != nil {
		return fmt.Errorf("%s service %s: %w", verb, name, err)
	}
	return nil
}

// State is a service's state as Status sees it.
type State int

// The states, in the order of their exit codes' meaning.
const (
	StateNotInstalled State = iota
	StateStopped
	StateRunning
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	}
	return "not-installed"
}

// Status reports whether the service is installed and running.
func Status(name string) (State, error) {
	s, err := control(name)
	if err != nil {
		return StateNotInstalled, err
	}
	known := ownPath(s.Platform(), name) != ""
	if known && existing(s.Platform(), name) == "" {
		return StateNotInstalled, nil
	}
	st, err := s.Status()
	switch {
	case err == nil && st == kservice.StatusRunning:
		return StateRunning, nil
	case err == nil:
		return StateStopped, nil
	case errors.Is(err, kservice.ErrNotInstalled):
		if known {
			return StateStopped, nil // the file is there; the manager has not loaded it
		}
		return StateNotInstalled, nil
	case errors.As(err, new(*exec.ExitError)), strings.Contains(err.Error(), "failed state"):
		// System V init scripts answer "stopped" with a non-zero exit, which
		// kardianos/service passes on as an error; systemd's failed units
		// come back as an error too.
		return StateStopped, nil
	}
	return StateNotInstalled, fmt.Errorf("status of service %s: %w", name, err)
}

// control is a kardianos/service handle good for everything but Install.
func control(name string) (kservice.Service, error) {
	if name == "" {
		name = DefaultName
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	return kservice.New(nopProgram{}, &kservice.Config{Name: name})
}

// ownPath is the file kardianos/service writes for name on platform, or ""
// for a platform whose files this package does not know.
func ownPath(platform, name string) string {
	switch platform {
	case "linux-systemd":
		return "/etc/systemd/system/" + name + ".service"
	case "linux-upstart":
		return "/etc/init/" + name + ".conf"
	case "unix-systemv", "linux-openrc", "linux-rcs", "linux-procd":
		return "/etc/init.d/" + name
	}
	return ""
}

// existing is the file that defines service name now: ours, or a unit a
// package installed. "" when there is none (or the platform is unknown).
func existing(platform, name string) string {
	paths := []string{ownPath(platform, name)}
	if platform == "linux-systemd" {
		paths = append(paths, "/lib/systemd/system/"+name+".service", "/usr/lib/systemd/system/"+name+".service")
	}
	for _, p := range paths {
		if p != "" && fileExists(p) {
			return p
		}
	}
	return ""
}

// removeDefinition uninstalls through kardianos/service, then removes what
// it leaves: the file itself when its uninstall stopped early (systemctl
// disable failing), and the System V rc.d links it never removes.
func removeDefinition(s kservice.Service, name string) error {
	err := s.Uninstall()
	own := ownPath(s.Platform(), name)
	if own != "" {
		if rerr := os.Remove(own); rerr == nil || errors.Is(rerr, fs.ErrNotExist) {
			err = nil
		}
	}
	var links []string
	switch s.Platform() {
	case "unix-systemv":
		links, _ = filepath.Glob("/etc/rc[0-6].d/[SK][0-9][0-9]" + name)
	case "linux-systemd":
		links = []string{"/etc/systemd/system/multi-user.target.wants/" + name + ".service"}
	}
	for _, l := range links {
		if t, _ := os.Readlink(l); t == own {
			os.Remove(l)
		}
	}
	return err
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// nopProgram is the Interface of handles that only control the service.
type nopProgram struct{}

func (nopProgram) Start(kservice.Service) error { return nil }
func (nopProgram) Stop(kservice.Service) error  { return nil }
