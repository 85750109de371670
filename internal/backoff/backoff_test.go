package backoff

import (
	"testing"
	"time"
)

func TestNextStaysUnderGrowingCap(t *testing.T) {
	b := New(100*time.Millisecond, 2*time.Second)
	var maxSeen time.Duration
	b.rand = func(n int64) int64 { // always the top of the range
		if time.Duration(n) > maxSeen {
			maxSeen = time.Duration(n)
		}
		return n - 1
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, w := range want {
		got := b.Next()
		if got != w*time.Millisecond-1 {
			t.Fatalf("attempt %d: got %v, want just under %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 100*time.Millisecond-1 {
		t.Fatalf("after Reset: got %v", got)
	}
}

func TestNextIsJittered(t *testing.T) {
	b := New(time.Second, time.Minute)
	seen := map[time.Duration]bool{}
	for range 50 {
		b.Reset()
		for range 5 {
			b.Next()
		}
		d := b.Next()
		if d < 0 || d >= 32*time.Second {
			t.Fatalf("delay %v outside [0, 32s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct delays in 50 draws: not jittered", len(seen))
	}
}

func TestNextNeverOverflows(t *testing.T) {
	b := New(time.Second, time.Hour)
	for range 200 {
		if d := b.Next(); d < 0 || d >= time.Hour {
			t.Fatalf("delay %v outside [0, 1h)", d)
		}
	}
}

func TestSpreadWidensOnlyTheNextDelay(t *testing.T) {
	b := New(time.Second, 15*time.Second)
	var ceilings []time.Duration
	b.rand = func(n int64) int64 {
		ceilings = append(ceilings, time.Duration(n))
		return n / 2
	}
	b.Spread(10 * time.Second)
	if got := b.Next(); got != 5*time.Second {
		t.Fatalf("spread delay %v, want the middle of [0, 10s)", got)
	}
	b.Next()
	b.Spread(time.Second / 2) // narrower than the delay's own ceiling: no effect
	b.Next()
	b.Spread(time.Hour) // wider than the cap: spreads all the same
	b.Next()
	want := []time.Duration{10 * time.Second, 2 * time.Second, 4 * time.Second, time.Hour}
	for i, w := range want {
		if ceilings[i] != w {
			t.Fatalf("delay %d drawn from [0, %v), want [0, %v) (all: %v)", i, ceilings[i], w, ceilings)
		}
	}
}

func TestSetMaxCapsTheDelaysToCome(t *testing.T) {
	b := New(time.Second, time.Minute)
	b.rand = func(n int64) int64 { return n - 1 }
	for range 10 {
		b.Next()
	}
	b.SetMax(15 * time.Second)
	if got := b.Next(); got != 15*time.Second-1 {
		t.Fatalf("delay after SetMax(15s): %v", got)
	}
	b.SetMax(time.Hour) // attempt 11: 1s<<11 is under the new cap
	if got := b.Next(); got != 2048*time.Second-1 {
		t.Fatalf("delay after SetMax(1h) at attempt 11: %v", got)
	}
}
