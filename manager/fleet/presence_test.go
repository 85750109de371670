package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// presenceStore records batches and fails on demand; only SavePresence is used.
type presenceStore struct {
	Store
	mu      sync.Mutex
	fail    bool
	batches [][]Presence
}

func (s *presenceStore) SavePresence(_ context.Context, b []Presence) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk on fire")
	}
	s.batches = append(s.batches, b)
	return nil
}

// last returns the last batch written, which must hold one update.
func (s *presenceStore) last(t *testing.T) Presence {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) == 0 || len(s.batches[len(s.batches)-1]) != 1 {
		t.Fatalf("batches %+v, want the last to hold one update", s.batches)
	}
	return s.batches[len(s.batches)-1][0]
}

func (s *presenceStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

func TestPresenceBatchesAndKeepsTheLatest(t *testing.T) {
	st := &presenceStore{}
	now := time.Unix(1000, 0)
	p := NewPresenceTracker(st, func() time.Time { return now }, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, b := ids.ID(1), ids.ID(2)
	p.Connected(a)
	p.Heartbeat(a, Facts{CPUs: 4})
	p.Connected(b)
	p.Disconnected(b)
	if !p.Online(a) || p.Online(b) {
		t.Fatalf("online a=%v b=%v", p.Online(a), p.Online(b))
	}
	p.Flush(t.Context())
	if len(st.batches) != 1 || len(st.batches[0]) != 2 {
		t.Fatalf("batches %+v", st.batches)
	}
	for _, u := range st.batches[0] {
		switch u.ServerID {
		case a:
			if u.Status != StatusOnline || u.Facts == nil || u.Facts.CPUs != 4 {
				t.Errorf("a: %+v", u)
			}
		case b:
			if u.Status != StatusOffline {
				t.Errorf("b: %+v", u)
			}
		}
	}
	p.Flush(t.Context())
	if len(st.batches) != 1 {
		t.Fatal("an empty flush wrote a batch")
	}
}

func TestPresenceRetriesAFailedFlushWithoutLosingNewerUpdates(t *testing.T) {
	st := &presenceStore{fail: true}
	p := NewPresenceTracker(st, time.Now, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Connected(1)
	p.Connected(2)
	p.Flush(t.Context()) // fails; both are kept
	p.Disconnected(2)    // newer than the failed batch's entry
	st.fail = false
	p.Flush(t.Context())
	if len(st.batches) != 1 || len(st.batches[0]) != 2 {
		t.Fatalf("batches %+v", st.batches)
	}
	for _, u := range st.batches[0] {
		if u.ServerID == 2 && u.Status != StatusOffline {
			t.Fatalf("the retry overwrote a newer update: %+v", u)
		}
	}
}

// hostFacts is what a host with 64 GiB of memory and a 1 TiB disk reports.
func hostFacts() Facts {
	return Facts{Hostname: "db-1", OS: "linux", Arch: "amd64", CPUs: 8, KernelVersion: "6.12.0",
		MemoryTotal: 64 << 30, MemoryAvailable: 40 << 30, DiskPath: "/data", DiskTotal: 1 << 40, DiskFree: 512 << 30,
		AgentVersion: "1.0.0", BootTime: 1_700_000_000}
}

// TestPresenceWritesWhatChanged walks one connected agent through the
// cases of what the tracker writes when.
func TestPresenceWritesWhatChanged(t *testing.T) {
	st := &presenceStore{}
	now := time.Unix(1_750_000_000, 0)
	p := NewPresenceTracker(st, func() time.Time { return now }, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.SetRefresh(5 * time.Minute)
	const id = ids.ID(7)
	f := hostFacts()
	// step advances the clock by d, lets the agent report f and flushes.
	step := func(d time.Duration) {
		now = now.Add(d)
		p.Heartbeat(id, f)
		p.Flush(t.Context())
	}

	p.Connected(id)
	p.Flush(t.Context())
	if u := st.last(t); u.Status != StatusOnline || !u.LastSeen.Equal(now) || u.Facts != nil {
		t.Fatalf("connect wrote %+v", u)
	}
	step(time.Second)
	if u := st.last(t); u.Facts == nil || *u.Facts != f || !u.LastSeen.Equal(now) {
		t.Fatalf("first report wrote %+v, want its facts", u)
	}
	written := st.count()

	t.Run("the same facts are not written again", func(t *testing.T) {
		step(30 * time.Second)
		if st.count() != written {
			t.Fatalf("unchanged facts were written: %+v", st.last(t))
		}
		if seen, ok := p.LastSeen(id); !ok || !seen.Equal(now) {
			t.Fatalf("LastSeen = %v, %v; want the report's time %v", seen, ok, now)
		}
	})
	t.Run("a fixed fact is written at once", func(t *testing.T) {
		f.AgentVersion = "1.0.1"
		step(30 * time.Second)
		if u := st.last(t); u.Facts == nil || u.Facts.AgentVersion != "1.0.1" || u.Status != StatusOnline {
			t.Fatalf("wrote %+v, want the new agent version", u)
		}
		written = st.count()
	})
	t.Run("a small move of memory or disk waits", func(t *testing.T) {
		f.MemoryAvailable -= 1 << 30 // 1.6 % of the total
		f.DiskFree -= 10 << 30       // 1 %
		step(30 * time.Second)
		if st.count() != written {
			t.Fatalf("a small move was written: %+v", st.last(t))
		}
	})
	t.Run("memory that moved by 5 % of the total is written at once", func(t *testing.T) {
		f.MemoryAvailable -= 3 << 30 // 4 GiB from the written figure: 6 %
		step(30 * time.Second)
		if u := st.last(t); u.Facts == nil || u.Facts.MemoryAvailable != f.MemoryAvailable || u.Facts.DiskFree != f.DiskFree {
			t.Fatalf("wrote %+v, want memory %d and disk %d", u, f.MemoryAvailable, f.DiskFree)
		}
		written = st.count()
	})
	t.Run("a nearly full disk is followed closely", func(t *testing.T) {
		f.DiskFree = 20 << 30 // 2 % of the disk free
		step(30 * time.Second)
		written = st.count()
		f.DiskFree = 14 << 30 // 0.6 % of the disk, but 30 % of what was written
		step(30 * time.Second)
		if u := st.last(t); st.count() != written+1 || u.Facts.DiskFree != 14<<30 {
			t.Fatalf("wrote %+v, want disk free %d", u, 14<<30)
		}
		written = st.count()
	})
	t.Run("the row is refreshed every refresh interval", func(t *testing.T) {
		start := now
		f.MemoryAvailable += 1 << 20 // a move too small to write at once
		for now.Sub(start) < 5*time.Minute-30*time.Second {
			step(30 * time.Second)
		}
		if st.count() != written {
			t.Fatalf("written before the refresh: %+v", st.last(t))
		}
		step(30 * time.Second)
		u := st.last(t)
		if !u.LastSeen.Equal(now) || u.Status != StatusOnline || u.Facts == nil || u.Facts.MemoryAvailable != f.MemoryAvailable {
			t.Fatalf("refresh wrote %+v, want last seen %v and memory %d", u, now, f.MemoryAvailable)
		}
		// Nothing moved since: the next refresh writes the time alone.
		written = st.count()
		for range 10 {
			step(30 * time.Second)
		}
		if u := st.last(t); st.count() != written+1 || u.Facts != nil || !u.LastSeen.Equal(now) {
			t.Fatalf("second refresh wrote %+v (%d writes), want only a last seen time", u, st.count()-written)
		}
	})
	t.Run("a disconnect is written at once and the facts are kept for the return", func(t *testing.T) {
		now = now.Add(time.Second)
		p.Disconnected(id)
		p.Flush(t.Context())
		if u := st.last(t); u.Status != StatusOffline || !u.LastSeen.Equal(now) || u.Facts != nil {
			t.Fatalf("disconnect wrote %+v", u)
		}
		if _, ok := p.LastSeen(id); ok || p.Online(id) || len(p.Live()) != 0 {
			t.Fatal("a disconnected agent is still live")
		}
		now = now.Add(time.Minute)
		p.Connected(id)
		step(time.Second)
		if u := st.last(t); u.Status != StatusOnline || u.Facts != nil {
			t.Fatalf("reconnect wrote %+v, want the status without the unchanged facts", u)
		}
	})
}

func TestPresenceKeepsUnwrittenFactsUnderANewerUpdate(t *testing.T) {
	st := &presenceStore{}
	now := time.Unix(1_750_000_000, 0)
	p := NewPresenceTracker(st, func() time.Time { return now }, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Connected(1)
	p.Heartbeat(1, hostFacts())
	p.Disconnected(1) // before the flush: the facts must still be written
	p.Flush(t.Context())
	if u := st.last(t); u.Status != StatusOffline || u.Facts == nil || *u.Facts != hostFacts() {
		t.Fatalf("wrote %+v, want offline with the reported facts", u)
	}

	f := hostFacts()
	f.Hostname = "db-2"
	p.Connected(1)
	p.Heartbeat(1, f)
	st.fail = true
	p.Flush(t.Context()) // fails; the facts are the tracker's to write still
	now = now.Add(time.Second)
	p.Disconnected(1)
	st.fail = false
	p.Flush(t.Context())
	if u := st.last(t); u.Status != StatusOffline || !u.LastSeen.Equal(now) || u.Facts == nil || u.Facts.Hostname != "db-2" {
		t.Fatalf("retry wrote %+v, want the disconnect with the new hostname", u)
	}
}

func TestPresenceForgetsADeletedServer(t *testing.T) {
	st := &presenceStore{}
	p := NewPresenceTracker(st, time.Now, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Connected(1)
	p.Heartbeat(1, hostFacts())
	p.Forget(1)
	p.Flush(t.Context())
	if st.count() != 0 {
		t.Fatalf("wrote %+v for a deleted server", st.batches)
	}
	if p.Online(1) {
		t.Fatal("a deleted server is online")
	}
}
