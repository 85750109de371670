package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// Cleanup is a node of a deleted cluster that its agent has yet to stop
// and remove: the agent was offline when the cluster was deleted, or went
// away during the removal. Until then the agent keeps supervising the node
// (restarting it on crash, adopting it again when the agent restarts), so
// the removal is queued and sent, as the same request, once the agent is
// back.
type Cleanup struct {
	ID       ids.ID
	ServerID ids.ID
	// ManagerIP is the server's address; filled when read back.
	ManagerIP string
	// Node is the name the agent knows the node by: the deleted node's id.
	Node        string
	ClusterName string
	// OperationID is the removal's: a removal the agent applied already
	// is not done twice.
	OperationID  string
	ProgramDir   string
	DataDir      string
	AllowedRoots []string
	// Reason says why the removal was queued.
	Reason    string
	CreatedAt time.Time
	// Attempts counts the removals tried since and LastError says how the
	// last one failed, at LastAttemptAt.
	Attempts      int
	LastError     string
	LastAttemptAt time.Time
}

// Request is the removal the agent is sent: the one Teardown sends.
func (c Cleanup) Request() RemoveRequest {
	return RemoveRequest{
		OperationID: c.OperationID, Name: c.Node, RemoveDirs: len(c.AllowedRoots) > 0,
		ProgramDir: c.ProgramDir, DataDir: c.DataDir, AllowedRoots: c.AllowedRoots,
	}
}

// CleanupStore keeps the queued cleanups; *store.DB implements it. A
// server's cleanups go with the server.
type CleanupStore interface {
	// QueueCleanup stores c; a cleanup queued before for the same server
	// and node is replaced (its attempts start again from 0).
	QueueCleanup(ctx context.Context, c Cleanup) error
	// ServerCleanups returns the server's cleanups, oldest first.
	ServerCleanups(ctx context.Context, serverID ids.ID) ([]Cleanup, error)
	// CleanupServers returns the servers that have cleanups.
	CleanupServers(ctx context.Context) ([]ids.ID, error)
	// Cleanups returns one page of the cleanups, oldest first, of one
	// server (all when serverID is zero), and the total.
	Cleanups(ctx context.Context, serverID ids.ID, p paging.Page) ([]Cleanup, int, error)
	// DeleteCleanup removes a cleanup; one already gone is no error.
	DeleteCleanup(ctx context.Context, id ids.ID) error
	// CleanupFailed counts a failed attempt with its error.
	CleanupFailed(ctx context.Context, id ids.ID, lastError string, at time.Time) error
}

// Cleanup timing.
const (
	// CleanupSweepInterval is how often RunCleanups retries the cleanups of
	// servers whose agent is online, in case an agent's connection was
	// missed or a removal failed; a reconnecting agent's cleanups run at
	// once.
	CleanupSweepInterval = time.Minute
	// CleanupMaxDelay caps the wait between a sweep's retries of a removal
	// that keeps failing (1, 2, 4 … minutes after its last attempt).
	CleanupMaxDelay = time.Hour
	// CleanupTimeout bounds one removal: the agent stops the node (TERM,
	// then KILL after its grace) and deletes its dirs.
	CleanupTimeout = 5 * time.Minute
)

// Reasons a node was queued for cleanup, as DELETE /cluster reports them.
const (
	ReasonQueuedOffline = "agent offline: cleaned when it reconnects"
	reasonQueuedLost    = "the agent went away during the removal (%v): cleaned when it reconnects"
)

// cleanupState is what the engine keeps of cleanups running or wanted.
type cleanupState struct {
	mu sync.Mutex
	// kicked are servers whose agent connected and whose cleanups have
	// not run since; running are those running now.
	kicked  map[ids.ID]bool
	running map[ids.ID]bool
	wake    chan struct{}
}

func (s *cleanupState) init() {
	if s.wake == nil {
		s.kicked, s.running, s.wake = map[ids.ID]bool{}, map[ids.ID]bool{}, make(chan struct{}, 1)
	}
}

func (s *cleanupState) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *cleanupState) wakeup() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.wake
}

// AgentConnected has RunCleanups run the server's queued cleanups now, and
// asks the agent how the config applies it was given and the manager did
// not see end went; the tunnel calls it when an agent's session comes up.
// It does not block.
func (e *Engine) AgentConnected(server ids.ID) {
	// Applies cut short while the agent (or the manager) was away are
	// settled from the agent's records.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.reconcile(server)
	}()
	if e.d.Cleanups == nil {
		return
	}
	s := &e.cleanup
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.kicked[server] = true
	s.signal()
}

// RunCleanups runs queued cleanups until ctx is done: a server's when its
// agent connects (AgentConnected), and every CleanupSweepInterval those of
// servers whose agent is online, each at most once at a time. It returns
// when ctx is done and the removals under way have ended.
func (e *Engine) RunCleanups(ctx context.Context) error {
	if e.d.Cleanups == nil {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	s := &e.cleanup
	start := func(server ids.ID, sweep bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.running[server] {
			return
		}
		s.running[server] = true
		delete(s.kicked, server)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.cleanServer(ctx, server, sweep); err != nil && ctx.Err() == nil {
				e.d.Log.Warn("queued node cleanups", "server", server, "err", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.running, server)
			if s.kicked[server] { // it reconnected meanwhile
				s.signal()
			}
		}()
	}
	wake := s.wakeup()
	t := time.NewTicker(CleanupSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			s.mu.Lock()
			var servers []ids.ID
			for id := range s.kicked {
				if !s.running[id] {
					servers = append(servers, id)
				}
			}
			s.mu.Unlock()
			for _, id := range servers {
				start(id, false)
			}
		case <-t.C:
			servers, err := e.d.Cleanups.CleanupServers(ctx)
			if err != nil {
				e.d.Log.Warn("list queued node cleanups", "err", err)
				continue
			}
			for _, id := range servers {
				if e.d.Agents.Online(id) {
					start(id, true)
				}
			}
		}
	}
}

