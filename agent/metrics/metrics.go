// Package metrics samples the host's metrics for the manager to expose to
// Prometheus: CPU, load, memory, filesystems, network interfaces, and the
// CPU and memory of each node process the agent supervises.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
	"github.com/shirou/gopsutil/v4/process"
)

// Limits on what one report carries; the manager refuses more.
const (
	MaxFilesystems = 32
	MaxInterfaces  = 32
	MaxProcesses   = 1024
)

// Report is one sample of the host's metrics.
type Report struct {
	CollectedAt time.Time
	Hostname    string
	// CPUUsage is the share of all CPUs' time spent busy, 0 to 1, since the
	// previous sample (the first: since the Collector was made).
	CPUUsage             float64
	CPUCount             int
	Load1, Load5, Load15 float64
	MemoryTotal          uint64
	MemoryAvailable      uint64
	MemoryUsed           uint64
	SwapTotal            uint64
	SwapUsed             uint64
	Filesystems          []Filesystem
	Network              []Interface
	Processes            []Process
}

// Filesystem is the usage of one mounted filesystem, in bytes.
type Filesystem struct {
	Path   string // mount point
	Device string
	FSType string
	Total  uint64
	Free   uint64 // free to unprivileged users
	Used   uint64
}

// Interface holds one network interface's counters since boot.
type Interface struct {
	Device               string
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
	RxErrors, TxErrors   uint64
}

// Process describes one supervised node process.
type Process struct {
	Name       string
	PID        int32
	CPUSeconds float64 // user plus system since the process started
	RSS        uint64
	Running    bool
}

// Proc names a node process to measure.
type Proc struct {
	Name string
	PID  int32 // 0: not running
}

// ProcessSource lists the node processes the agent supervises.
type ProcessSource interface {
	Processes() []Proc
}

// Source takes samples of the host; *Collector is one.
type Source interface {
	Collect(ctx context.Context) (Report, error)
}

// Collector samples the host. It is safe for concurrent use, but samples
// are meant to be taken by one loop: CPU usage is measured between them.
type Collector struct {
	diskPath  string
	processes ProcessSource
	mounts    *mountCache

	mu      sync.Mutex
	prevCPU cpu.TimesStat
	hasPrev bool
}

// NewCollector returns a Collector that always reports the filesystem
// holding diskPath (the agent's state dir) and measures the processes
// procs lists (nil: none). It reads the CPU times once, as the baseline of
// the first sample's CPU usage.
func NewCollector(diskPath string, procs ProcessSource) *Collector {
	c := &Collector{diskPath: diskPath, processes: procs, mounts: newMountCache()}
	if t, err := cpuTimes(context.Background()); err == nil {
		c.prevCPU, c.hasPrev = t, true
	}
	return c
}

// Collect takes a sample. A part that cannot be read is left zero and
// named in the error; the rest of the report is still good to send.
func (c *Collector) Collect(ctx context.Context) (Report, error) {
	r := Report{CollectedAt: time.Now(), CPUCount: runtime.NumCPU()}
	var errs []error
	fail := func(what string, err error) { errs = append(errs, fmt.Errorf("%s: %w", what, err)) }

	// The name alone: host.Info would also probe the platform, which runs
	// commands.
	if h, err := os.Hostname(); err != nil {
		fail("hostname", err)
	} else {
		r.Hostname = h
	}
	if usage, err := c.cpuUsage(ctx); err != nil {
		fail("cpu times", err)
	} else {
		r.CPUUsage = usage
	}
	if l, err := load.AvgWithContext(ctx); err != nil {
		fail("load average", err)
	} else {
		r.Load1, r.Load5, r.Load15 = l.Load1, l.Load5, l.Load15
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		fail("memory", err)
	} else {
		r.MemoryTotal, r.MemoryAvailable, r.MemoryUsed = vm.Total, min(vm.Available, vm.Total), min(vm.Used, vm.Total)
	}
	if sw, err := mem.SwapMemoryWithContext(ctx); err != nil {
		fail("swap", err)
	} else {
		r.SwapTotal, r.SwapUsed = sw.Total, min(sw.Used, sw.Total)
	}
	var err error
	if r.Filesystems, err = c.filesystems(ctx); err != nil {
		fail("filesystems", err)
	}
	if r.Network, err = interfaces(ctx); err != nil {
		fail("network", err)
	}
	if c.processes != nil {
		r.Processes = measure(ctx, c.processes.Processes())
	}
	return r, errors.Join(errs...)
}

func cpuTimes(ctx context.Context) (cpu.TimesStat, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpu.TimesStat{}, err
	}
	if len(ts) == 0 {
		return cpu.TimesStat{}, errors.New("no CPU times")
	}
	return ts[0], nil
}

