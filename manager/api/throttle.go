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

	mu      sync.Mutex
	keys    map[throttleKey]*throttled
	maxKeys int // bound of keys (maxThrottled)
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

// maxThrottled bounds the table. When it fills, entries that have
// refilled are dropped; when it is still full, every one of them is a
// recent failure and an attempt needing a new entry is refused (fail
// closed: dropping a live entry would wipe a throttled guesser's record,
// and never dropping one would let a spray of names or addresses grow the
// table without end).
const maxThrottled = 10_000

// maxThrottledName bounds a username kept as a key; longer names are no
// user's (and are cut, not refused: the check says so).
const maxThrottledName = 128

func newLoginThrottle(every time.Duration, perAddr, perUser int, now func() time.Time) *loginThrottle {
	return &loginThrottle{every: every, perAddr: perAddr, perUser: perUser, now: now, keys: make(map[throttleKey]*throttled), maxKeys: maxThrottled}
}

// reserve takes one attempt from addr's and user's allowances. When
// either is used up it takes nothing and returns how long to wait; when
// the table is full of recent failures and either is new, it takes
// nothing and returns the wait with full set. Otherwise it returns a func
// that gives the attempt back, for a login that succeeded.
func (t *loginThrottle) reserve(addr, user string) (wait time.Duration, full bool, refund func()) {
	if len(user) > maxThrottledName {
		user = user[:maxThrottledName]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	ka, ku := throttleKey{name: addr}, throttleKey{user: true, name: user}
	if wait, full := t.roomLocked(now, ka, ku); full {
		return wait, true, nil
	}
	a := t.entryLocked(ka, t.perAddr, now)
	u := t.entryLocked(ku, t.perUser, now)
	if wait = max(delay(a.lim, now), delay(u.lim, now)); wait > 0 {
		return wait, false, nil
	}
	ra, ru := a.lim.ReserveN(now, 1), u.lim.ReserveN(now, 1)
	a.last, u.last = now, now
	return 0, false, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		// Cancelled as of when it was taken: rate.Reservation.CancelAt
		// gives nothing back for a time after the reservation's, and the
		// password check in between takes tens of milliseconds, so every
		// right password used to keep its attempt.
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

// roomLocked makes room for the keys among ks that have no entry yet.
// When there is none even after pruning, it says how long until the
// oldest entry may be pruned.
func (t *loginThrottle) roomLocked(now time.Time, ks ...throttleKey) (wait time.Duration, full bool) {
	need := 0
	for _, k := range ks {
		if t.keys[k] == nil {
			need++
		}
	}
	if need == 0 || len(t.keys)+need <= t.maxKeys {
		return 0, false
	}
	t.pruneLocked(now)
	if len(t.keys)+need <= t.maxKeys {
		return 0, false
	}
	wait = t.every * time.Duration(max(t.perAddr, t.perUser)) // all prunable by then
	for _, c := range t.keys {
		wait = min(wait, c.last.Add(t.every*time.Duration(c.lim.Burst())).Sub(now))
	}
	return max(wait, time.Second), true
}

func (t *loginThrottle) entryLocked(k throttleKey, burst int, now time.Time) *throttled {
	c := t.keys[k]
	if c == nil {
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
