package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
)

// BenchmarkServerList100 is GET /server?pageSize=100 over 10,000 servers
// with facts, as 16 clients at once send it; besides ns/op (per request,
// all clients together) it reports each request's p50 and p99 latency.
func BenchmarkServerList100(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	area, err := h.db.AreaByCode(ctx, fleet.DefaultAreaCode)
	if err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	batch := make([]fleet.Presence, 0, n)
	for i := range n {
		s := fleet.Server{
			ID: ids.ID(1_000_000 + i), AreaID: area.ID, ManagerIP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255),
			SSHPort: 22, ProgramDir: "/opt/admq", DataDir: "/var/lib/admq", CertSerial: fmt.Sprintf("%x", i+1),
			CreatedAt: time.Now(), UpdatedAt: time.Now(),
		}
		if err := h.db.CreateServer(ctx, &s); err != nil {
			b.Fatal(err)
		}
		batch = append(batch, fleet.Presence{ServerID: s.ID, Status: fleet.StatusOffline, LastSeen: time.Now(), Facts: &fleet.Facts{
			Hostname: fmt.Sprintf("host-%05d", i), OS: "linux", Platform: "debian", PlatformVersion: "12", KernelVersion: "6.1.0",
			Arch: "amd64", CPUs: 16, MemoryTotal: 64 << 30, MemoryAvailable: 32 << 30, DiskPath: "/", DiskTotal: 1 << 40,
			DiskFree: 1 << 39, AgentVersion: "1.0.0", BootTime: 1_700_000_000,
		}})
	}
	if err := h.db.SavePresence(ctx, batch); err != nil {
		b.Fatal(err)
	}
	token := h.login("admin", adminPassword)
	for _, query := range []string{"pageSize=100", "pageSize=100&pageNum=50", "pageSize=100&agentStatus=offline"} {
		b.Run(query, func(b *testing.B) {
			url := h.srv.URL + Prefix + "/server?" + query
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(8) // 16 clients on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+token)
					start := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					var buf [32 << 10]byte
					for {
						if _, err := resp.Body.Read(buf[:]); err != nil {
							break
						}
					}
					resp.Body.Close()
					mine = append(mine, time.Since(start))
					if resp.StatusCode != http.StatusOK {
						b.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
