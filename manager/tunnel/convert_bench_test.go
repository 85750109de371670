package tunnel

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/admq/admq-manager/manager/fleetmetrics"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// BenchmarkIngestReport is the manager's cost of one typical report past
// the transport: decode, convert, validate and keep (3 filesystems, 2
// interfaces, 5 node processes).
func BenchmarkIngestReport(b *testing.B) {
	m := &agentv1.MetricsReport{
		CollectedAtUnixMs: 1_700_000_000_000, Hostname: "mq-node-01.example.internal", CpuUsageRatio: 0.37, CpuCount: 16,
		Load1: 2.5, Load5: 2.1, Load15: 1.9,
		MemoryTotalBytes: 64 << 30, MemoryAvailableBytes: 40 << 30, MemoryUsedBytes: 20 << 30, SwapTotalBytes: 8 << 30, SwapUsedBytes: 1 << 20,
	}
	for i, mp := range []string{"/", "/data", "/var/lib/admq"} {
		m.Filesystems = append(m.Filesystems, &agentv1.FilesystemMetrics{Path: mp, Device: "/dev/vd" + string(rune('a'+i)), Fstype: "ext4",
			TotalBytes: 500 << 30, FreeBytes: 200 << 30, UsedBytes: 280 << 30})
	}
	for _, d := range []string{"eth0", "eth1"} {
		m.Network = append(m.Network, &agentv1.NetworkMetrics{Device: d, RxBytes: 1 << 40, TxBytes: 1 << 39, RxPackets: 1 << 30, TxPackets: 1 << 29, RxErrors: 3})
	}
	for i := range 5 {
		m.Processes = append(m.Processes, &agentv1.ProcessMetrics{Name: "broker-" + strconv.Itoa(i), Pid: int32(1000 + i), CpuSecondsTotal: 12345.6, RssBytes: 4 << 30, Running: true})
	}
	wire, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	s := fleetmetrics.New(fleetmetrics.Config{}, oneServer{}, prometheus.NewRegistry())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var got agentv1.MetricsReport
		if err := proto.Unmarshal(wire, &got); err != nil {
			b.Fatal(err)
		}
		r, err := metricsFromProto(&got)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Report(ctx, 1, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wire)), "wire-bytes")
}
