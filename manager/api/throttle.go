package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// loginThrottle slows password guessing, per client address and per
// username: each may fail a few logins in a row, then one more every
// interval. An attempt is taken from both allowances before the password
// is checked (and given back when it was right), so parallel requests
// cannot all be checked before the first failure is counted. While either
// allowance is used up even a right password is refused, so guessing
// gains nothing.
type loginThrottle struct {
	every   time.Duration
	perAddr int
	perUser int
	now     func() time.Time

	mu   sync.Mutex
	keys map[throttleKey]*throttled
}

// throttleKey is a client address or a username.
type throttleKey struct {
	user bool
	name string
}

type throttled struct {
	lim  *rate.Limiter
	last time.Time
}

// maxThrottled bounds the table; idle entries are dropped when it fills.
const maxThrottled = 10_000

// maxThrottledName bounds a username kept as a key; longer names are no
// user's (and are cut, not refused: the check says so).
const maxThrottledName = 128

func newLoginThrottle(every time.Duration, perAddr, perUser int, now func() time.Time) *loginThrottle {
	return &loginThrottle{every: every, perAddr: perAddr, perUser: perUser, now: now, keys: make(map[throttleKey]*throttled)}
}

// reserve takes one attempt from addr's and user's allowances. When
// either is used up it takes nothing and returns how long to wait;
// otherwise it returns a func that gives the attempt back, for a login
// that succeeded.
func (t *loginThrottle) reserve(addr, user string) (wait time.Duration, refund func()) {
	if len(user) > maxThrottledName {
		user = user[:maxThrottledName]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := t.entryLocked(throttleKey{name: addr}, t.perAddr, now)
	u := t.entryLocked(throttleKey{user: true, name: user}, t.perUser, now)
	if wait = max(delay(a.lim, now), delay(u.lim, now)); wait > 0 {
		return wait, nil
	}
	ra, ru := a.lim.ReserveN(now, 1), u.lim.ReserveN(now, 1)
	a.last, u.last = now, now
	return 0, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		now := t.now()
		ra.CancelAt(now)
		ru.CancelAt(now)
	}
}

// delay is how long lim needs to hold one token again.
func delay(lim *rate.Limiter, now time.Time) time.Duration {
	if lim.TokensAt(now) >= 1 {
		return 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

func (t *loginThrottle) entryLocked(k throttleKey, burst int, now time.Time) *throttled {
	c := t.keys[k]
	if c == nil {
		if len(t.keys) >= maxThrottled {
			t.pruneLocked(now)
		}
		c = &throttled{lim: rate.NewLimiter(rate.Every(t.every), burst), last: now}
		t.keys[k] = c
	}
	return c
}

// pruneLocked drops entries that have refilled completely.
func (t *loginThrottle) pruneLocked(now time.Time) {
	for k, c := range t.keys {
		if now.Sub(c.last) > t.every*time.Duration(c.lim.Burst()) {
			delete(t.keys, k)
		}
	}
}
