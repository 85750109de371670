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
