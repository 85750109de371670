package fleet

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// DefaultPresenceRefresh is how often the row of an agent that keeps
// reporting the same facts is written all the same (its last seen time,
// and its memory and disk figures if they moved a little).
const DefaultPresenceRefresh = 5 * time.Minute

// PresenceTracker knows which agents are connected to this manager and
// writes their comings, goings and facts to the store in batches, so that
// 10,000 reporting agents cost one transaction a second, not 10,000.
//
// It writes only what an operator reads from the store and would miss:
//   - a status change (connected, disconnected) with its time, at the next
//     flush;
//   - facts whose fixed part (all but MemoryAvailable and DiskFree)
//     changed, at the next flush;
//   - MemoryAvailable or DiskFree when either moved by at least 5 % of its
//     total or a quarter of the value written (a nearly full disk is
//     followed closely), at the next flush;
//   - otherwise, every refresh interval of an agent that reports: its last
//     seen time, and its facts if they differ at all from those written.
//
// While the manager runs, the API shows the live status and last seen time
// from the tracker (Service.overlay), so the lag of the store shows only in
// the memory and disk figures and after a crash: a crashed manager leaves
// an online agent's last seen time at most a refresh interval and a report
// old, and its facts as described above.
//
// Per agent it keeps a fingerprint of what it wrote, not the facts.
type PresenceTracker struct {
	store Store
	now   func() time.Time
	every time.Duration
	log   *slog.Logger
	seed  maphash.Seed

	mu      sync.Mutex
	refresh time.Duration
	agents  map[ids.ID]agentPresence
	pending map[ids.ID]Presence
}

// agentPresence is what the tracker keeps of one agent it has heard from
// since the manager started.
type agentPresence struct {
	online bool
	// seen is when the agent was last heard from, saved when its row was
	// last queued for writing, both in Unix nanoseconds.
	seen, saved int64
	// fixed is the fingerprint of the fixed facts queued for writing (0:
	// none yet), mem and disk the MemoryAvailable and DiskFree queued.
	fixed     uint64
	mem, disk uint64
}

// NewPresenceTracker returns a tracker that flushes every interval and
// refreshes rows every DefaultPresenceRefresh.
func NewPresenceTracker(store Store, now func() time.Time, every time.Duration, log *slog.Logger) *PresenceTracker {
	return &PresenceTracker{
		store: store, now: now, every: every, log: log, seed: maphash.MakeSeed(),
		refresh: DefaultPresenceRefresh,
		agents:  make(map[ids.ID]agentPresence),
		pending: make(map[ids.ID]Presence),
	}
}

// SetRefresh sets how often the row of an agent whose facts have not moved
// is written (DefaultPresenceRefresh unless set; d must be positive).
func (p *PresenceTracker) SetRefresh(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh = d
}

// Connected records that the agent's session is up.
func (p *PresenceTracker) Connected(id ids.ID) {
	p.setStatus(id, true)
}

// Disconnected records that the agent's session ended.
func (p *PresenceTracker) Disconnected(id ids.ID) {
	p.setStatus(id, false)
}

func (p *PresenceTracker) setStatus(id ids.ID, online bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	a := p.agents[id]
	a.online = online
	a.seen, a.saved = now.UnixNano(), now.UnixNano()
	p.agents[id] = a
	p.queue(Presence{ServerID: id, Status: statusOf(online), LastSeen: now})
}

// Heartbeat records the facts an agent reported, and queues them for
// writing when they changed as the type's comment says.
func (p *PresenceTracker) Heartbeat(id ids.ID, f Facts) {
	fixed := p.fingerprint(f)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	a := p.agents[id]
	if a.online {
		a.seen = now.UnixNano()
	}
	var write bool
	switch {
	case fixed != a.fixed || moved(a.mem, f.MemoryAvailable, f.MemoryTotal) || moved(a.disk, f.DiskFree, f.DiskTotal):
		write = true
	case now.UnixNano()-a.saved >= int64(p.refresh):
		write = a.mem != f.MemoryAvailable || a.disk != f.DiskFree
	default:
		p.agents[id] = a
		return
	}
	u := Presence{ServerID: id, Status: statusOf(a.online), LastSeen: now}
	if write {
		kept := f // a copy: f itself stays on the stack when nothing is written
		u.Facts = &kept
		a.fixed, a.mem, a.disk = fixed, f.MemoryAvailable, f.DiskFree
	}
	a.saved = now.UnixNano()
	p.agents[id] = a
	p.queue(u)
}

// fingerprint hashes the facts but MemoryAvailable and DiskFree; never 0.
func (p *PresenceTracker) fingerprint(f Facts) uint64 {
	f.MemoryAvailable, f.DiskFree = 0, 0
	return maphash.Comparable(p.seed, f) | 1
}

// moved reports whether a volatile figure moved from was to now by at
// least 5 % of total or a quarter of was.
func moved(was, now, total uint64) bool {
	d := max(was, now) - min(was, now)
	return d > 0 && (d >= total/20 || d >= was/4)
}

func statusOf(online bool) AgentStatus {
	if online {
		return StatusOnline
	}
	return StatusOffline
}

// queue adds u to the pending updates; facts queued earlier and not yet
// written stay queued when u carries none.
func (p *PresenceTracker) queue(u Presence) {
	if old, ok := p.pending[u.ServerID]; ok && u.Facts == nil {
		u.Facts = old.Facts
	}
	p.pending[u.ServerID] = u
}

// Online reports whether the agent has a live session on this manager.
func (p *PresenceTracker) Online(id ids.ID) bool {
	_, ok := p.LastSeen(id)
	return ok
}

// LastSeen returns when a connected agent was last heard from; ok is false
// when it is not connected.
func (p *PresenceTracker) LastSeen(id ids.ID) (t time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.agents[id]
	if !a.online {
		return time.Time{}, false
	}
	return time.Unix(0, a.seen), true
}

// Live returns the ids of all connected agents.
func (p *PresenceTracker) Live() []ids.ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ids.ID, 0, len(p.agents))
	for id, a := range p.agents {
		if a.online {
			out = append(out, id)
		}
	}
	return out
}

// Forget drops what the tracker holds for a deleted server.
func (p *PresenceTracker) Forget(id ids.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, id)
	delete(p.agents, id)
}

// Run flushes pending updates until ctx is done, then flushes once more.
func (p *PresenceTracker) Run(ctx context.Context) error {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// A flush under way when shutdown begins must finish, not fail:
			// it carries updates the final flush below would otherwise redo.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			p.Flush(fctx)
			cancel()
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			p.Flush(fctx)
			return nil
		}
	}
}

// Flush writes the pending updates now. On failure they are kept, under
// any newer update for the same server that arrived meanwhile (whose facts
// win, if it has any), and retried next time.
func (p *PresenceTracker) Flush(ctx context.Context) {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return
	}
	batch := make([]Presence, 0, len(p.pending))
	for _, u := range p.pending {
		batch = append(batch, u)
	}
	// A new map, not clear: a burst (10,000 agents reconnecting) would
	// otherwise keep its buckets for good.
	p.pending = make(map[ids.ID]Presence)
	p.mu.Unlock()

	if err := p.store.SavePresence(ctx, batch); err != nil {
		p.log.Error("save agent presence; will retry", "updates", len(batch), "err", err)
		p.mu.Lock()
		for _, u := range batch {
			if newer, ok := p.pending[u.ServerID]; ok {
				if newer.Facts == nil {
					newer.Facts = u.Facts
					p.pending[u.ServerID] = newer
				}
				continue
			}
			p.pending[u.ServerID] = u
		}
		p.mu.Unlock()
	}
}