// cpuUsage is the busy share of CPU time since the previous call, computed
// as gopsutil's cpu.Percent does but from this Collector's own baseline:
// that one is global to the process, and one process may hold many agents
// (the load test does).
func (c *Collector) cpuUsage(ctx context.Context) (float64, error) {
	t, err := cpuTimes(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	prev, hasPrev := c.prevCPU, c.hasPrev
	c.prevCPU, c.hasPrev = t, true
	c.mu.Unlock()
	if !hasPrev {
		prev = cpu.TimesStat{} // since boot
	}
	all0, busy0 := busy(prev)
	all1, busy1 := busy(t)
	if all1 <= all0 || busy1 <= busy0 {
		return 0, nil
	}
	return min(1, max(0, (busy1-busy0)/(all1-all0))), nil
}

// busy returns the total and busy CPU time in t. On Linux guest time is
// already counted in user time.
func busy(t cpu.TimesStat) (all, busy float64) {
	all = t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	if runtime.GOOS != "linux" {
		all += t.Guest + t.GuestNice
	}
	return all, all - t.Idle - t.Iowait
}

// filesystems reports filesystems on real devices (one mount point per
// device: bind mounts repeat it), plus the one holding the state dir even
// when it is not on a device (an overlay root in a container). Which they
// are is kept while the mounts do not change (mountCache); their usage is
// read at every sample.
func (c *Collector) filesystems(ctx context.Context) ([]Filesystem, error) {
	picked, err := c.mounts.get(ctx, time.Now(), c.partitions)
	if err != nil {
		return nil, err
	}
	var out []Filesystem
	var errs []error
	for _, p := range picked {
		if len(out) == MaxFilesystems {
			break
		}
		u, err := disk.UsageWithContext(ctx, p.Mountpoint)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u.Total == 0 {
			continue
		}
		out = append(out, Filesystem{
			Path: p.Mountpoint, Device: p.Device, FSType: p.Fstype,
			Total: u.Total, Free: min(u.Free, u.Total), Used: min(u.Used, u.Total),
		})
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// partitions picks the filesystems to report from the mount table, sorted
// by mount point.
func (c *Collector) partitions(ctx context.Context) ([]disk.PartitionStat, error) {
	real, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		return nil, err
	}
	// Shortest mount point first, so a device is named by its main mount.
	slices.SortFunc(real, func(a, b disk.PartitionStat) int {
		return cmpLenThen(a.Mountpoint, b.Mountpoint)
	})
	var picked []disk.PartitionStat
	seenDev, seenPath := map[string]bool{}, map[string]bool{}
	for _, p := range real {
		// A mount point mounted over twice is listed twice; the manager
		// refuses a report that names one twice.
		if seenDev[p.Device] || seenPath[p.Mountpoint] {
			continue
		}
		seenDev[p.Device], seenPath[p.Mountpoint] = true, true
		picked = append(picked, p)
	}
	if c.diskPath != "" {
		if all, err := disk.PartitionsWithContext(ctx, true); err == nil {
			if p, ok := mountOf(c.diskPath, all); ok && !seenDev[p.Device] && !seenPath[p.Mountpoint] {
				picked = append(picked, p)
			}
		}
	}
	slices.SortFunc(picked, func(a, b disk.PartitionStat) int { return strings.Compare(a.Mountpoint, b.Mountpoint) })
	return picked, nil
}

func cmpLenThen(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// mountOf returns the mount that holds path: the longest mount point that
// is path or a parent of it.
func mountOf(path string, mounts []disk.PartitionStat) (disk.PartitionStat, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return disk.PartitionStat{}, false
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	var best disk.PartitionStat
	found := false
	for _, m := range mounts {
		mp := m.Mountpoint
		if abs == mp || mp == "/" || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/") {
			if !found || len(mp) > len(best.Mountpoint) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// interfaces reports every network interface but loopback, by name.
func interfaces(ctx context.Context) ([]Interface, error) {
	counters, err := net.IOCountersWithContext(ctx, true)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(counters, func(a, b net.IOCountersStat) int { return strings.Compare(a.Name, b.Name) })
	var out []Interface
	for _, n := range counters {
		if n.Name == "lo" || strings.HasPrefix(n.Name, "lo0") {
			continue
		}
		if len(out) == MaxInterfaces {
			break
		}
		out = append(out, Interface{
			Device: n.Name, RxBytes: n.BytesRecv, TxBytes: n.BytesSent,
			RxPackets: n.PacketsRecv, TxPackets: n.PacketsSent, RxErrors: n.Errin, TxErrors: n.Errout,
		})
	}
	return out, nil
}

// measure reads the CPU time and resident memory of each named process,
// once per name. One that is gone or a zombie is reported as not running.
func measure(ctx context.Context, procs []Proc) []Process {
	if len(procs) > MaxProcesses {
		procs = procs[:MaxProcesses]
	}
	out := make([]Process, 0, len(procs))
	seen := make(map[string]bool, len(procs))
	for _, p := range procs {
		// Names label the series; the manager refuses one named twice.
		if p.Name == "" || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		m := Process{Name: p.Name, PID: p.PID}
		if p.PID > 0 {
			m.Running, m.CPUSeconds, m.RSS = probe(ctx, p.PID)
		}
		out = append(out, m)
	}
	return out
}

func probe(ctx context.Context, pid int32) (running bool, cpuSeconds float64, rss uint64) {
	pr, err := process.NewProcessWithContext(ctx, pid)
	if err != nil {
		return false, 0, 0
	}
	if st, err := pr.StatusWithContext(ctx); err == nil && slices.Contains(st, process.Zombie) {
		return false, 0, 0
	}
	if t, err := pr.TimesWithContext(ctx); err == nil {
		cpuSeconds = t.User + t.System
	}
	if mi, err := pr.MemoryInfoWithContext(ctx); err == nil {
		rss = mi.RSS
	}
	return true, cpuSeconds, rss
}
