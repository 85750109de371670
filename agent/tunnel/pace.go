package tunnel

import (
	"sync/atomic"
	"time"

	"github.com/admq/admq-manager/internal/backoff"
)

// maxReconnectSpread bounds what a manager may ask for, so that a bad
// answer cannot keep an agent away for long.
const maxReconnectSpread = 10 * time.Minute

// pace is the manager's advice on reconnecting: how long to spread the
// reconnects of its whole fleet over after losing the sessions at once.
type pace struct{ spread atomic.Int64 }

// advise takes the reconnect_spread_ms of a manager's answer.
func (p *pace) advise(ms int64) {
	ms = min(max(ms, 0), maxReconnectSpread.Milliseconds())
	p.spread.Store(int64(time.Duration(ms) * time.Millisecond))
}

// restartWindow is how long after a lost session a refused connection
// means that the manager is restarting rather than gone.
const restartWindow = 30 * time.Second

// prepare shapes the wait before the next attempt. After a session that
// was up (hadSession), the first retry is spread over the manager's
// advice: when a manager restarts, its whole fleet loses its sessions at
// the same moment and would otherwise come back within a second, more
// than its handshake rate lets in. A connection refused within
// restartWindow of that (restarting: the manager's port is closed while
// it restarts, and a refusal costs it nothing) is retried the same way,
// without backing off further, so that agents are back as soon as it
// serves. The backoff's cap is at least the advice too, so that agents
// turned away by a busy manager still come back at that pace.
func (p *pace) prepare(b *backoff.Backoff, capMin time.Duration, hadSession, restarting bool) {
	spread := time.Duration(p.spread.Load())
	b.SetMax(max(capMin, spread))
	if restarting {
		b.Reset()
	}
	if hadSession || restarting {
		b.Spread(spread)
	}
}
