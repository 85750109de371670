// Package supervisor runs the agent's node processes (ZooKeeper JVMs, NATS
// servers and the like): it starts each in its own session with its output
// appended to a log file it rotates, restarts it after a crash with capped
// exponential backoff, stops it with SIGTERM and then SIGKILL, and adopts the
// processes that are still running when the agent itself restarts.
//
// Node processes outlive the agent on purpose (the agent's unit uses
// KillMode=process): a child writes straight to its log file, not through a
// pipe to the agent, and the supervisor never kills nodes when it shuts down.
// What it knows about each node is kept in stateDir/supervisor/<name>.json,
// including the pid and the kernel's start time of the process, so that
// Adopt never mistakes a process that re-used the pid for the node.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"golang.org/x/sys/unix"

	"github.com/admq/admq-manager/internal/backoff"
)

// Desired is what the supervisor tries to keep a node at.
type Desired string

// Desired states.
const (
	Running Desired = "running"
	Stopped Desired = "stopped"
)

// State is a snapshot of one node.
type State struct {
	Name      string
	Desired   Desired
	Running   bool
	PID       int       // 0 when not running
	StartedAt time.Time // of the current (or last) process
	// Restarts counts the crash restarts since the last Start.
	Restarts int
	// LastExit says how the last process ended, as os/exec puts it:
	// "exit status 1", "signal: killed"; for an adopted process, whose status
	// the agent cannot collect, "exited (status unknown)".
	LastExit string
	// Adopted is true when the process was started by an earlier agent run.
	Adopted bool
}

// Proc names a running node process, for metrics.
type Proc struct {
	Name string
	PID  int32
}

// Errors callers branch on.
var (
	ErrNotFound    = errors.New("no such node")
	ErrSpecChanged = errors.New("node is running with a different spec; stop it first")
	ErrClosed      = errors.New("supervisor closed")
)

// exitUnknown is LastExit for an adopted process: it is not our child, so
// its exit status went to someone else.
const exitUnknown = "exited (status unknown)"

// MaxLogTail caps LogTail.
const MaxLogTail = 1 << 20

// Option configures a Supervisor.
type Option func(*Supervisor)

// WithMaxLogSize sets the size above which a log is rotated. Default 50 MiB.
func WithMaxLogSize(n int64) Option { return func(s *Supervisor) { s.maxLogSize = n } }

// WithMaxLogFiles sets how many rotated logs (<name>.log.1 …) are kept.
// Default 5.
func WithMaxLogFiles(n int) Option { return func(s *Supervisor) { s.maxLogFiles = n } }

// WithRotateInterval sets how often Run checks log sizes. Default 5s.
func WithRotateInterval(d time.Duration) Option { return func(s *Supervisor) { s.rotateEvery = d } }

// WithPollInterval sets how often Run checks that adopted processes are
// still alive. Default 1s.
func WithPollInterval(d time.Duration) Option { return func(s *Supervisor) { s.pollEvery = d } }

// WithClock sets the clock used for StartedAt and for deciding whether a
// process stayed up long enough to reset its backoff. Default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Supervisor) { s.now = now } }

// Supervisor runs node processes. It is safe for concurrent use; operations
// on one node are serialized.
type Supervisor struct {
	dir         string
	log         *slog.Logger
	now         func() time.Time
	maxLogSize  int64
	maxLogFiles int
	rotateEvery time.Duration
	pollEvery   time.Duration

	ctx    context.Context // done after Close; ends pending restarts
	cancel context.CancelFunc
	wg     sync.WaitGroup // pending restarts

	mu     sync.Mutex
	closed bool
	nodes  map[string]*node
}

type node struct {
	op   sync.Mutex // held for the whole of Start, Stop, Restart, Remove, a crash restart
	file sync.Mutex // orders writes of the state file

	// Guarded by Supervisor.mu.
	spec      Spec
	desired   Desired
	removed   bool
	proc      *process // nil when not running
	startedAt time.Time
	restarts  int
	lastExit  string
	bo        *backoff.Backoff
	stopping  bool            // the current process is being stopped on purpose
	pending   *pendingRestart // crash restart waiting for its backoff
}

type process struct {
	pid     int
	start   uint64 // /proc/<pid>/stat starttime
	adopted bool
	done    chan struct{} // closed when the process has exited
}

type pendingRestart struct{ cancel context.CancelFunc }

// StateSubdir is the directory under the agent's state dir where the
// supervisor keeps its records.
const StateSubdir = "supervisor"

