package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
)

// BenchmarkReadersMemory prints what the four reader connections hold
// outside the Go heap (SQLite's page caches) once each has read every
// server of 10,000 with their facts, as the server lists of a console at
// fleet size do: MB-outside-Go is the growth of the process's anonymous
// memory that the Go runtime does not account for. Linux only (it reads
// /proc/self/smaps_rollup). Run with -benchtime=1x.
func BenchmarkReadersMemory(b *testing.B) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		b.Skip("needs /proc/self/smaps_rollup")
	}
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "manager.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	area := fleet.Area{ID: 1_000, Code: "default", Name: "Default", CreatedAt: now, UpdatedAt: now}
	if err := db.CreateArea(ctx, &area); err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	batch := make([]fleet.Presence, 0, n)
	for i := range n {
		s := fleet.Server{ID: ids.ID(1_000_000 + i), AreaID: area.ID, ManagerIP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			SSHPort: 22, ProgramDir: "/opt/admq", DataDir: "/var/lib/admq", CertSerial: fmt.Sprintf("%x", i+1), CreatedAt: now, UpdatedAt: now}
		if err := db.CreateServer(ctx, &s); err != nil {
			b.Fatal(err)
		}
		batch = append(batch, fleet.Presence{ServerID: s.ID, Status: fleet.StatusOnline, LastSeen: now, Facts: &fleet.Facts{
			Hostname: fmt.Sprintf("host-%05d", i), OS: "linux", Platform: "debian", PlatformVersion: "12", KernelVersion: "6.1.0",
			Arch: "amd64", CPUs: 16, MemoryTotal: 64 << 30, MemoryAvailable: 32 << 30, DiskPath: "/", DiskTotal: 1 << 40,
			DiskFree: 1 << 39, AgentVersion: "1.0.0", BootTime: 1_700_000_000}})
	}
	if err := db.SavePresence(ctx, batch); err != nil {
		b.Fatal(err)
	}
	before := anonOutsideGo(b)
	b.ResetTimer()
	for b.Loop() {
		conns := make([]interface{ Close() error }, 0, readerConns)
		for range readerConns { // each holds its connection: all four read
			c, err := db.r.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			var count, size int
			if err := c.QueryRowContext(ctx, `SELECT count(*), sum(length(facts)) FROM servers`).Scan(&count, &size); err != nil || count != n {
				b.Fatalf("%d servers, %v; want %d", count, err, n)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
	b.StopTimer()
	b.ReportMetric((anonOutsideGo(b)-before)/(1<<20), "MB-outside-Go")
}

// anonOutsideGo is this process's anonymous memory less what the Go
// runtime has mapped and not returned, in bytes, after a GC.
func anonOutsideGo(b *testing.B) float64 {
	runtime.GC()
	raw, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		b.Fatal(err)
	}
	var anon float64 = -1
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "Anonymous:"); ok {
			if f := strings.Fields(rest); len(f) == 2 {
				anon, _ = strconv.ParseFloat(f[0], 64)
			}
		}
	}
	if anon < 0 {
		b.Fatal("no Anonymous in /proc/self/smaps_rollup")
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return anon*1024 - float64(ms.Sys-ms.HeapReleased)
}
