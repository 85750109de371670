// Package backoff computes reconnect delays: capped exponential backoff with
// full jitter, so that thousands of agents that lost the same manager do not
// come back in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields successive delays. The zero value is not usable; use New.
// It is not safe for concurrent use.
type Backoff struct {
	base, max time.Duration
	attempt   int
	spread    time.Duration // for the next delay only; see Spread
	rand      func(n int64) int64
}

// New returns a Backoff whose n-th delay is uniform in [0, min(max, base*2^n)).
func New(base, max time.Duration) *Backoff {
	return &Backoff{base: base, max: max, rand: rand.Int64N}
}

// Next returns the next delay and advances the attempt count.
func (b *Backoff) Next() time.Duration {
	ceil := b.max
	if b.attempt < 62 {
		if d := b.base << b.attempt; d > 0 && d < b.max {
			ceil = d
		}
	}
	b.attempt++
	if b.spread > ceil {
		ceil = b.spread
	}
	b.spread = 0
	if ceil <= 0 {
		return 0
	}
	return time.Duration(b.rand(int64(ceil)))
}

// Spread widens the next delay, and only that one, to uniform in [0, d)
// when d is longer than its ceiling. Clients that all lost the same
// server at once (it restarted) then come back spread over d, at a pace
// the server can take, instead of all within the first second.
func (b *Backoff) Spread(d time.Duration) { b.spread = d }

// SetMax changes the cap of the delays to come.
func (b *Backoff) SetMax(max time.Duration) { b.max = max }

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for the next delay or until ctx is done, whichever is first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
