package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/store"
	"github.com/admq/admq-manager/manager/store/storetest"
)

// countingStore is a real store that counts the rows presence writes.
type countingStore struct {
	*store.DB
	rows, withFacts atomic.Int64
}

func (s *countingStore) SavePresence(ctx context.Context, batch []fleet.Presence) error {
	s.rows.Add(int64(len(batch)))
	for _, u := range batch {
		if u.Facts != nil {
			s.withFacts.Add(1)
		}
	}
	return s.DB.SavePresence(ctx, batch)
}

// enrolledServers creates n enrolled servers in db.
func enrolledServers(tb testing.TB, db *store.DB, n int) []ids.ID {
	tb.Helper()
	ctx := context.Background()
	at := time.Unix(1_700_000_000, 0)
	area := fleet.Area{ID: ids.ID(1), Code: "bench", Name: "bench", CreatedAt: at, UpdatedAt: at}
	if err := db.CreateArea(ctx, &area); err != nil {
		tb.Fatal(err)
	}
	out := make([]ids.ID, n)
	for i := range n {
		s := fleet.Server{ID: ids.ID(1000 + i), AreaID: area.ID, ManagerIP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			CertSerial: fmt.Sprintf("%x", i+1), CreatedAt: at, UpdatedAt: at}
		if err := db.CreateServer(ctx, &s); err != nil {
			tb.Fatal(err)
		}
		out[i] = s.ID
	}
	return out
}

// simHost is what one simulated agent reports: fixed facts, memory that
// wanders by up to 1 % of the total between reports and a disk that fills
// by 1 MiB a report.
type simHost struct {
	facts fleet.Facts
	rng   *rand.Rand
}

func (h *simHost) report() fleet.Facts {
	step := int64(h.facts.MemoryTotal / 100)
	m := int64(h.facts.MemoryAvailable) + h.rng.Int64N(2*step+1) - step
	h.facts.MemoryAvailable = uint64(min(max(m, 0), int64(h.facts.MemoryTotal)))
	h.facts.DiskFree -= 1 << 20
	return h.facts
}

// BenchmarkPresenceIdle measures the presence writes of an idle fleet of
// 10,000 connected agents, each reporting its facts every 30 s, flushed
// every second as the manager does: one op is 5 minutes of that fleet (10
// reports per agent, 300 flushes) on a fake clock, against a real SQLite
// file. cpu-%core is the CPU those 5 minutes cost as a share of one core.
func BenchmarkPresenceIdle(b *testing.B) {
	const (
		agents = 10_000
		flush  = time.Second
		report = 30 * time.Second
		window = 5 * time.Minute
	)
	db := &countingStore{DB: storetest.Open(b)}
	list := enrolledServers(b, db.DB, agents)
	now := time.Unix(1_750_000_000, 0)
	p := fleet.NewPresenceTracker(db, func() time.Time { return now }, flush, slog.New(slog.NewTextHandler(io.Discard, nil)))
	hosts := make([]simHost, agents)
	for i := range hosts {
		hosts[i] = simHost{rng: rand.New(rand.NewPCG(uint64(i), 1)), facts: fleet.Facts{
			Hostname: fmt.Sprintf("host-%05d", i), OS: "linux", Platform: "debian", PlatformVersion: "13",
			KernelVersion: "6.12.0-amd64", Arch: "amd64", CPUs: 16, MemoryTotal: 64 << 30, MemoryAvailable: 40 << 30,
			DiskPath: "/data", DiskTotal: 2 << 40, DiskFree: 1 << 40, AgentVersion: "1.4.0", BootTime: 1_749_000_000,
		}}
	}
	ctx := context.Background()
	for _, id := range list {
		p.Connected(id)
	}
	// run simulates d of the fleet: each second, the agents whose report
	// falls in it report, then the tracker flushes.
	perFlush := agents / int(report/flush)
	next := 0
	run := func(d time.Duration) {
		for range int(d / flush) {
			for range perFlush {
				p.Heartbeat(list[next], hosts[next].report())
				next = (next + 1) % agents
			}
			now = now.Add(flush)
			p.Flush(ctx)
		}
	}
	run(2 * window) // every agent has reported and its row is written
	db.rows.Store(0)
	db.withFacts.Store(0)
	cpu0 := processCPU()
	ops := 0
	for b.Loop() {
		run(window)
		ops++
	}
	cpu := processCPU() - cpu0
	b.ReportMetric(cpu.Seconds()/float64(ops), "cpu-s/op")
	b.ReportMetric(100*cpu.Seconds()/float64(ops)/window.Seconds(), "cpu-%core")
	b.ReportMetric(float64(db.rows.Load())/float64(ops), "rows/op")
	b.ReportMetric(float64(db.withFacts.Load())/float64(ops), "facts-rows/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
