package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/admq/admq-manager/agent/supervisor"
	"github.com/admq/admq-manager/internal/atomicfile"
	"github.com/admq/admq-manager/internal/invalid"
)

// RestartPolicy says when Apply restarts the node.
type RestartPolicy int

// Restart policies.
const (
	// RestartNever writes the files only; a running node whose files
	// changed is marked for a restart, which the next Deploy with Start
	// does.
	RestartNever RestartPolicy = iota
	// RestartIfChanged restarts when a file changed or a restart is
	// pending from an earlier write.
	RestartIfChanged
	// RestartAlways restarts, also with no file: a rolling restart.
	RestartAlways
)

// Apply bounds and defaults.
const (
	DefaultHealthStart    = 60 * time.Second
	MaxHealthStart        = time.Hour
	DefaultHealthInterval = 2 * time.Second
	MaxHealthInterval     = time.Minute
	DefaultApplyLogTail   = 4 << 10
	MaxApplyLogTail       = 64 << 10
	// healthFirstWait is the first wait between the checks of a restarted
	// node; it doubles up to the interval.
	healthFirstWait = 100 * time.Millisecond
	// crashLimit is how many crash restarts of a restarted node make it
	// unhealthy at once rather than at the end of its start time.
	crashLimit = 2
)

// ApplyRequest writes config files of an installed node and, as asked,
// restarts it, checks its health and restores its previous files when it
// is unhealthy.
type ApplyRequest struct {
	OperationID string
	Name        string
	ProgramDir  string
	DataDir     string
	ConfigFiles []ConfigFile
	Restart     RestartPolicy
	// Health is checked after a restart; nil: the restart counts as
	// healthy.
	Health         *HealthCheck
	HealthStart    time.Duration // 0: DefaultHealthStart
	HealthInterval time.Duration // 0: DefaultHealthInterval
	// Restore: an unhealthy node gets its previous files back and is
	// restarted again.
	Restore      bool
	LogTailBytes int // 0: DefaultApplyLogTail
	// RecordedOnly applies nothing: it answers with the recorded result of
	// OperationID (waiting for it while it runs), or Interrupted when the
	// agent stopped during it, or ErrNotFound.
	RecordedOnly bool
}

// ApplyResult is what an apply did.
type ApplyResult struct {
	Replayed bool `json:"-"`
	// Changed are the paths written, in request order.
	Changed   []string `json:"changed,omitempty"`
	Restarted bool     `json:"restarted,omitempty"`
	PIDBefore int      `json:"pidBefore,omitempty"`
	PIDAfter  int      `json:"pidAfter,omitempty"`
	// Healthy: the check passed after the restart (or none was asked for
	// and the node runs).
	Healthy      bool   `json:"healthy,omitempty"`
	HealthDetail string `json:"healthDetail,omitempty"`
	HealthChecks int    `json:"healthChecks,omitempty"`
	// Restored: the previous files were put back and the node restarted
	// again; RestoredHealthy says whether it was healthy then.
	Restored        bool          `json:"restored,omitempty"`
	RestoredHealthy bool          `json:"restoredHealthy,omitempty"`
	RestoreDetail   string        `json:"restoreDetail,omitempty"`
	LogTail         []byte        `json:"logTail,omitempty"`
	Status          Status        `json:"status"`
	Duration        time.Duration `json:"duration,omitempty"`
	// Interrupted: RecordedOnly found an apply that began and did not
	// finish (the agent stopped); each file is its old or its new version.
	Interrupted bool `json:"interrupted,omitempty"`
	// Stopped: the node is stopped by an operator; its files were written
	// and it was neither restarted nor checked.
	Stopped bool `json:"stopped,omitempty"`
}

func (r ApplyRequest) dirs() Dirs { return Dirs{Program: r.ProgramDir, Data: r.DataDir} }

func (r ApplyRequest) validate() error {
	if err := checkOp(r.OperationID); err != nil {
		return err
	}
	if err := checkName("name", r.Name); err != nil {
		return err
	}
	if r.RecordedOnly {
		return nil
	}
	if err := checkDir("program_dir", r.ProgramDir, false); err != nil {
		return err
	}
	if err := checkDir("data_dir", r.DataDir, false); err != nil {
		return err
	}
	if err := r.dirs().checkFiles(r.ConfigFiles); err != nil {
		return err
	}
	switch {
	case r.Restart < RestartNever || r.Restart > RestartAlways:
		return invalid.Field("restart", "unknown restart policy %d", r.Restart)
	case r.HealthStart < 0 || r.HealthStart > MaxHealthStart:
		return invalid.Field("health_start_ms", "%v: want 0 to %v", r.HealthStart, MaxHealthStart)
	case r.HealthInterval < 0 || r.HealthInterval > MaxHealthInterval:
		return invalid.Field("health_interval_ms", "%v: want 0 to %v", r.HealthInterval, MaxHealthInterval)
	case r.LogTailBytes < 0 || r.LogTailBytes > MaxApplyLogTail:
		return invalid.Field("log_tail_bytes", "%d: want 0 to %d", r.LogTailBytes, MaxApplyLogTail)
	case r.Restore && r.Restart == RestartNever:
		return invalid.Field("restore_on_failure", "needs a restart policy: a node that is not restarted is not checked")
	}
	if r.Health != nil {
		if err := r.Health.check(); err != nil {
			return err
		}
	}
	return nil
}

