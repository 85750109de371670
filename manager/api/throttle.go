package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// loginThrottle slows password guessing: each client address may fail a
// few logins in a row, then one more every interval. While it is throttled
// even a right password is refused, so guessing gains nothing.
type loginThrottle struct {
	every time.Duration
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*throttled
}

type throttled struct {
	lim  *rate.Limiter
	last time.Time
}

// maxThrottled bounds the table; idle entries are dropped when it fills.
const maxThrottled = 10_000

func newLoginThrottle(every time.Duration, burst int, now func() time.Time) *loginThrottle {
	return &loginThrottle{every: every, burst: burst, now: now, clients: make(map[string]*throttled)}
}

// retryAfter says how long addr must wait before its next attempt; zero
// means it may try now.
func (t *loginThrottle) retryAfter(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[addr]
	if c == nil {
		return 0
	}
	now := t.now()
	if c.lim.TokensAt(now) >= 1 {
		return 0
	}
	r := c.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// failed records a failed login from addr.
func (t *loginThrottle) failed(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	c := t.clients[addr]
	if c == nil {
		if len(t.clients) >= maxThrottled {
			t.pruneLocked(now)
		}
		c = &throttled{lim: rate.NewLimiter(rate.Every(t.every), t.burst)}
		t.clients[addr] = c
	}
	c.lim.AllowN(now, 1)
	c.last = now
}

// pruneLocked drops entries that have refilled completely.
func (t *loginThrottle) pruneLocked(now time.Time) {
	full := t.every * time.Duration(t.burst)
	for addr, c := range t.clients {
		if now.Sub(c.last) > full {
			delete(t.clients, addr)
		}
	}
}