// New returns a Supervisor that keeps its state under stateDir/supervisor.
// Call Adopt once to take over the nodes of an earlier run, and Run for the
// background work.
func New(stateDir string, log *slog.Logger, opts ...Option) (*Supervisor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		dir:         filepath.Join(stateDir, StateSubdir),
		log:         log,
		now:         time.Now,
		maxLogSize:  50 << 20,
		maxLogFiles: 5,
		rotateEvery: 5 * time.Second,
		pollEvery:   time.Second,
		nodes:       map[string]*node{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.maxLogFiles < 1 {
		s.maxLogFiles = 1
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor state dir: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Run rotates logs and watches adopted processes until ctx is done, then
// stops all watching as Close does. It never stops the nodes: the agent
// going down must not take them down.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	defer s.Close()
	rot := time.NewTicker(s.rotateEvery)
	defer rot.Stop()
	poll := time.NewTicker(s.pollEvery)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rot.C:
			s.rotateLogs()
		case <-poll.C:
			s.pollAdopted()
		}
	}
}

// Close stops watching: operations under way finish first, pending crash
// restarts are dropped and later operations fail with ErrClosed. Running
// nodes are left running. A goroutine waiting for each child the supervisor
// started stays until that child exits; it then only reaps it.
func (s *Supervisor) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	nodes := make([]*node, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	s.mu.Unlock()
	// Let operations under way finish and record their state first: a crash
	// restart that has already started a process must also write its pid,
	// or the next agent run would not adopt that process but start another.
	for _, n := range nodes {
		n.op.Lock()
	}
	s.mu.Lock()
	already := s.closed
	s.closed = true
	for _, n := range s.nodes {
		n.cancelPendingLocked()
	}
	s.mu.Unlock()
	// Release before waiting: a pending restart that fired meanwhile takes
	// its node's lock, sees the supervisor closed and returns.
	for _, n := range nodes {
		n.op.Unlock()
	}
	if already {
		return
	}
	s.cancel()
	s.wg.Wait()
}

// Start starts the node described by spec and records that it should run.
// If it already runs with the same spec, Start does nothing; if it runs with
// another spec, Start fails with ErrSpecChanged. Starting a node that is
// waiting out a crash backoff starts it now.
func (s *Supervisor) Start(ctx context.Context, spec Spec) error {
	spec, err := spec.normalize()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	n, unlock, err := s.lockNode(spec.Name, &spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer unlock()

	s.mu.Lock()
	if n.proc != nil {
		if !n.spec.equal(spec) {
			s.mu.Unlock()
			return fmt.Errorf("start %s: %w", spec.Name, ErrSpecChanged)
		}
		changed := n.desired != Running
		n.desired = Running
		s.mu.Unlock()
		if changed {
			return s.persist(n)
		}
		return nil
	}
	if !n.spec.equal(spec) {
		n.spec = spec
		n.bo = backoff.New(spec.BackoffBase, spec.BackoffMax)
	}
	n.bo.Reset()
	n.cancelPendingLocked()
	n.restarts = 0
	n.desired = Running
	s.mu.Unlock()
	return s.startOrRecord(n)
}

// Stop records that the node should not run and stops its process: SIGTERM
// to its process group, SIGKILL to the group after the spec's StopGrace.
// It returns once the process is gone. Whatever is left of the group after
// the main process exited is killed too. If ctx ends first, Stop sends
// SIGKILL at once and returns ctx's error.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	n, unlock, err := s.lockNode(name, nil)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer unlock()
	s.mu.Lock()
	n.desired = Stopped
	n.cancelPendingLocked()
	s.mu.Unlock()
	if err := s.persist(n); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if err := s.stopProc(ctx, n); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	// The exit is recorded by now, but the waiting goroutine may not have
	// saved it yet; save it here so the file is current when Stop returns.
	if err := s.persist(n); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// Restart stops the node's process (as Stop) and starts it again with the
// same spec; a stopped node is started. The node's desired state becomes
// running.
func (s *Supervisor) Restart(ctx context.Context, name string) error {
	n, unlock, err := s.lockNode(name, nil)
	if err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	defer unlock()
	s.mu.Lock()
	n.desired = Running
	n.cancelPendingLocked()
	s.mu.Unlock()
	if err := s.stopProc(ctx, n); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	return s.startOrRecord(n)
}

// Remove stops the node and forgets it. Its log files stay.
func (s *Supervisor) Remove(ctx context.Context, name string) error {
	n, unlock, err := s.lockNode(name, nil)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	defer unlock()
	s.mu.Lock()
	n.desired = Stopped
	n.cancelPendingLocked()
	s.mu.Unlock()
	if err := s.stopProc(ctx, n); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	s.mu.Lock()
	n.removed = true
	delete(s.nodes, name)
	s.mu.Unlock()
	n.file.Lock()
	defer n.file.Unlock()
	if err := os.Remove(s.statePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return atomicfile.SyncDir(s.dir)
}

// Status returns the state of one node.
func (s *Supervisor) Status(name string) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[name]
	if n == nil {
		return State{}, fmt.Errorf("status %s: %w", name, ErrNotFound)
	}
	return n.stateLocked(), nil
}

// List returns the state of every node, by name.
func (s *Supervisor) List() []State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]State, 0, len(s.nodes))
	for _, name := range slices.Sorted(maps.Keys(s.nodes)) {
		out = append(out, s.nodes[name].stateLocked())
	}
	return out
}

