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
