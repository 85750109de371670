package deploy

import (
	"testing"
	"time"
)

// TestCleanupDue: a sweep retries a failing removal after 1, 2, 4 …
// minutes, at most an hour, and at once one never tried.
func TestCleanupDue(t *testing.T) {
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		attempts int
		since    time.Duration
		due      bool
	}{
		{"never tried", 0, 0, true},
		{"one attempt, just now", 1, time.Second, false},
		{"one attempt, a sweep later", 1, CleanupSweepInterval - time.Second, true},
		{"three attempts, two minutes", 3, 2 * time.Minute, false},
		{"three attempts, four minutes", 3, 4 * time.Minute, true},
		{"many attempts, half an hour", 40, 30 * time.Minute, false},
		{"many attempts, an hour", 40, time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Cleanup{Attempts: tc.attempts, LastAttemptAt: last}
			if got := cleanupDue(c, last.Add(tc.since)); got != tc.due {
				t.Fatalf("due = %v, want %v", got, tc.due)
			}
		})
	}
}