// Processes lists the running node processes, by name.
func (s *Supervisor) Processes() []Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Proc
	for _, name := range slices.Sorted(maps.Keys(s.nodes)) {
		if p := s.nodes[name].proc; p != nil {
			out = append(out, Proc{Name: name, PID: int32(p.pid)})
		}
	}
	return out
}

// LogTail returns the last maxBytes (at most MaxLogTail) of the node's
// current log; nothing if it has none yet.
func (s *Supervisor) LogTail(name string, maxBytes int) ([]byte, error) {
	s.mu.Lock()
	n := s.nodes[name]
	var spec Spec
	if n != nil {
		spec = n.spec
	}
	s.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("log of %s: %w", name, ErrNotFound)
	}
	maxBytes = min(maxBytes, MaxLogTail)
	if maxBytes <= 0 {
		return nil, nil
	}
	f, err := os.Open(logPath(spec))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	off := max(fi.Size()-int64(maxBytes), 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, int64(maxBytes)))
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	return b, nil
}

func (n *node) stateLocked() State {
	st := State{
		Name:      n.spec.Name,
		Desired:   n.desired,
		StartedAt: n.startedAt,
		Restarts:  n.restarts,
		LastExit:  n.lastExit,
	}
	if n.proc != nil {
		st.Running, st.PID, st.Adopted = true, n.proc.pid, n.proc.adopted
	}
	return st
}

func (n *node) cancelPendingLocked() {
	if n.pending != nil {
		n.pending.cancel()
		n.pending = nil
	}
}

// lockNode returns the node called name with its operation lock held,
// creating it (stopped, with *spec) if it is missing and spec is not nil.
func (s *Supervisor) lockNode(name string, spec *Spec) (*node, func(), error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, nil, ErrClosed
		}
		n := s.nodes[name]
		if n == nil {
			if spec == nil {
				s.mu.Unlock()
				return nil, nil, ErrNotFound
			}
			n = &node{spec: *spec, desired: Stopped, bo: backoff.New(spec.BackoffBase, spec.BackoffMax)}
			s.nodes[name] = n
		}
		s.mu.Unlock()
		n.op.Lock()
		s.mu.Lock()
		ok, closed := s.nodes[name] == n, s.closed
		s.mu.Unlock()
		if ok && !closed {
			return n, n.op.Unlock, nil
		}
		n.op.Unlock() // removed meanwhile: look again
		if closed {
			return nil, nil, ErrClosed
		}
	}
}

// startOrRecord starts n's process (n.op held). When that fails it records
// the error as LastExit and the node as stopped, since there is no process
// whose exit would trigger a retry.
func (s *Supervisor) startOrRecord(n *node) error {
	err := s.startProc(n)
	if err != nil {
		s.mu.Lock()
		n.desired = Stopped
		n.lastExit = err.Error()
		s.mu.Unlock()
	}
	if perr := s.persist(n); err == nil && perr != nil {
		err = fmt.Errorf("start %s: %w", n.spec.Name, perr)
	}
	return err
}

