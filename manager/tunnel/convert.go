package tunnel

import (
	"path/filepath"
	"time"

	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

const maxFactString = 256

func factsFromProto(p *agentv1.Facts) fleet.Facts {
	return fleet.Facts{
		Hostname:        p.GetHostname(),
		OS:              p.GetOs(),
		Platform:        p.GetPlatform(),
		PlatformVersion: p.GetPlatformVersion(),
		KernelVersion:   p.GetKernelVersion(),
		Arch:            p.GetArch(),
		CPUs:            int(p.GetCpus()),
		MemoryTotal:     p.GetMemoryTotal(),
		MemoryAvailable: p.GetMemoryAvailable(),
		DiskPath:        p.GetDiskPath(),
		DiskTotal:       p.GetDiskTotal(),
		DiskFree:        p.GetDiskFree(),
		AgentVersion:    p.GetAgentVersion(),
		BootTime:        p.GetBootTime(),
		StateDir:        p.GetStateDir(),
	}
}

// factsFromProtoChecked converts facts an agent sent, refusing values no
// real host reports, so that a broken or hostile agent cannot fill the store
// with junk.
func factsFromProtoChecked(p *agentv1.Facts) (fleet.Facts, error) {
	f := factsFromProto(p)
	for name, v := range map[string]string{
		"hostname": f.Hostname, "os": f.OS, "platform": f.Platform,
		"platformVersion": f.PlatformVersion, "kernelVersion": f.KernelVersion,
		"arch": f.Arch, "diskPath": f.DiskPath, "agentVersion": f.AgentVersion, "stateDir": f.StateDir,
	} {
		if len(v) > maxFactString {
			return fleet.Facts{}, invalid.Field("facts."+name, "longer than %d bytes", maxFactString)
		}
	}
	if f.StateDir != "" && (!filepath.IsAbs(f.StateDir) || filepath.Clean(f.StateDir) != f.StateDir) {
		return fleet.Facts{}, invalid.Field("facts.stateDir", "%q is not an absolute, clean path", f.StateDir)
	}
	if f.CPUs < 0 || f.CPUs > 1<<16 {
		return fleet.Facts{}, invalid.Field("facts.cpus", "%d is not a CPU count", f.CPUs)
	}
	if f.MemoryAvailable > f.MemoryTotal || f.DiskFree > f.DiskTotal {
		return fleet.Facts{}, invalid.Field("facts", "free exceeds total")
	}
	return f, nil
}

// metricsFromProto converts a metrics report an agent sent. It refuses
// oversized lists before copying them; fleetmetrics validates the rest.
func metricsFromProto(p *agentv1.MetricsReport) (fleetmetrics.Report, error) {
	switch {
	case len(p.GetFilesystems()) > fleetmetrics.MaxFilesystems:
		return fleetmetrics.Report{}, invalid.Field("filesystems", "%d filesystems, at most %d", len(p.GetFilesystems()), fleetmetrics.MaxFilesystems)
	case len(p.GetNetwork()) > fleetmetrics.MaxInterfaces:
		return fleetmetrics.Report{}, invalid.Field("network", "%d interfaces, at most %d", len(p.GetNetwork()), fleetmetrics.MaxInterfaces)
	case len(p.GetProcesses()) > fleetmetrics.MaxProcesses:
		return fleetmetrics.Report{}, invalid.Field("processes", "%d processes, at most %d", len(p.GetProcesses()), fleetmetrics.MaxProcesses)
	}
	r := fleetmetrics.Report{
		CollectedAt:     time.UnixMilli(p.GetCollectedAtUnixMs()),
		Hostname:        p.GetHostname(),
		CPUUsage:        p.GetCpuUsageRatio(),
		CPUCount:        int(p.GetCpuCount()),
		Load1:           p.GetLoad1(),
		Load5:           p.GetLoad5(),
		Load15:          p.GetLoad15(),
		MemoryTotal:     p.GetMemoryTotalBytes(),
		MemoryAvailable: p.GetMemoryAvailableBytes(),
		MemoryUsed:      p.GetMemoryUsedBytes(),
		SwapTotal:       p.GetSwapTotalBytes(),
		SwapUsed:        p.GetSwapUsedBytes(),
	}
	if n := len(p.GetFilesystems()); n > 0 {
		r.Filesystems = make([]fleetmetrics.Filesystem, n)
		for i, f := range p.GetFilesystems() {
			r.Filesystems[i] = fleetmetrics.Filesystem{
				Path: f.GetPath(), Device: f.GetDevice(), FSType: f.GetFstype(),
				Total: f.GetTotalBytes(), Free: f.GetFreeBytes(), Used: f.GetUsedBytes(),
			}
		}
	}
	if n := len(p.GetNetwork()); n > 0 {
		r.Network = make([]fleetmetrics.Interface, n)
		for i, nic := range p.GetNetwork() {
			r.Network[i] = fleetmetrics.Interface{
				Device: nic.GetDevice(), RxBytes: nic.GetRxBytes(), TxBytes: nic.GetTxBytes(),
				RxPackets: nic.GetRxPackets(), TxPackets: nic.GetTxPackets(),
				RxErrors: nic.GetRxErrors(), TxErrors: nic.GetTxErrors(),
			}
		}
	}
	if n := len(p.GetProcesses()); n > 0 {
		r.Processes = make([]fleetmetrics.Process, n)
		for i, pr := range p.GetProcesses() {
			r.Processes[i] = fleetmetrics.Process{
				Name: pr.GetName(), PID: pr.GetPid(), CPUSeconds: pr.GetCpuSecondsTotal(),
				RSS: pr.GetRssBytes(), Running: pr.GetRunning(),
			}
		}
	}
	return r, nil
}
