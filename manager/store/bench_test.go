package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
)

func seedServers(b *testing.B, db *store.DB, n int) []fleet.Server {
	b.Helper()
	area := mustArea(b, db, "default")
	out := make([]fleet.Server, n)
	for i := range n {
		out[i] = mustServer(b, db, area.ID, fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), fmt.Sprintf("%x", i+1))
	}
	return out
}

var benchFacts = fleet.Facts{
	Hostname: "host", OS: "linux", Platform: "ubuntu", PlatformVersion: "24.04", KernelVersion: "6.8.0",
	Arch: "amd64", CPUs: 16, MemoryTotal: 64 << 30, MemoryAvailable: 32 << 30, DiskPath: "/data",
	DiskTotal: 2 << 40, DiskFree: 1 << 40, AgentVersion: "1.0.0", BootTime: 1_700_000_000,
}

// BenchmarkSavePresence measures one heartbeat flush of 1,000 servers, each
// with a full set of facts.
func BenchmarkSavePresence(b *testing.B) {
	const batchSize = 1000
	ctx := context.Background()
	db := MustOpen(b)
	servers := seedServers(b, db, batchSize)
	facts := benchFacts
	batch := make([]fleet.Presence, batchSize)
	for i, s := range servers {
		batch[i] = fleet.Presence{ServerID: s.ID, Status: fleet.StatusOnline, Facts: &facts}
	}

	iterations := 0
	for b.Loop() {
		now := time.Now()
		for i := range batch {
			batch[i].LastSeen = now
		}
		if err := db.SavePresence(ctx, batch); err != nil {
			b.Fatal(err)
		}
		iterations++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iterations*batchSize), "ns/server")
}

// BenchmarkServersList measures reading one page of 10 out of 10,000
// servers, with the total.
func BenchmarkServersList(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	db := MustOpen(b)
	servers := seedServers(b, db, n)
	// Rows as big as real ones: every server has reported its facts.
	batch := make([]fleet.Presence, n)
	for i, s := range servers {
		batch[i] = fleet.Presence{ServerID: s.ID, Status: fleet.StatusOffline, LastSeen: time.Now(), Facts: &benchFacts}
	}
	if err := db.SavePresence(ctx, batch); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		page paging.Page
		f    fleet.ServerFilter
		want int
	}{
		{"page2", paging.Page{Num: 2, Size: 100}, fleet.ServerFilter{}, n},
		{"page50", paging.Page{Num: 50, Size: 100}, fleet.ServerFilter{}, n},
		{"offline", paging.Page{Num: 2, Size: 100}, fleet.ServerFilter{Status: fleet.StatusOffline}, n},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// CPU time, not wall time: several people share this machine.
			cpu0 := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			for b.Loop() {
				list, total, err := db.Servers(ctx, tc.f, tc.page)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != 100 || total != tc.want {
					b.Fatalf("got %d servers of %d, want 100 of %d", len(list), total, tc.want)
				}
			}
		})
		// The stamps GET /server reads at every request.
		b.Run("stamps-"+tc.name, func(b *testing.B) {
			cpu0 := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			for b.Loop() {
				list, total, err := db.ServerStamps(ctx, tc.f, tc.page)
				if err != nil {
					b.Fatal(err)
				}
				if len(list) != 100 || total != tc.want {
					b.Fatalf("got %d stamps of %d, want 100 of %d", len(list), total, tc.want)
				}
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnroll measures the store's part of one new agent's enrollment,
// the calls enroll.Service makes: the token, the retry lookup, the pending
// server lookup and the enrollment's write transaction, with 10,000
// servers enrolled before.
func BenchmarkEnroll(b *testing.B) {
	ctx := context.Background()
	db := MustOpen(b)
	area := mustArea(b, db, "default")
	mustToken(b, db, enroll.JoinToken{ID: "fleet1", AreaID: area.ID})
	now := time.Now()
	i := 0
	enrollOne := func() {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		key := sha256.Sum256([]byte(ip))
		i++
		if _, err := db.JoinToken(ctx, "fleet1"); err != nil {
			b.Fatal(err)
		}
		if id, err := db.RetryServer(ctx, "fleet1", key[:]); err != nil || !id.IsZero() {
			b.Fatal(id, err)
		}
		if id, err := db.PendingServerByIP(ctx, ip); err != nil || !id.IsZero() {
			b.Fatal(id, err)
		}
		err := db.CompleteEnrollment(ctx, enroll.Enrollment{
			TokenID: "fleet1", Now: now, ServerID: nextID(), Create: true, AreaID: area.ID,
			ManagerIP: ip, Hostname: "host", CertSerial: fmt.Sprintf("%x", i), KeySum: key[:],
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	for range 10_000 {
		enrollOne()
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	n := 0
	for b.Loop() {
		enrollOne()
		n++
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(n), "cpu-us/op")
}
