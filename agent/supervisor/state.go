package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/internal/backoff"
)

// record is a node's state file.
type record struct {
	Spec    Spec    `json:"spec"`
	Desired Desired `json:"desired"`
	// PID and StartTicks (field 22 of /proc/<pid>/stat) identify the
	// running process; both are zero when none runs.
	PID        int       `json:"pid,omitempty"`
	StartTicks uint64    `json:"startTicks,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	Restarts   int       `json:"restarts,omitempty"`
	LastExit   string    `json:"lastExit,omitempty"`
}

func (s *Supervisor) statePath(name string) string { return filepath.Join(s.dir, name+".json") }

// persist writes n's state file. Writes are ordered by n.file, and each
// writes a snapshot taken under it, so the last write is the newest state.
// Nothing is written for a removed node or after Close (another agent run
// may own the files by then).
func (s *Supervisor) persist(n *node) error {
	n.file.Lock()
	defer n.file.Unlock()
	s.mu.Lock()
	if s.closed || n.removed {
		s.mu.Unlock()
		return nil
	}
	rec := record{
		Spec:      n.spec,
		Desired:   n.desired,
		StartedAt: n.startedAt,
		Restarts:  n.restarts,
		LastExit:  n.lastExit,
	}
	if n.proc != nil {
		rec.PID, rec.StartTicks = n.proc.pid, n.proc.start
	}
	s.mu.Unlock()
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("save state of %s: %w", rec.Spec.Name, err)
	}
	if err := atomicfile.WriteFile(s.statePath(rec.Spec.Name), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save state of %s: %w", rec.Spec.Name, err)
	}
	return nil
}

// Adopt loads the state files of an earlier run; call it once, before
// Start. Each node that should run is adopted if its recorded process is
// still alive (same pid and same kernel start time), and started afresh
// otherwise. An adopted process is not the agent's child: Run polls it to
// notice its death, after which the restart policy applies as usual. Nodes
// that should not run are only loaded. Errors about single nodes are joined;
// the other nodes are still handled.
func (s *Supervisor) Adopt(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("adopt: %w", err))...)
		}
		if err := s.adoptOne(name); err != nil {
			errs = append(errs, fmt.Errorf("adopt %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Supervisor) adoptOne(name string) error {
	data, err := os.ReadFile(s.statePath(name))
	if err != nil {
		return err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	spec, err := rec.Spec.normalize()
	if err != nil {
		return err
	}
	if spec.Name != name {
		return fmt.Errorf("state file names node %q", spec.Name)
	}
	if rec.Desired != Running && rec.Desired != Stopped {
		return fmt.Errorf("state file: desired state %q", rec.Desired)
	}

	n := &node{
		spec:      spec,
		desired:   rec.Desired,
		startedAt: rec.StartedAt,
		restarts:  rec.Restarts,
		lastExit:  rec.LastExit,
		bo:        backoff.New(spec.BackoffBase, spec.BackoffMax),
	}
	n.op.Lock()
	defer n.op.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.nodes[name] != nil {
		s.mu.Unlock()
		return nil // already started in this run
	}
	s.nodes[name] = n
	adopt := rec.Desired == Running && alive(rec.PID, rec.StartTicks)
	if adopt {
		n.proc = &process{pid: rec.PID, start: rec.StartTicks, adopted: true, done: make(chan struct{})}
	}
	s.mu.Unlock()

	switch {
	case adopt:
		s.log.Info("node adopted", "node", name, "pid", rec.PID)
		return nil
	case rec.Desired == Running:
		s.log.Info("node not running; starting it", "node", name, "recorded_pid", rec.PID)
		if err := s.startProc(n); err != nil {
			// Unlike a failed Start, nobody is there to retry: keep the
			// node desired running and retry after a backoff.
			s.mu.Lock()
			n.lastExit = err.Error()
			s.scheduleRestartLocked(n)
			s.mu.Unlock()
			if perr := s.persist(n); perr != nil {
				err = errors.Join(err, perr)
			}
			return err
		}
		return s.persist(n)
	default:
		return nil
	}
}
