package fleet_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/store/storetest"
)

// presenceManager is what a manager builds over its store: a presence
// tracker on a fake clock and the service GET /server reads.
type presenceManager struct {
	p   *fleet.PresenceTracker
	svc *fleet.Service
}

func startPresence(t *testing.T, db *store.DB, now func() time.Time) presenceManager {
	t.Helper()
	// What a starting manager does first: no agent has a session yet.
	if err := db.MarkAllOffline(t.Context(), now()); err != nil {
		t.Fatal(err)
	}
	gen, _ := ids.NewGenerator(1)
	p := fleet.NewPresenceTracker(db, now, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.SetRefresh(5 * time.Minute)
	return presenceManager{p: p, svc: fleet.NewService(db, p, noAgents{}, gen, now)}
}

// shown returns the server as GET /server shows it: the one-server read
// and its entry in the list must agree.
func (m presenceManager) shown(t *testing.T, id ids.ID) fleet.Server {
	t.Helper()
	one, err := m.svc.Server(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := m.svc.Servers(t.Context(), fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].AgentStatus != one.AgentStatus || !list[0].LastSeen.Equal(one.LastSeen) || list[0].Facts != one.Facts {
		t.Fatalf("the list shows %+v, the server's read %+v", list, one)
	}
	return one
}

// TestPresenceWhatTheServerListShows follows what an operator sees of one
// agent, through the service over a real SQLite file: live status and last
// seen time at once, facts as the tracker writes them, and what a crashed
// manager leaves behind.
func TestPresenceWhatTheServerListShows(t *testing.T) {
	db := storetest.Open(t)
	id := enrolledServers(t, db, 1)[0]
	now := time.Unix(1_750_000_000, 0)
	clock := func() time.Time { return now }
	m := startPresence(t, db, clock)
	f := fleet.Facts{Hostname: "db-1", OS: "linux", Arch: "amd64", CPUs: 8, MemoryTotal: 64 << 30, MemoryAvailable: 40 << 30,
		DiskPath: "/data", DiskTotal: 1 << 40, DiskFree: 512 << 30, AgentVersion: "1.0.0", BootTime: 1_700_000_000}
	// report advances the clock by 30 s, the agent reports f and the
	// tracker flushes, as the manager's ticker would.
	report := func(m presenceManager) {
		now = now.Add(30 * time.Second)
		m.p.Heartbeat(id, f)
		m.p.Flush(context.Background())
	}
	want := func(s fleet.Server, status fleet.AgentStatus, seen time.Time, facts fleet.Facts) {
		t.Helper()
		if s.AgentStatus != status || !s.LastSeen.Equal(seen) || s.Facts != facts {
			t.Fatalf("shown: %s, last seen %v, facts %+v\nwant %s, %v, %+v", s.AgentStatus, s.LastSeen, s.Facts, status, seen, facts)
		}
	}

	m.p.Connected(id)
	report(m)
	want(m.shown(t, id), fleet.StatusOnline, now, f)

	// Memory moved by 1.6 % of the total: the status and last seen time
	// are live, the facts are those written.
	shown := f
	f.MemoryAvailable -= 1 << 30
	report(m)
	want(m.shown(t, id), fleet.StatusOnline, now, shown)

	// A new agent version is shown at once, with the memory that moved.
	f.AgentVersion = "1.0.1"
	report(m)
	want(m.shown(t, id), fleet.StatusOnline, now, f)

	// Memory wanders a little for 7 minutes: the row is written again
	// 5 minutes after it last was, with what the agent reported then.
	written, refreshed := f, fleet.Facts{}
	for i := range 14 {
		f.MemoryAvailable += 1 << 20
		report(m)
		if i == 9 { // 300 s after the agent version was written
			written, refreshed = f, f
		}
		want(m.shown(t, id), fleet.StatusOnline, now, written)
	}
	crashed := now

	// The manager crashes: what it flushed is all there is. A new manager
	// on the same file shows the agent offline, seen at most the refresh
	// interval and a report before the crash, with the facts of the
	// refresh.
	m = startPresence(t, db, clock)
	s := m.shown(t, id)
	if s.AgentStatus != fleet.StatusOffline || s.LastSeen.Before(crashed.Add(-5*time.Minute-30*time.Second)) || s.LastSeen.After(crashed) || s.Facts != refreshed {
		t.Fatalf("after a crash at %v: %s, last seen %v, facts %+v; want offline, seen since %v, facts %+v",
			crashed, s.AgentStatus, s.LastSeen, s.Facts, crashed.Add(-5*time.Minute-30*time.Second), refreshed)
	}
	t.Logf("after a crash: last seen %v before the crash", crashed.Sub(s.LastSeen))

	// The agent reconnects to the new manager, which writes its facts once,
	// and leaves: offline at once, seen when it left.
	now = now.Add(10 * time.Second)
	m.p.Connected(id)
	report(m)
	want(m.shown(t, id), fleet.StatusOnline, now, f)
	now = now.Add(10 * time.Second)
	m.p.Disconnected(id)
	m.p.Flush(context.Background())
	want(m.shown(t, id), fleet.StatusOffline, now, f)
}