// CleanServer sends the server's queued cleanups to its agent now, one
// after the other, and deletes those that succeed; a failed one is kept
// with its error and tried again later. It returns how many were done. A
// cleanup whose node is still recorded (its cluster's delete has not
// finished, or failed) is left for later.
func (e *Engine) CleanServer(ctx context.Context, server ids.ID) (int, error) {
	return e.cleanServer(ctx, server, false)
}

// cleanServer is CleanServer; a sweep skips cleanups retried too recently.
func (e *Engine) cleanServer(ctx context.Context, server ids.ID, sweep bool) (int, error) {
	if e.d.Cleanups == nil {
		return 0, nil
	}
	list, err := e.d.Cleanups.ServerCleanups(ctx, server)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, c := range list {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if !e.d.Agents.Online(server) {
			return done, nil // the next connection runs the rest
		}
		if sweep && !cleanupDue(c, e.d.Now()) {
			continue
		}
		if recorded, err := e.nodeRecorded(ctx, c.Node); err != nil || recorded {
			if err != nil {
				return done, err
			}
			e.d.Log.Info("queued node cleanup waits: its node is still recorded", "server", server, "node", c.Node, "cluster", c.ClusterName)
			continue
		}
		log := e.d.Log.With("server", server, "managerIp", c.ManagerIP, "node", c.Node, "cluster", c.ClusterName)
		cctx, cancel := context.WithTimeout(ctx, CleanupTimeout)
		kept, err := e.d.Agents.RemoveNode(cctx, server, c.Request())
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return done, ctx.Err() // shutting down: not the removal's fault
			}
			log.Warn("queued node cleanup failed; kept to retry", "attempt", c.Attempts+1, "err", err)
			if ferr := e.d.Cleanups.CleanupFailed(ctx, c.ID, truncate(err.Error(), 8<<10), e.d.Now()); ferr != nil {
				return done, ferr
			}
			if errors.Is(err, fleet.ErrAgentNotOnline) {
				return done, nil
			}
			continue
		}
		if err := e.d.Cleanups.DeleteCleanup(ctx, c.ID); err != nil {
			return done, err
		}
		done++
		if len(kept) > 0 {
			log.Warn("queued node cleanup done: node stopped and removed, dirs kept",
				"programDir", c.ProgramDir, "dataDir", c.DataDir, "kept", keptReport(cluster.Node{}, kept).Reason,
				"queuedFor", e.d.Now().Sub(c.CreatedAt).Round(time.Second))
			continue
		}
		log.Info("queued node cleanup done: node stopped and removed, dirs deleted",
			"programDir", c.ProgramDir, "dataDir", c.DataDir, "queuedFor", e.d.Now().Sub(c.CreatedAt).Round(time.Second))
	}
	return done, nil
}

// cleanupDue reports whether a sweep tries c at now: at once if it was
// never tried, else 1, 2, 4 … minutes (at most CleanupMaxDelay) after its
// last attempt, less half a sweep so that the sweep after the delay
// catches it. A removal that keeps failing costs a log line an hour.
func cleanupDue(c Cleanup, now time.Time) bool {
	if c.Attempts == 0 {
		return true
	}
	delay := CleanupMaxDelay
	if c.Attempts <= 10 {
		delay = min(CleanupSweepInterval<<(c.Attempts-1), CleanupMaxDelay)
	}
	return now.Sub(c.LastAttemptAt) >= delay-CleanupSweepInterval/2
}

// nodeRecorded reports whether the node named name still has a record.
func (e *Engine) nodeRecorded(ctx context.Context, name string) (bool, error) {
	id, err := ids.Parse(name)
	if err != nil {
		return false, nil // not a node id: not ours to find
	}
	_, err = e.d.Clusters.Node(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cluster.ErrNodeNotFound):
		return false, nil
	}
	return false, err
}

// Cleanups returns one page of the queued cleanups, oldest first, of one
// server (all when serverID is zero), and the total.
func (e *Engine) Cleanups(ctx context.Context, serverID ids.ID, p paging.Page) ([]Cleanup, int, error) {
	if e.d.Cleanups == nil {
		return nil, 0, nil
	}
	return e.d.Cleanups.Cleanups(ctx, serverID, p)
}

// queueCleanup stores the removal req of node n of cluster c for when its
// agent is back. It is stored even when ctx is cancelled (the caller went
// away): the node is not cleaned either way.
func (e *Engine) queueCleanup(ctx context.Context, c cluster.Cluster, n cluster.Node, req RemoveRequest, reason string) error {
	if e.d.Cleanups == nil {
		return errors.New("no cleanup queue")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := e.d.Cleanups.QueueCleanup(ctx, Cleanup{
		ID: e.d.IDs.Next(), ServerID: n.ServerID, ManagerIP: n.ManagerIP, Node: req.Name, ClusterName: c.Name,
		OperationID: req.OperationID, ProgramDir: req.ProgramDir, DataDir: req.DataDir, AllowedRoots: req.AllowedRoots,
		Reason: reason, CreatedAt: e.d.Now(),
	})
	if err != nil {
		return fmt.Errorf("queue cleanup of node %s on %s: %w", n.NodeDir, n.ManagerIP, err)
	}
	return nil
}

// lostDuring reports whether err, from a removal, leaves the node for a
// later try: the agent went away or did not answer in time. A refusal (a
// dir outside the allowed roots, say) would be refused again.
func lostDuring(err error) bool {
	return errors.Is(err, fleet.ErrAgentNotOnline) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
