// Package fleetop runs one operation on many servers or nodes at once —
// ping, collect facts, start/stop/restart nodes, count a node's log lines —
// as a single call: a bounded number of targets at a time, each bounded by
// its own timeout, results kept as they arrive (for an event stream) and a
// summary of how many went through, failed or found their agent offline.
//
// Targets whose agent has no session are answered at once as offline,
// without a call; so 10,000 targets never mean 10,000 calls in flight, only
// Concurrency of them. Operations are kept in memory for Retention after
// they end (and at most MaxKept of them); a restarted manager forgets them.
package fleetop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// Kinds of operation.
const (
	KindPing     = "ping"      // a round trip to each server's agent
	KindFacts    = "facts"     // each server's host facts, collected now
	KindCommand  = "command"   // start, stop or restart each node
	KindLogLines = "log_lines" // the lines in each node's log (its last MiB)
)

// Result statuses.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusOffline = "offline"
)

// Operation states.
const (
	StateRunning = "running"
	StateDone    = "done"
)

// Limits of a request.
const (
	DefaultConcurrency = 64
	MaxConcurrency     = 1024
	DefaultTimeout     = 10 * time.Second
	MaxTimeout         = 10 * time.Minute
	// LogBytes is how much of a node's log's end log_lines counts in.
	LogBytes = 1 << 20
)

// ErrNotFound: no operation with that id is kept.
var ErrNotFound = errors.New("fleet operation does not exist (or has been forgotten)")

// Target says which servers (ping, facts) or nodes (command, log_lines)
// an operation runs on. Exactly one way of choosing is used.
type Target struct {
	// Servers: these servers; with AreaID: the servers of that area; All:
	// every server.
	ServerIDs []ids.ID
	AreaID    ids.ID
	All       bool
	// Nodes: these nodes; with ClusterID: that cluster's nodes, only those
	// of Component when it is set.
	NodeIDs   []ids.ID
	ClusterID ids.ID
	Component string
}

// Request is one fleet-wide operation.
type Request struct {
	Kind string
	// Command is start, stop or restart (KindCommand only).
	Command string
	Target  Target
	// Concurrency is how many targets are worked on at once (0: 64; at
	// most 1024); Timeout bounds each one (0: 10s; at most 10m).
	Concurrency int
	Timeout     time.Duration
	// By is who asked, for the record.
	By string
}

// Result is what one target gave.
type Result struct {
	// Seq counts results from 1 in the order they arrived.
	Seq      int
	ServerID ids.ID
	NodeID   ids.ID // zero for server operations
	Status   string
	// Reason says why a target failed or was offline.
	Reason  string
	Elapsed time.Duration
	// What the target answered, by kind: RTT and AgentVersion (ping),
	// Facts (facts), RunState and PID (command), Lines and Truncated
	// (log_lines: Truncated when the log was longer than LogBytes and only
	// its end was counted).
	RTT          time.Duration
	AgentVersion string
	Facts        *fleet.Facts
	RunState     string
	PID          int
	Lines        int
	Truncated    bool
}

// Summary counts an operation's results.
type Summary struct {
	Total, Done, OK, Failed, Offline int
}

// Operation is one run, as seen at one moment.
type Operation struct {
	ID          ids.ID
	Kind        string
	Command     string
	State       string
	Concurrency int
	Timeout     time.Duration
	By          string
	CreatedAt   time.Time
	FinishedAt  time.Time // zero while running
	Summary     Summary
}

// NodeResult is what a node command left.
type NodeResult struct {
	RunState string
	PID      int
}

// TargetNode is a node an operation works on.
type TargetNode struct {
	ID, ServerID ids.ID
	Component    string
}

