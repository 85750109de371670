package supervisor

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Policy says when a process that exited on its own is started again.
type Policy string

// Restart policies. The empty Policy means OnFailure.
const (
	Always    Policy = "always"     // restart whatever the exit status
	OnFailure Policy = "on-failure" // restart after a non-zero exit or a signal
	Never     Policy = "never"      // leave it down
)

// Spec describes one node process.
type Spec struct {
	// Name is the node id, [A-Za-z0-9_.-]{1,64}; it names the state file and
	// the log file.
	Name string `json:"name"`
	// Argv is the command; Argv[0] is looked up in PATH if it has no slash.
	Argv []string `json:"argv"`
	// Env is the process environment on top of PATH, which is the only
	// variable taken from the agent (whose environment may hold secrets).
	Env []string `json:"env,omitempty"`
	// Dir is the working directory; empty means the agent's.
	Dir string `json:"dir,omitempty"`
	// LogDir holds <Name>.log (stdout and stderr) and its rotated copies.
	LogDir string `json:"logDir"`
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	// Default 10s.
	StopGrace time.Duration `json:"stopGrace,omitempty"`
	// Restart is the restart policy. Default OnFailure.
	Restart Policy `json:"restart,omitempty"`
	// BackoffBase and BackoffMax bound the delay before a crash restart
	// (capped exponential with full jitter). Defaults 1s and 60s.
	BackoffBase time.Duration `json:"backoffBase,omitempty"`
	BackoffMax  time.Duration `json:"backoffMax,omitempty"`
}

// Defaults for Spec fields.
const (
	DefaultStopGrace   = 10 * time.Second
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 60 * time.Second
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ErrInvalidSpec is wrapped by the errors Start returns for a bad Spec.
var ErrInvalidSpec = errors.New("invalid spec")

// normalize applies the defaults and checks the spec.
func (s Spec) normalize() (Spec, error) {
	if !nameRE.MatchString(s.Name) || s.Name == "." || s.Name == ".." {
		return s, fmt.Errorf("%w: name %q: want [A-Za-z0-9_.-]{1,64}", ErrInvalidSpec, s.Name)
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return s, fmt.Errorf("%w: %s: empty argv", ErrInvalidSpec, s.Name)
	}
	if s.LogDir == "" {
		return s, fmt.Errorf("%w: %s: no log dir", ErrInvalidSpec, s.Name)
	}
	switch s.Restart {
	case "":
		s.Restart = OnFailure
	case Always, OnFailure, Never:
	default:
		return s, fmt.Errorf("%w: %s: restart policy %q", ErrInvalidSpec, s.Name, s.Restart)
	}
	if s.StopGrace < 0 || s.BackoffBase < 0 || s.BackoffMax < 0 {
		return s, fmt.Errorf("%w: %s: negative duration", ErrInvalidSpec, s.Name)
	}
	if s.StopGrace == 0 {
		s.StopGrace = DefaultStopGrace
	}
	if s.BackoffBase == 0 {
		s.BackoffBase = DefaultBackoffBase
	}
	if s.BackoffMax == 0 {
		s.BackoffMax = DefaultBackoffMax
	}
	if s.BackoffMax < s.BackoffBase {
		s.BackoffMax = s.BackoffBase
	}
	s.Argv = slices.Clone(s.Argv)
	if len(s.Env) == 0 {
		s.Env = nil
	} else {
		s.Env = slices.Clone(s.Env)
	}
	return s, nil
}

func (s Spec) equal(o Spec) bool {
	return s.Name == o.Name && slices.Equal(s.Argv, o.Argv) && slices.Equal(s.Env, o.Env) &&
		s.Dir == o.Dir && s.LogDir == o.LogDir && s.StopGrace == o.StopGrace &&
		s.Restart == o.Restart && s.BackoffBase == o.BackoffBase && s.BackoffMax == o.BackoffMax
}

// stableAfter is how long a process must stay up for its crash backoff to
// start over: twice the longest delay, so a node that crashes at a steady
// rate slower than that is not treated as a crash loop.
func (s Spec) stableAfter() time.Duration { return 2 * s.BackoffMax }
