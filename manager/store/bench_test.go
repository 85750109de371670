package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// BenchmarkSavePresence measures one heartbeat flush of 1,000 servers, each
// with a full set of facts.
func BenchmarkSavePresence(b *testing.B) {
	const batchSize = 1000
	ctx := context.Background()
	db := MustOpen(b)
	servers := seedServers(b, db, batchSize)
	facts := fleet.Facts{
		Hostname: "host", OS: "linux", Platform: "ubuntu", PlatformVersion: "24.04", KernelVersion: "6.8.0",
		Arch: "amd64", CPUs: 16, MemoryTotal: 64 << 30, MemoryAvailable: 32 << 30, DiskPath: "/data",
		DiskTotal: 2 << 40, DiskFree: 1 << 40, AgentVersion: "1.0.0", BootTime: 1_700_000_000,
	}
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
	seedServers(b, db, n)
	page := paging.Page{Num: 2, Size: 100}

	for b.Loop() {
		list, total, err := db.Servers(ctx, fleet.ServerFilter{}, page)
		if err != nil {
			b.Fatal(err)
		}
		if len(list) != 100 || total != n {
			b.Fatalf("got %d servers of %d, want 100 of %d", len(list), total, n)
		}
	}
}