// Deps are what operations use.
type Deps struct {
	// Servers lists servers (fleet.Service).
	Servers interface {
		Servers(ctx context.Context, f fleet.ServerFilter, p paging.Page) ([]fleet.Server, int, error)
		Server(ctx context.Context, id ids.ID) (fleet.Server, error)
	}
	// Nodes finds nodes: those of a cluster, or one by id.
	ClusterNodes func(ctx context.Context, clusterID ids.ID) ([]TargetNode, error)
	Node         func(ctx context.Context, id ids.ID) (TargetNode, error)
	// Agents reach the servers' agents (the tunnel).
	Agents interface {
		Online(id ids.ID) bool
		Ping(ctx context.Context, id ids.ID) (time.Duration, string, error)
		Facts(ctx context.Context, id ids.ID) (fleet.Facts, error)
	}
	// NodeCommand and NodeLog act on one node through its agent (the
	// deploy engine, which records the node's new state).
	NodeCommand func(ctx context.Context, nodeID ids.ID, cmd string) (NodeResult, error)
	NodeLog     func(ctx context.Context, nodeID ids.ID, maxBytes int) ([]byte, error)
	IDs         *ids.Generator
	Now         func() time.Time
	// Retention is how long an ended operation is kept (default 1h);
	// MaxKept caps how many are kept (default 100).
	Retention time.Duration
	MaxKept   int
}

// Service runs and keeps fleet operations.
type Service struct {
	d Deps

	mu   sync.Mutex
	ops  map[ids.ID]*op
	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once
}

// NewService returns a Service.
func NewService(d Deps) *Service {
	if d.Retention <= 0 {
		d.Retention = time.Hour
	}
	if d.MaxKept <= 0 {
		d.MaxKept = 100
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d, ops: make(map[ids.ID]*op), stop: make(chan struct{})}
}

// op is an operation and its results as they come.
type op struct {
	mu      sync.Mutex
	info    Operation
	results []Result
	changed chan struct{} // closed and replaced at every new result
	cancel  context.CancelFunc
}

func (o *op) snapshot(from int) (Operation, []Result, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var rs []Result
	if from < len(o.results) {
		rs = slices.Clone(o.results[from:])
	}
	return o.info, rs, o.changed
}

