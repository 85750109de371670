// Package facts collects what an agent reports about its host: identity,
// capacity and free resources.
package facts

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/admq/admq-manager/internal/version"
)

// Facts describes the host; it mirrors the heartbeat message.
type Facts struct {
	Hostname        string
	OS              string
	Platform        string
	PlatformVersion string
	KernelVersion   string
	Arch            string
	CPUs            int
	MemoryTotal     uint64
	MemoryAvailable uint64
	DiskPath        string
	DiskTotal       uint64
	DiskFree        uint64
	AgentVersion    string
	BootTime        int64
	// StateDir is the agent's state dir, which no node dir may overlap.
	StateDir string
}

// Collector collects facts. What does not change while the agent runs
// (platform, kernel, boot time) is read once: finding the platform can mean
// running lsb_release, which is too dear for every heartbeat.
type Collector struct {
	// DiskPath names the filesystem whose size is reported (the agent's
	// state dir: where nodes will be deployed).
	DiskPath string
	// StateDir is reported as it is.
	StateDir string
	// Host reads what does not change; nil: the Collector's own. A
	// process simulating many agents on one host (the load program) gives
	// them one, so that it is read once, not once per agent.
	Host *Host

	own Host
}

// Host holds the facts that do not change while the process runs, read
// once. The zero value is ready to use.
type Host struct {
	once   sync.Once
	static Facts
	err    error
}

// read returns the facts that do not change, reading them the first time.
func (h *Host) read(ctx context.Context) (Facts, error) {
	h.once.Do(func() {
		hi, err := host.InfoWithContext(ctx)
		if err != nil {
			h.err = fmt.Errorf("host info: %w", err)
			return
		}
		h.static = Facts{
			Platform: hi.Platform, PlatformVersion: hi.PlatformVersion,
			KernelVersion: hi.KernelVersion, BootTime: int64(hi.BootTime),
		}
	})
	return h.static, h.err
}

// Collect reads the host's facts.
func (c *Collector) Collect(ctx context.Context) (Facts, error) {
	fixed := c.Host
	if fixed == nil {
		fixed = &c.own
	}
	f, staticErr := fixed.read(ctx)
	f.OS, f.Arch, f.CPUs = runtime.GOOS, runtime.GOARCH, runtime.NumCPU()
	f.AgentVersion, f.DiskPath, f.StateDir = version.Version, c.DiskPath, c.StateDir
	if staticErr != nil {
		return f, staticErr
	}
	// The hostname can change while the agent runs; it is cheap to read.
	h, err := os.Hostname()
	if err != nil {
		return f, fmt.Errorf("hostname: %w", err)
	}
	f.Hostname = h
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return f, fmt.Errorf("memory: %w", err)
	}
	f.MemoryTotal, f.MemoryAvailable = vm.Total, vm.Available
	du, err := disk.UsageWithContext(ctx, c.DiskPath)
	if err != nil {
		return f, fmt.Errorf("disk usage of %s: %w", c.DiskPath, err)
	}
	f.DiskTotal, f.DiskFree = du.Total, du.Free
	return f, nil
}

// Collect reads the host's facts once, with no caching.
func Collect(ctx context.Context, diskPath string) (Facts, error) {
	return (&Collector{DiskPath: diskPath}).Collect(ctx)
}
