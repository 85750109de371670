package tunnel

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

type oneServer struct{}

func (oneServer) Server(_ context.Context, id ids.ID) (fleet.Server, error) {
	return fleet.Server{ID: id, ManagerIP: "10.0.0.1", AreaName: "默认可用区"}, nil
}

// FuzzMetricsReport checks that whatever an agent sends, a report the
// manager accepts gathers cleanly: no duplicate series, no bad label value,
// nothing that would fail the fleet scrape for every other server.
func FuzzMetricsReport(f *testing.F) {
	seed := &agentv1.MetricsReport{
		Hostname: "h", CpuUsageRatio: 0.5, CpuCount: 2, Load1: 1,
		MemoryTotalBytes: 100, MemoryAvailableBytes: 50, MemoryUsedBytes: 40, SwapTotalBytes: 10, SwapUsedBytes: 1,
		Filesystems: []*agentv1.FilesystemMetrics{
			{Path: "/", Device: "/dev/sda1", Fstype: "ext4", TotalBytes: 10, FreeBytes: 5, UsedBytes: 5},
			{Path: "/data", Device: "/dev/sdb", Fstype: "xfs", TotalBytes: 10, FreeBytes: 5, UsedBytes: 5},
		},
		Network:   []*agentv1.NetworkMetrics{{Device: "eth0", RxBytes: 1}, {Device: "eth1"}},
		Processes: []*agentv1.ProcessMetrics{{Name: "node-1", Pid: 42, RssBytes: 1, Running: true}, {Name: "node-2"}},
	}
	for _, m := range []*agentv1.MetricsReport{seed, {CpuCount: 1}, {CpuUsageRatio: math.NaN(), CpuCount: 1}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m agentv1.MetricsReport
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		r, err := metricsFromProto(&m)
		if err != nil {
			return
		}
		reg := prometheus.NewPedanticRegistry()
		s := fleetmetrics.New(fleetmetrics.Config{}, oneServer{}, reg)
		if s.Report(t.Context(), 1, r) != nil {
			return
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("an accepted report fails the scrape: %v\nreport: %v", err, &m)
		}
	})
}