func (o *op) add(r Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r.Seq = len(o.results) + 1
	o.results = append(o.results, r)
	s := &o.info.Summary
	s.Done++
	switch r.Status {
	case StatusOK:
		s.OK++
	case StatusFailed:
		s.Failed++
	case StatusOffline:
		s.Offline++
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *op) finish(at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.info.State, o.info.FinishedAt = StateDone, at
	close(o.changed)
	o.changed = make(chan struct{})
}

// target is one server or node to work on.
type target struct {
	server ids.ID
	node   ids.ID
}

// Start validates the request, resolves its targets and starts the
// operation; it answers at once with the operation, running.
func (s *Service) Start(ctx context.Context, r Request) (Operation, error) {
	if err := r.validate(); err != nil {
		return Operation{}, err
	}
	targets, err := s.resolve(ctx, r)
	if err != nil {
		return Operation{}, err
	}
	if len(targets) == 0 {
		return Operation{}, invalid.Field("target", "selects no %s", map[bool]string{true: "node", false: "server"}[r.onNodes()])
	}
	select {
	case <-s.stop:
		return Operation{}, errors.New("fleet operations: the manager is stopping")
	default:
	}
	o := &op{
		info: Operation{
			ID: s.d.IDs.Next(), Kind: r.Kind, Command: r.Command, State: StateRunning,
			Concurrency: r.Concurrency, Timeout: r.Timeout, By: r.By, CreatedAt: s.d.Now(),
			Summary: Summary{Total: len(targets)},
		},
		changed: make(chan struct{}),
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	s.mu.Lock()
	s.forgetOldLocked()
	s.ops[o.info.ID] = o
	s.mu.Unlock()
	s.wg.Go(func() {
		defer cancel()
		s.run(runCtx, o, r, targets)
	})
	info, _, _ := o.snapshot(0)
	return info, nil
}

func (r *Request) onNodes() bool { return r.Kind == KindCommand || r.Kind == KindLogLines }

func (r *Request) validate() error {
	switch r.Kind {
	case KindPing, KindFacts, KindLogLines:
		if r.Command != "" {
			return invalid.Field("command", "only for kind %q", KindCommand)
		}
	case KindCommand:
		switch r.Command {
		case "start", "stop", "restart":
		default:
			return invalid.Field("command", "%q: must be start, stop or restart", r.Command)
		}
	default:
		return invalid.Field("kind", "%q: must be %s, %s, %s or %s", r.Kind, KindPing, KindFacts, KindCommand, KindLogLines)
	}
	switch {
	case r.Concurrency == 0:
		r.Concurrency = DefaultConcurrency
	case r.Concurrency < 0 || r.Concurrency > MaxConcurrency:
		return invalid.Field("concurrency", "must be 1 to %d", MaxConcurrency)
	}
	switch {
	case r.Timeout == 0:
		r.Timeout = DefaultTimeout
	case r.Timeout < 0 || r.Timeout > MaxTimeout:
		return invalid.Field("timeoutMs", "must be 1 to %d", MaxTimeout.Milliseconds())
	}
	t := r.Target
	serverWays, nodeWays := 0, 0
	if len(t.ServerIDs) > 0 {
		serverWays++
	}
	if !t.AreaID.IsZero() {
		serverWays++
	}
	if t.All {
		serverWays++
	}
	if len(t.NodeIDs) > 0 {
		nodeWays++
	}
	if !t.ClusterID.IsZero() {
		nodeWays++
	}
	if t.Component != "" && t.ClusterID.IsZero() {
		return invalid.Field("component", "needs clusterId")
	}
	if len(t.ServerIDs) > 100_000 || len(t.NodeIDs) > 100_000 {
		return invalid.Field("target", "at most 100000 ids")
	}
	if r.onNodes() {
		if serverWays > 0 || nodeWays != 1 {
			return invalid.Field("target", "kind %q works on nodes: give exactly one of nodeIds or clusterId (with component, optionally)", r.Kind)
		}
	} else if nodeWays > 0 || serverWays != 1 {
		return invalid.Field("target", "kind %q works on servers: give exactly one of serverIds, areaId or all", r.Kind)
	}
	return nil
}

// resolve lists the targets; unknown ids are errors (nothing starts).
func (s *Service) resolve(ctx context.Context, r Request) ([]target, error) {
	t := r.Target
	var out []target
	seen := map[ids.ID]bool{}
	switch {
	case len(t.ServerIDs) > 0:
		for _, id := range t.ServerIDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			if _, err := s.d.Servers.Server(ctx, id); err != nil {
				return nil, fmt.Errorf("server %s: %w", id, err)
			}
			out = append(out, target{server: id})
		}
	case !t.AreaID.IsZero() || t.All:
		p := paging.Page{Num: 1, Size: paging.MaxSize}
		for {
			srvs, total, err := s.d.Servers.Servers(ctx, fleet.ServerFilter{AreaID: t.AreaID}, p)
			if err != nil {
				return nil, err
			}
			for _, srv := range srvs {
				if !seen[srv.ID] {
					seen[srv.ID] = true
					out = append(out, target{server: srv.ID})
				}
			}
			if len(srvs) == 0 || p.Num*p.Size >= total {
				break
			}
			p.Num++
		}
	case len(t.NodeIDs) > 0:
		for _, id := range t.NodeIDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			n, err := s.d.Node(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", id, err)
			}
			out = append(out, target{server: n.ServerID, node: n.ID})
		}
	default:
		nodes, err := s.d.ClusterNodes(ctx, t.ClusterID)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if t.Component == "" || n.Component == t.Component {
				out = append(out, target{server: n.ServerID, node: n.ID})
			}
		}
	}
	return out, nil
}

