package fleet

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// PresenceTracker knows which agents are connected to this manager and
// writes their comings, goings and facts to the store in batches, so that
// 10,000 heartbeating agents cost one transaction a second, not 10,000.
type PresenceTracker struct {
	store Store
	now   func() time.Time
	every time.Duration
	log   *slog.Logger

	mu sync.Mutex
	// live maps each connected agent to when it was last heard from.
	live    map[ids.ID]time.Time
	pending map[ids.ID]Presence
}

// NewPresenceTracker returns a tracker that flushes every interval.
func NewPresenceTracker(store Store, now func() time.Time, every time.Duration, log *slog.Logger) *PresenceTracker {
	return &PresenceTracker{
		store: store, now: now, every: every, log: log,
		live:    make(map[ids.ID]time.Time),
		pending: make(map[ids.ID]Presence),
	}
}

// Connected records that the agent's session is up.
func (p *PresenceTracker) Connected(id ids.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.live[id] = now
	u := p.pending[id]
	u.ServerID, u.Status, u.LastSeen = id, StatusOnline, now
	p.pending[id] = u
}

// Disconnected records that the agent's session ended.
func (p *PresenceTracker) Disconnected(id ids.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.live, id)
	u := p.pending[id]
	u.ServerID, u.Status, u.LastSeen = id, StatusOffline, p.now()
	p.pending[id] = u
}

// Heartbeat records the facts an agent reported.
func (p *PresenceTracker) Heartbeat(id ids.ID, f Facts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	status := StatusOffline
	if _, ok := p.live[id]; ok {
		status = StatusOnline
		p.live[id] = now
	}
	p.pending[id] = Presence{ServerID: id, Status: status, LastSeen: now, Facts: &f}
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
	t, ok = p.live[id]
	return t, ok
}

// Live returns the ids of all connected agents.
func (p *PresenceTracker) Live() []ids.ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ids.ID, 0, len(p.live))
	for id := range p.live {
		out = append(out, id)
	}
	return out
}

// Forget drops what the tracker holds for a deleted server.
func (p *PresenceTracker) Forget(id ids.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, id)
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

// Flush writes the pending updates now. On failure they are kept, unless a
// newer update for the same server arrived meanwhile, and retried next time.
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
	p.pending = make(map[ids.ID]Presence, len(batch))
	p.mu.Unlock()

	if err := p.store.SavePresence(ctx, batch); err != nil {
		p.log.Error("save agent presence; will retry", "updates", len(batch), "err", err)
		p.mu.Lock()
		for _, u := range batch {
			if _, newer := p.pending[u.ServerID]; !newer {
				p.pending[u.ServerID] = u
			}
		}
		p.mu.Unlock()
	}
}
