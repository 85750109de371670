package tunnel_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

func TestAgentReportsMetrics(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: time.Second})
	connected, _ := e.startAgent(t, e.token(t, 1), t.TempDir())
	id, err := ids.Parse(<-connected)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent's first metrics report", func() bool { return e.metrics.Reporting(id) })

	mfs, err := e.fleetReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["server"] != id.String() || labels["area"] != "默认可用区" || labels["hostname"] == "" {
				t.Errorf("%s has labels %v, want server %s in the default area with a hostname", mf.GetName(), labels, id)
			}
			got[mf.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for _, name := range []string{"admq_node_up", "admq_node_cpus", "admq_node_memory_total_bytes", "admq_node_filesystem_size_bytes"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v, want > 0", name, got[name])
		}
	}
	if r := got["admq_node_cpu_usage_ratio"]; r < 0 || r > 1 {
		t.Errorf("cpu usage ratio %v", r)
	}
	// The manager's 1s interval reached the agent: reports keep coming.
	before := testutil.ToFloat64(mustGaugeFrom(t, e, "admq_node_last_report_timestamp_seconds"))
	waitFor(t, "a later report at the manager's interval", func() bool {
		return testutil.ToFloat64(mustGaugeFrom(t, e, "admq_node_last_report_timestamp_seconds")) > before
	})

	// Deleting the server drops its series.
	if err := e.fleet.DeleteServer(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(e.fleetReg); err != nil || n != 0 {
		t.Fatalf("after delete: %d series (%v), want none", n, err)
	}
}

func mustGaugeFrom(t *testing.T, e *env, name string) gathered {
	t.Helper()
	return gathered{reg: e.fleetReg, name: name}
}

// goodReport is a report a small host would send.
func goodReport() *agentv1.MetricsReport {
	return &agentv1.MetricsReport{
		CollectedAtUnixMs: time.Now().UnixMilli(), Hostname: "h", CpuUsageRatio: 0.5, CpuCount: 2,
		MemoryTotalBytes: 100, MemoryAvailableBytes: 50, MemoryUsedBytes: 40,
		Filesystems: []*agentv1.FilesystemMetrics{{Path: "/", Device: "/dev/sda1", Fstype: "ext4", TotalBytes: 10, FreeBytes: 5, UsedBytes: 5}},
		Network:     []*agentv1.NetworkMetrics{{Device: "eth0", RxBytes: 1}},
		Processes:   []*agentv1.ProcessMetrics{{Name: "node-1", Pid: 42, RssBytes: 1, Running: true}},
	}
}

func TestBadMetricsAreRefused(t *testing.T) {
	e := newEnv(t, tunnel.Config{MetricsInterval: 2 * time.Second})
	dir := t.TempDir()
	connected, stop := e.startAgent(t, e.token(t, 1), dir)
	id, _ := ids.Parse(<-connected)
	stop()
	e.metrics.Forget(id) // whatever the real agent managed to send
	cc, mux := enrolledSession(t, e, dir)
	defer mux.Close()
	mc := agentv1.NewManagerServiceClient(cc)

	tooMany := make([]*agentv1.FilesystemMetrics, 65)
	for i := range tooMany {
		tooMany[i] = &agentv1.FilesystemMetrics{Path: "/m" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
	}
	for name, edit := range map[string]func(*agentv1.MetricsReport){
		"NaN cpu usage":        func(r *agentv1.MetricsReport) { r.CpuUsageRatio = math.NaN() },
		"cpu usage above 1":    func(r *agentv1.MetricsReport) { r.CpuUsageRatio = 1.01 },
		"infinite load":        func(r *agentv1.MetricsReport) { r.Load15 = math.Inf(1) },
		"too many filesystems": func(r *agentv1.MetricsReport) { r.Filesystems = tooMany },
		"filesystem used > total": func(r *agentv1.MetricsReport) {
			r.Filesystems[0].UsedBytes = r.Filesystems[0].TotalBytes + 1
		},
		"memory used > total": func(r *agentv1.MetricsReport) { r.MemoryUsedBytes = r.MemoryTotalBytes + 1 },
		"overlong node name":  func(r *agentv1.MetricsReport) { r.Processes[0].Name = string(make([]byte, 300)) },
	} {
		r := goodReport()
		edit(r)
		_, err := mc.ReportMetrics(t.Context(), r)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if e.metrics.Reporting(id) {
		t.Fatal("a refused report counts as reporting")
	}

	good := goodReport()
	ack, err := mc.ReportMetrics(t.Context(), good)
	if err != nil || ack.GetIntervalMs() != 2000 {
		t.Fatalf("good report: ack %v, err %v; want interval 2000ms", ack, err)
	}
	if !e.metrics.Reporting(id) {
		t.Fatal("a good report does not count as reporting")
	}
	t.Logf("a small report is %d bytes on the wire", proto.Size(good))
}

func TestUnenrolledSessionMayNotReportMetrics(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	cc, mux := rawSession(t, e)
	defer mux.Close()
	_, err := agentv1.NewManagerServiceClient(cc).ReportMetrics(t.Context(), goodReport())
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("metrics before enrollment: %v, want Unauthenticated", err)
	}
}