// run works through the targets: offline ones at once, the others
// Concurrency at a time.
func (s *Service) run(ctx context.Context, o *op, r Request, targets []target) {
	work := make(chan target)
	var wg sync.WaitGroup
	for range min(r.Concurrency, len(targets)) {
		wg.Go(func() {
			for t := range work {
				o.add(s.one(ctx, r, t))
			}
		})
	}
feed:
	for _, t := range targets {
		if !s.d.Agents.Online(t.server) {
			o.add(Result{ServerID: t.server, NodeID: t.node, Status: StatusOffline, Reason: "the server's agent has no session with this manager"})
			continue
		}
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		// Stopped: the targets not begun get a result too, so Done == Total.
		_, done, _ := o.snapshot(0)
		left := map[target]bool{}
		for _, t := range targets {
			left[t] = true
		}
		for _, d := range done {
			delete(left, target{server: d.ServerID, node: d.NodeID})
		}
		for _, t := range targets {
			if left[t] {
				o.add(Result{ServerID: t.server, NodeID: t.node, Status: StatusFailed, Reason: "not done: the manager is stopping"})
			}
		}
	}
	o.finish(s.d.Now())
}

// one runs the operation on one target within the request's timeout.
func (s *Service) one(ctx context.Context, r Request, t target) Result {
	res := Result{ServerID: t.server, NodeID: t.node}
	cctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	start := time.Now()
	var err error
	switch r.Kind {
	case KindPing:
		res.RTT, res.AgentVersion, err = s.d.Agents.Ping(cctx, t.server)
	case KindFacts:
		var f fleet.Facts
		if f, err = s.d.Agents.Facts(cctx, t.server); err == nil {
			res.Facts = &f
		}
	case KindCommand:
		var nr NodeResult
		if nr, err = s.d.NodeCommand(cctx, t.node, r.Command); err == nil {
			res.RunState, res.PID = nr.RunState, nr.PID
		}
	case KindLogLines:
		var b []byte
		if b, err = s.d.NodeLog(cctx, t.node, LogBytes); err == nil {
			res.Lines, res.Truncated = countLines(b), len(b) >= LogBytes
		}
	}
	res.Elapsed = time.Since(start)
	switch {
	case err == nil:
		res.Status = StatusOK
	case errors.Is(err, fleet.ErrAgentNotOnline):
		res.Status, res.Reason = StatusOffline, err.Error()
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		res.Status, res.Reason = StatusFailed, fmt.Sprintf("no answer within %v: %v", r.Timeout, err)
	default:
		res.Status, res.Reason = StatusFailed, err.Error()
	}
	return res
}

// countLines counts lines, a last one without its newline included.
func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// Get returns an operation and its results from the from-th on (0: all),
// and a channel closed at its next change.
func (s *Service) Get(id ids.ID, from int) (Operation, []Result, <-chan struct{}, error) {
	s.mu.Lock()
	o := s.ops[id]
	s.mu.Unlock()
	if o == nil {
		return Operation{}, nil, nil, ErrNotFound
	}
	info, rs, ch := o.snapshot(from)
	return info, rs, ch, nil
}

// List returns the kept operations, newest first.
func (s *Service) List() []Operation {
	s.mu.Lock()
	all := make([]*op, 0, len(s.ops))
	for _, o := range s.ops {
		all = append(all, o)
	}
	s.mu.Unlock()
	out := make([]Operation, 0, len(all))
	for _, o := range all {
		info, _, _ := o.snapshot(1 << 62)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Operation) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

// forgetOldLocked drops ended operations past Retention, then the oldest
// ended ones beyond MaxKept.
func (s *Service) forgetOldLocked() {
	now := s.d.Now()
	var ended []Operation
	for id, o := range s.ops {
		o.mu.Lock()
		info := o.info
		o.mu.Unlock()
		if info.State != StateDone {
			continue
		}
		if now.Sub(info.FinishedAt) > s.d.Retention {
			delete(s.ops, id)
			continue
		}
		ended = append(ended, info)
	}
	if extra := len(s.ops) - s.d.MaxKept + 1; extra > 0 {
		slices.SortFunc(ended, func(a, b Operation) int { return a.FinishedAt.Compare(b.FinishedAt) })
		for _, info := range ended[:min(extra, len(ended))] {
			delete(s.ops, info.ID)
		}
	}
}

// Close stops the operations under way (their remaining targets fail with
// a reason) and waits for them.
func (s *Service) Close() {
	s.once.Do(func() { close(s.stop) })
	s.mu.Lock()
	for _, o := range s.ops {
		o.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
