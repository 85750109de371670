package tunnel

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/admq/admq-manager/agent/metrics"
)

type selfOnly struct{}

func (selfOnly) Processes() []metrics.Proc {
	return []metrics.Proc{{Name: "agent", PID: int32(os.Getpid())}, {Name: "stopped"}}
}

func TestMetricsToProto(t *testing.T) {
	r, err := metrics.NewCollector(t.TempDir(), selfOnly{}).Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p := metricsToProto(r)
	switch {
	case p.GetCollectedAtUnixMs() != r.CollectedAt.UnixMilli() || time.Since(r.CollectedAt) > time.Minute:
		t.Errorf("collected at %d", p.GetCollectedAtUnixMs())
	case p.GetHostname() != r.Hostname || int(p.GetCpuCount()) != r.CPUCount || p.GetCpuUsageRatio() != r.CPUUsage:
		t.Errorf("host fields: %v", p)
	case p.GetMemoryTotalBytes() != r.MemoryTotal || p.GetMemoryUsedBytes() != r.MemoryUsed || p.GetSwapTotalBytes() != r.SwapTotal:
		t.Errorf("memory fields: %v", p)
	case len(p.GetFilesystems()) != len(r.Filesystems) || len(p.GetNetwork()) != len(r.Network) || len(p.GetProcesses()) != 2:
		t.Errorf("lists: %v", p)
	}
	if f, g := r.Filesystems[0], p.GetFilesystems()[0]; g.GetPath() != f.Path || g.GetDevice() != f.Device || g.GetFstype() != f.FSType ||
		g.GetTotalBytes() != f.Total || g.GetFreeBytes() != f.Free || g.GetUsedBytes() != f.Used {
		t.Errorf("filesystem %+v became %v", f, g)
	}
	if pr := p.GetProcesses()[0]; pr.GetName() != "agent" || !pr.GetRunning() || pr.GetRssBytes() == 0 || int(pr.GetPid()) != os.Getpid() {
		t.Errorf("own process became %v", pr)
	}
	t.Logf("this host's report: %d filesystems, %d interfaces, 2 processes: %d bytes on the wire",
		len(p.GetFilesystems()), len(p.GetNetwork()), proto.Size(p))
}

func TestMetricsIntervalDefaultsAndOff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if c := New(Config{StateDir: t.TempDir()}, log); c.collector == nil || c.cfg.MetricsInterval != 15*time.Second {
		t.Errorf("default: collector %v, interval %v; want one, every 15s", c.collector, c.cfg.MetricsInterval)
	}
	if c := New(Config{MetricsInterval: -1}, log); c.collector != nil {
		t.Error("a negative MetricsInterval still collects metrics")
	}
}

// TestSettledSpreads: reports go as frames once two answers in a row
// agree on the reconnect spread within a third or two seconds, not while
// the manager's fleet is still connecting fast.
func TestSettledSpreads(t *testing.T) {
	for _, tt := range []struct {
		a, b int64
		want bool
	}{
		{0, 0, true},
		{2, 1500, true},      // 1,000 agents, early and late in their connect
		{1500, 1499, true},   // steady
		{15000, 14000, true}, // 10,000 agents, within a tenth
		{11000, 15000, true}, // the last 2,700 of 10,000 agents connecting
		{15000, 12000, true}, // a fifth of the fleet gone: the later spread is kept
		{1000, 3500, false},  // 2,500 agents still connecting
		{4000, 15000, false}, // 10,000 agents still connecting
		{8250, 15000, false}, // the first agents of 10,000: half the fleet came since
		{15000, 9000, false}, // 4,000 of 10,000 gone
	} {
		if got := settled(tt.a, tt.b); got != tt.want {
			t.Errorf("settled(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
