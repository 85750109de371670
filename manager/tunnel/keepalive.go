package tunnel

import (
	"context"
	"time"
)

// The manager checks its agents' sessions from one goroutine instead of
// yamux's keepalive goroutine per session: every sweep, a session that has
// sent nothing for KeepAliveInterval is pinged (its pong counts as hearing
// from it), and one that has sent nothing for IdleTimeout is closed. Agents
// that talk anyway (their own keepalives, heartbeats and metrics reports)
// are not pinged at all.

// maxPings bounds the pings in flight at once across all sessions.
const maxPings = 256

// sweep runs until ctx is done, every sweepEvery.
func (h *Hub) sweep(ctx context.Context) {
	every := min(h.cfg.KeepAliveInterval, h.cfg.IdleTimeout) / 5
	t := time.NewTicker(max(every, 50*time.Millisecond))
	defer t.Stop()
	sem := make(chan struct{}, maxPings)
	var quiet, dead []*session
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		quiet, dead = quiet[:0], dead[:0]
		h.mu.Lock()
		for _, s := range h.sessions {
			switch silent := s.conn.silentFor(now); {
			case silent >= h.cfg.IdleTimeout:
				dead = append(dead, s)
			case silent >= h.cfg.KeepAliveInterval && !s.pinging.Load():
				quiet = append(quiet, s)
			}
		}
		h.mu.Unlock()
		for _, s := range dead {
			h.log.Info("agent silent; closing its session", "agent", s.id, "silentFor", s.conn.silentFor(now).Round(time.Millisecond))
			h.metrics.silentClosed.Inc()
			s.mux.Close()
		}
		for _, s := range quiet {
			select {
			case sem <- struct{}{}:
			default:
				continue // next sweep
			}
			s.pinging.Store(true)
			go func() {
				defer func() { <-sem }()
				defer s.pinging.Store(false)
				_, _ = s.mux.Ping() // the pong is what counts; a failure closes the session
			}()
		}
	}
}
