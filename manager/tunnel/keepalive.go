package tunnel

import (
	"context"
	"time"
)

// The manager checks its agents' sessions from one goroutine instead of
// yamux's keepalive goroutine per session: every sweep, a session that has
// sent nothing for IdleTimeout is closed. An agent that sends heartbeats
// (muxframe.Beat, whenever it has written nothing for a few seconds) says
// it is alive on its own, and the manager writes nothing to it for that:
// at 10,000 idle agents the pings and pongs were most of the manager's
// idle CPU. An agent from before heartbeats that has sent nothing for
// KeepAliveInterval is pinged, and its pong counts as hearing from it.

// maxPings bounds the pings in flight at once across all sessions (each
// waits in a goroutine of its own for its pong, a few KB). It must cover
// the pings a whole fleet of agents from before heartbeats needs: such an
// idle agent is pinged about every
// KeepAliveInterval, so 10,000 agents need some 2,000 pings a second, and
// a bound of 256 held them to 256 per round trip: at a round trip of 1 s
// on a busy machine, thousands of sessions that would have answered went
// unpinged for IdleTimeout and were closed, and their reconnects made the
// machine busier still.
const maxPings = 4096

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
		longest := time.Duration(-1) // of the sessions kept
		h.mu.Lock()
		for _, s := range h.sessions {
			silent := s.conn.silentFor(now)
			switch {
			case silent >= h.cfg.IdleTimeout:
				dead = append(dead, s)
				continue
			case silent >= h.cfg.KeepAliveInterval && !s.conn.beats.Load() && !s.pinging.Load():
				quiet = append(quiet, s)
			}
			longest = max(longest, silent)
		}
		h.mu.Unlock()
		if longest >= 0 {
			h.metrics.longestSilence.Observe(longest.Seconds())
		}
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
			h.metrics.pings.Inc()
			go func() {
				defer func() { <-sem }()
				defer s.pinging.Store(false)
				_, _ = s.mux.Ping() // the pong is what counts; a failure closes the session
			}()
		}
	}
}
