package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
)

// BenchmarkServerList100 is GET /server?pageSize=100 over 10,000 servers
// with facts, as 16 clients at once send it; besides ns/op (per request,
// all clients together) it reports each request's p50 and p99 latency and
// the CPU time of the process (server and clients) per request.
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
	for _, query := range []string{"pageSize=100", "pageSize=100&pageNum=50", "pageSize=100&agentStatus=offline",
		"pageSize=100&hostname=host-0", "pageSize=100&hostname=host-099", "pageSize=100&areaId=" + area.ID.String()} {
		b.Run(query, func(b *testing.B) { hammer(b, h.srv.URL+Prefix+"/server?"+query, token) })
	}
}

// BenchmarkNodeConfigItems1000 is GET /cluster/node/config of a node file
// with 1,000 items (test/load's config-items phase), pageSize=100, as 16
// clients at once send it, with the figures of BenchmarkServerList100.
func BenchmarkNodeConfigItems1000(b *testing.B) {
	h, op, _, _ := newClusterHarness(b)
	var props strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&props, "load.item.%05d=value-%05d\n", i, i)
	}
	r := h.upload(op, "bench-V1.0-all.tar.gz", at.TarGz(b,
		at.File("admq-package.json", `{"name": "bench", "version": "1.0", "mqType": 3, "components": {"broker": {
  "start": ["{programDir}/bench"], "serverPort": 9092,
  "configFiles": [{"name": "server.properties", "path": "conf/server.properties"}],
  "health": {"tcp": "{managerIp}:{serverPort}"}}}}`),
		at.File("bench", "x"), at.Dir("conf/"), at.File("conf/server.properties", props.String())))
	want(b, r, 200, 0)
	pkg := decodeData[pkgItem](b, r).ID
	r = h.call("POST", "/admq/cluster", op, map[string]any{"name": "bench", "packageId": pkg, "brokerList": zkList("10.1.0.1")})
	want(b, r, 200, 0)
	cl := decodeData[clusterItem](b, r)
	files := decodeData[[]struct{ ID string }](b, h.call("GET", "/cluster/node/config/file?nodeId="+cl.Nodes[0].ID, op, nil))
	q := url.Values{"configFileId": {files[0].ID}, "pageSize": {"100"}}
	if total := decodeData[page[itemItem]](b, h.call("GET", "/cluster/node/config?"+q.Encode(), op, nil)).Total; total != 1000 {
		b.Fatalf("%d items, want 1000", total)
	}
	for _, num := range []string{"1", "5"} {
		q.Set("pageNum", num)
		b.Run("pageNum="+num, func(b *testing.B) { hammer(b, h.srv.URL+Prefix+"/cluster/node/config?"+q.Encode(), op) })
	}
}

// hammer sends GET url with token from 16 clients until b.N requests are
// done, and reports the p50 and p99 latency and the CPU time this process
// (server and clients) used per request.
func hammer(b *testing.B, url, token string) {
	var mu sync.Mutex
	var lat []time.Duration
	cpu0 := cpuTime(b)
	b.SetParallelism(8) // 16 clients on 2 CPUs
	b.ResetTimer()
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
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(len(lat)), "cpu-us/req")
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