// applyCall is an apply under way; done is closed when res is final.
type applyCall struct {
	done chan struct{}
	res  ApplyResult
	err  error
}

// applyRecord is what an apply under way leaves in the state dir, so that
// an agent restarted during it can say so.
type applyRecord struct {
	OperationID string   `json:"operationId"`
	Paths       []string `json:"paths"`
}

func (m *Manager) applyPath(name string) string {
	return filepath.Join(m.dir, "specs", name+".apply")
}

// Apply writes the request's config files and, as asked, restarts the
// node, checks its health and restores the previous files of an unhealthy
// node. Once begun it runs to its end even when ctx is cancelled, and its
// result is recorded under the operation id.
func (m *Manager) Apply(ctx context.Context, r ApplyRequest) (ApplyResult, error) {
	if err := r.validate(); err != nil {
		return ApplyResult{}, err
	}
	if !r.RecordedOnly {
		// The agent's own path checks, as for a deploy.
		if err := m.CheckDirs(r.dirs()); err != nil {
			return ApplyResult{}, err
		}
	}
	m.mu.Lock()
	var res ApplyResult
	if ok, err := m.journal.lookup(r.OperationID, "apply", &res); err != nil || ok {
		m.mu.Unlock()
		res.Replayed = ok
		return res, err
	}
	if c, ok := m.inflight[r.OperationID]; ok {
		m.mu.Unlock()
		return m.await(ctx, c, true)
	}
	if r.RecordedOnly {
		defer m.mu.Unlock()
		var rec applyRecord
		if err := readJSON(m.applyPath(r.Name), &rec); err == nil && rec.OperationID == r.OperationID {
			st, _ := m.status(r.Name)
			return ApplyResult{Interrupted: true, Changed: rec.Paths, Status: st}, nil
		}
		return ApplyResult{}, fmt.Errorf("%w: operation %s was not begun on %s", ErrNotFound, r.OperationID, r.Name)
	}
	if err := m.busyErr(r.Name); err != nil {
		m.mu.Unlock()
		return ApplyResult{}, err
	}
	spec, ok, err := m.loadSpec(r.Name)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s", ErrNotFound, r.Name)
	}
	if err != nil {
		m.mu.Unlock()
		return ApplyResult{}, err
	}
	c := &applyCall{done: make(chan struct{})}
	m.busy[r.Name] = r.OperationID
	m.inflight[r.OperationID] = c
	m.mu.Unlock()

	go func() {
		// Detached: a manager that goes away must not leave the node with
		// new files and no check, or half restored.
		actx := context.WithoutCancel(ctx)
		c.res, c.err = m.apply(actx, r, spec)
		m.mu.Lock()
		if c.err == nil {
			if err := m.journal.record(r.OperationID, "apply", c.res); err != nil {
				c.err = err
			}
		}
		if c.err == nil {
			if err := os.Remove(m.applyPath(r.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				m.log.Warn("apply: record not removed", "node", r.Name, "err", err)
			}
		}
		delete(m.busy, r.Name)
		delete(m.inflight, r.OperationID)
		m.mu.Unlock()
		close(c.done)
	}()
	return m.await(ctx, c, false)
}

func (m *Manager) await(ctx context.Context, c *applyCall, replayed bool) (ApplyResult, error) {
	select {
	case <-c.done:
		res := c.res
		res.Replayed = replayed
		return res, c.err
	case <-ctx.Done():
		return ApplyResult{}, ctx.Err()
	}
}

