package tunnel

import (
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
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
		"arch": f.Arch, "diskPath": f.DiskPath, "agentVersion": f.AgentVersion,
	} {
		if len(v) > maxFactString {
			return fleet.Facts{}, invalid.Field("facts."+name, "longer than %d bytes", maxFactString)
		}
	}
	if f.CPUs < 0 || f.CPUs > 1<<16 {
		return fleet.Facts{}, invalid.Field("facts.cpus", "%d is not a CPU count", f.CPUs)
	}
	if f.MemoryAvailable > f.MemoryTotal || f.DiskFree > f.DiskTotal {
		return fleet.Facts{}, invalid.Field("facts", "free exceeds total")
	}
	return f, nil
}