// startProc spawns n's process and starts waiting for it (n.op held).
func (s *Supervisor) startProc(n *node) error {
	s.mu.Lock()
	spec := n.spec
	s.mu.Unlock()
	cmd, start, err := spawn(spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &process{pid: cmd.Process.Pid, start: start, done: make(chan struct{})}
	s.mu.Lock()
	n.proc = p
	n.startedAt = s.now()
	s.mu.Unlock()
	s.log.Info("node started", "node", spec.Name, "pid", p.pid)
	go func() {
		// Stdout and stderr are files, so Wait starts no copying
		// goroutines and returns as soon as the child is reaped.
		err := cmd.Wait()
		exit := "exit status 0"
		if err != nil {
			exit = err.Error()
		}
		s.exited(n, p, exit, err != nil)
	}()
	return nil
}

// exited records that p, n's process, is gone and schedules a crash restart
// if the node should run, the exit was not asked for and the policy says so.
// Calling it again for the same process does nothing.
func (s *Supervisor) exited(n *node, p *process, exit string, failed bool) {
	s.mu.Lock()
	if n.proc != p {
		s.mu.Unlock()
		return
	}
	n.proc = nil
	close(p.done)
	if s.closed || n.removed {
		s.mu.Unlock()
		return // a newer agent run (or nobody) owns the node now
	}
	n.lastExit = exit
	expected := n.stopping || n.desired != Running
	restart := !expected && (n.spec.Restart == Always || n.spec.Restart == OnFailure && failed)
	var delay time.Duration
	if restart {
		if s.now().Sub(n.startedAt) >= n.spec.stableAfter() {
			n.bo.Reset()
		}
		delay = s.scheduleRestartLocked(n)
	}
	name := n.spec.Name
	s.mu.Unlock()

	log := s.log.With("node", name, "pid", p.pid, "exit", exit)
	switch {
	case expected:
		log.Info("node stopped")
	case restart:
		log.Warn("node exited; restarting after backoff", "delay", delay)
	default:
		log.Warn("node exited; not restarting by policy")
	}
	if err := s.persist(n); err != nil {
		log.Error("save node state", "err", err)
	}
}

// scheduleRestartLocked starts n's next backoff delay and returns it.
func (s *Supervisor) scheduleRestartLocked(n *node) time.Duration {
	n.cancelPendingLocked()
	delay := n.bo.Next()
	ctx, cancel := context.WithCancel(s.ctx)
	pr := &pendingRestart{cancel: cancel}
	n.pending = pr
	s.wg.Add(1)
	go s.restartAfter(ctx, n, pr, delay)
	return delay
}

func (s *Supervisor) restartAfter(ctx context.Context, n *node, pr *pendingRestart, delay time.Duration) {
	defer s.wg.Done()
	defer pr.cancel()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	n.op.Lock()
	defer n.op.Unlock()
	s.mu.Lock()
	ok := n.pending == pr && ctx.Err() == nil && !s.closed && !n.removed && n.desired == Running && n.proc == nil
	if ok {
		n.pending = nil
		n.restarts++
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := s.startProc(n); err != nil {
		s.mu.Lock()
		n.lastExit = err.Error()
		delay := s.scheduleRestartLocked(n)
		s.mu.Unlock()
		s.log.Error("restart node", "node", n.spec.Name, "err", err, "retry_in", delay)
	}
	if err := s.persist(n); err != nil {
		s.log.Error("save node state", "node", n.spec.Name, "err", err)
	}
}

// stopProc stops n's process if there is one (n.op held).
func (s *Supervisor) stopProc(ctx context.Context, n *node) error {
	s.mu.Lock()
	p, grace := n.proc, n.spec.StopGrace
	if p != nil {
		n.stopping = true
	}
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	defer func() {
		s.mu.Lock()
		n.stopping = false
		s.mu.Unlock()
	}()

	// signal sends sig to p's group unless p, being adopted and so not
	// reaped by us, is gone: then its pid may belong to someone else.
	signal := func(sig unix.Signal) error {
		if p.adopted && !alive(p.pid, p.start) {
			s.exited(n, p, exitUnknown, true)
			return nil
		}
		return signalGroup(p.pid, sig)
	}
	// wait waits up to d for p to be gone.
	wait := func(d time.Duration) (bool, error) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.done:
				return true, nil
			case <-ctx.Done():
				return false, ctx.Err()
			case <-timer.C:
				return false, nil
			case <-tick.C:
				if p.adopted && !alive(p.pid, p.start) {
					s.exited(n, p, exitUnknown, true)
				}
			}
		}
	}

	if err := signal(unix.SIGTERM); err != nil {
		return err
	}
	gone, err := wait(grace)
	if !gone {
		if kerr := signal(unix.SIGKILL); kerr != nil {
			return kerr
		}
		if err != nil {
			return err
		}
		s.log.Warn("node ignored SIGTERM; killed", "node", n.spec.Name, "pid", p.pid, "grace", grace)
		if gone, err = wait(10 * time.Second); err != nil {
			return err
		}
		if !gone {
			return fmt.Errorf("process %d still there 10s after SIGKILL", p.pid)
		}
	}
	// Whatever else is left in the group (children that outlived the main
	// process) goes too. The group id cannot have been re-used while any
	// member is alive.
	return signalGroup(p.pid, unix.SIGKILL)
}

// pollAdopted notices adopted processes that died: they are not our
// children, so no Wait tells us.
func (s *Supervisor) pollAdopted() {
	type watched struct {
		n *node
		p *process
	}
	var ws []watched
	s.mu.Lock()
	for _, n := range s.nodes {
		if n.proc != nil && n.proc.adopted {
			ws = append(ws, watched{n, n.proc})
		}
	}
	s.mu.Unlock()
	for _, w := range ws {
		if !alive(w.p.pid, w.p.start) {
			// Without the status, treat it as a failure: a node server
			// that exits on its own has not done what it was run for.
			s.exited(w.n, w.p, exitUnknown, true)
		}
	}
}