// apply does the work of Apply; the node is marked busy meanwhile.
func (m *Manager) apply(ctx context.Context, r ApplyRequest, spec supervisor.Spec) (ApplyResult, error) {
	began := time.Now()
	var res ApplyResult
	writes, err := r.dirs().plan(r.Name, r.ConfigFiles)
	if err != nil {
		return res, err
	}
	st, serr := m.sup.Status(r.Name)
	registered := serr == nil
	res.PIDBefore = st.PID
	pending, err := m.restartPending(r.Name)
	if err != nil {
		return res, err
	}
	// A node an operator stopped (or never started) stays stopped; one
	// whose restart an agent that died left half done (stopped, its
	// restart still pending) is started.
	shouldRun := registered && (st.Running || st.Desired == supervisor.Running || pending)
	if old, err := m.unfinishedApply(r.Name); err == nil && old != r.OperationID {
		// An earlier apply was cut short (the agent died): the node may run
		// files no health check passed. Restart it and check it.
		pending = true
	}
	rec := applyRecord{OperationID: r.OperationID}
	for _, w := range writes {
		rec.Paths = append(rec.Paths, w.path)
	}
	if err := writeJSON(m.applyPath(r.Name), rec); err != nil {
		return res, fmt.Errorf("apply %s: %w", r.Name, err)
	}
	if len(writes) > 0 {
		if shouldRun && !pending {
			// Before the files change, so that an agent that dies between
			// writing them and restarting leaves the restart to be done.
			if err := m.markRestart(r.Name); err != nil {
				return res, err
			}
			pending = true
		}
	}
	done, err := writeFiles(r.Name, writes)
	for _, w := range done {
		res.Changed = append(res.Changed, w.Path)
	}
	if err != nil {
		// Put back what was written: the node never runs on a mix.
		if rerr := restore(done); rerr != nil {
			err = fmt.Errorf("%w; restoring the files written before failed too: %v", err, rerr)
		}
		return res, err
	}
	restart := r.Restart == RestartAlways || (r.Restart == RestartIfChanged && (len(done) > 0 || pending))
	switch {
	case !restart:
	case !shouldRun:
		res.Stopped = true
		restart = false
	}
	if restart {
		res.Restarted = true
		if err := m.restartNode(ctx, r.Name, spec); err != nil {
			// As unhealthy as can be: the previous files go back.
			res.HealthDetail = err.Error()
		} else {
			res.Healthy, res.HealthDetail, res.HealthChecks = m.waitHealthy(ctx, r)
		}
		if !res.Healthy {
			res.LogTail = m.logTail(r)
			if r.Restore && len(done) > 0 {
				res.Restored = true
				if err := restore(done); err != nil {
					res.RestoreDetail = "restore failed: " + err.Error()
				} else if err := m.restartNode(ctx, r.Name, spec); err != nil {
					res.RestoreDetail = "restart on the previous files failed: " + err.Error()
				} else {
					var n int
					res.RestoredHealthy, res.RestoreDetail, n = m.waitHealthy(ctx, r)
					res.HealthChecks += n
				}
			}
		}
	}
	if res.Status, err = m.status(r.Name); err != nil {
		return res, err
	}
	res.PIDAfter = res.Status.PID
	res.Duration = time.Since(began)
	m.log.Info("apply: config applied", "node", r.Name, "operation", r.OperationID, "changed", res.Changed,
		"restarted", res.Restarted, "healthy", res.Healthy, "restored", res.Restored, "duration", res.Duration)
	return res, nil
}

// unfinishedApply returns the operation id of an apply of the node that
// began and did not finish, or an error when there is none.
func (m *Manager) unfinishedApply(name string) (string, error) {
	var rec applyRecord
	if err := readJSON(m.applyPath(name), &rec); err != nil {
		return "", err
	}
	return rec.OperationID, nil
}

// restartNode stops the node and starts it with spec, and clears its
// pending restart.
func (m *Manager) restartNode(ctx context.Context, name string, spec supervisor.Spec) error {
	if err := m.sup.Stop(ctx, name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	if err := m.sup.Start(ctx, spec); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	if err := m.clearRestart(name); err != nil {
		m.log.Warn("apply: pending restart not cleared", "node", name, "err", err)
	}
	return nil
}

// waitHealthy checks a just restarted node until it passes, its start
// time is up, or its process keeps exiting.
func (m *Manager) waitHealthy(ctx context.Context, r ApplyRequest) (ok bool, detail string, checks int) {
	limit := r.HealthStart
	if limit == 0 {
		limit = DefaultHealthStart
	}
	interval := r.HealthInterval
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	start := time.Now()
	wait := min(healthFirstWait, interval)
	for {
		st, err := m.sup.Status(r.Name)
		if err == nil && !st.Running && st.Restarts >= crashLimit {
			return false, fmt.Sprintf("the process exited %d times since it was started (last: %s)", st.Restarts, st.LastExit), checks
		}
		if r.Health == nil {
			if err == nil && st.Running {
				return true, "running", checks
			}
		} else {
			checks++
			hok, hdetail, herr := m.CheckHealth(ctx, *r.Health)
			switch {
			case herr != nil:
				detail = herr.Error()
			case hok:
				return true, hdetail, checks
			default:
				detail = hdetail
			}
		}
		if time.Since(start)+wait > limit {
			return false, fmt.Sprintf("not healthy within %s: %s", limit, detail), checks
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err().Error(), checks
		case <-t.C:
		}
		wait = min(2*wait, interval)
	}
}

func (m *Manager) logTail(r ApplyRequest) []byte {
	n := r.LogTailBytes
	if n == 0 {
		n = DefaultApplyLogTail
	}
	b, err := m.sup.LogTail(r.Name, n)
	if err != nil {
		return []byte("(log unavailable: " + err.Error() + ")")
	}
	return b
}

// busyErr refuses a change to a node an apply is working on; m.mu is held.
func (m *Manager) busyErr(name string) error {
	if op, busy := m.busy[name]; busy {
		return fmt.Errorf("%w: node %s is busy with operation %s", ErrBusy, name, op)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
