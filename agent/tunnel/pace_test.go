package tunnel

import (
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/backoff"
)

// drawn returns the ceiling of the range the backoff's next delay is
// drawn from, with the delay at the top of it.
func drawn(b *backoff.Backoff) time.Duration { return b.Next() }

func TestPaceSpreadsTheFirstRetryAfterASession(t *testing.T) {
	var p pace
	p.advise(10_000)
	// Many agents: their first retries cover the advised spread, not only
	// the backoff's first second.
	var over2s int
	for range 200 {
		b := backoff.New(time.Second, 15*time.Second)
		p.prepare(b, 15*time.Second, true, false)
		d := drawn(b)
		if d < 0 || d >= 10*time.Second {
			t.Fatalf("first retry after %v, want in [0, 10s)", d)
		}
		if d >= 2*time.Second {
			over2s++
		}
	}
	if over2s < 100 {
		t.Fatalf("only %d of 200 first retries after 2s or more: not spread over 10s", over2s)
	}
}

func TestPaceLeavesFailedAttemptsToTheBackoff(t *testing.T) {
	var p pace
	p.advise(10_000)
	for range 100 {
		b := backoff.New(time.Second, 15*time.Second)
		p.prepare(b, 15*time.Second, false, false) // no session was up: a failed dial
		if d := drawn(b); d >= time.Second {
			t.Fatalf("first retry after a failed dial %v, want the backoff's [0, 1s)", d)
		}
	}
}

func TestPaceSmallFleetReconnectsAtOnce(t *testing.T) {
	var p pace
	p.advise(50) // 50 agents at 1,000 handshakes a second
	for range 100 {
		b := backoff.New(time.Second, 15*time.Second)
		p.prepare(b, 15*time.Second, true, false)
		if d := drawn(b); d >= time.Second {
			t.Fatalf("first retry %v; a small fleet should be back within the backoff's first second", d)
		}
	}
}

func TestPaceRaisesTheCapToTheSpread(t *testing.T) {
	var p pace
	p.advise(int64(100 * time.Second / time.Millisecond)) // 100,000 agents
	b := backoff.New(time.Second, 15*time.Second)
	var maxSeen time.Duration
	for range 300 {
		p.prepare(b, 15*time.Second, false, false)
		maxSeen = max(maxSeen, drawn(b))
	}
	if maxSeen <= 15*time.Second || maxSeen >= 100*time.Second {
		t.Fatalf("longest of 300 backoff delays %v, want above the 15s cap and below the 100s spread", maxSeen)
	}
}

func TestPaceBoundsTheAdvice(t *testing.T) {
	var p pace
	for _, ms := range []int64{-5, 1 << 62} {
		p.advise(ms)
		b := backoff.New(time.Second, 15*time.Second)
		p.prepare(b, 15*time.Second, true, false)
		if d := drawn(b); d < 0 || d >= maxReconnectSpread {
			t.Fatalf("advice %d ms: first retry %v, want in [0, %v)", ms, d, maxReconnectSpread)
		}
	}
}

func TestPaceDoesNotBackOffWhileTheManagerRestarts(t *testing.T) {
	var p pace
	p.advise(2_000)
	b := backoff.New(time.Second, 15*time.Second)
	p.prepare(b, 15*time.Second, true, false)
	b.Next()
	// The manager's port refuses connections: it is restarting. However
	// often that happens, the retries stay within the spread.
	for range 20 {
		p.prepare(b, 15*time.Second, false, true)
		if d := drawn(b); d >= 2*time.Second {
			t.Fatalf("retry after a refusal while restarting: %v, want in [0, 2s)", d)
		}
	}
	// Any other failure backs off as before: the ceiling doubles.
	var maxSeen time.Duration
	for range 8 {
		p.prepare(b, 15*time.Second, false, false)
		maxSeen = max(maxSeen, drawn(b))
	}
	if maxSeen < 2*time.Second {
		t.Fatalf("eight failed attempts never waited 2s or more (%v): no backoff", maxSeen)
	}
}
