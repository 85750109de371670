// Package facts collects what an agent reports about its host: identity,
// capacity and free resources.
package facts

import (
	"context"
	"fmt"
	"runtime"

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
}

// Collect reads the host's facts; diskPath names the filesystem whose size
// is reported (the agent's state dir: where nodes will be deployed).
func Collect(ctx context.Context, diskPath string) (Facts, error) {
	f := Facts{
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		CPUs:         runtime.NumCPU(),
		AgentVersion: version.Version,
		DiskPath:     diskPath,
	}
	hi, err := host.InfoWithContext(ctx)
	if err != nil {
		return f, fmt.Errorf("host info: %w", err)
	}
	f.Hostname = hi.Hostname
	f.Platform = hi.Platform
	f.PlatformVersion = hi.PlatformVersion
	f.KernelVersion = hi.KernelVersion
	f.BootTime = int64(hi.BootTime)
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return f, fmt.Errorf("memory: %w", err)
	}
	f.MemoryTotal = vm.Total
	f.MemoryAvailable = vm.Available
	du, err := disk.UsageWithContext(ctx, diskPath)
	if err != nil {
		return f, fmt.Errorf("disk usage of %s: %w", diskPath, err)
	}
	f.DiskTotal = du.Total
	f.DiskFree = du.Free
	return f, nil
}
