package fleetmetrics

import (
	"math"
	"time"
	"unicode/utf8"

	"github.com/admq/admq-manager/internal/invalid"
)

// Limits on one report. An agent sends at most 32 filesystems and 32
// interfaces; the manager takes twice that from agents built otherwise.
const (
	MaxFilesystems = 64
	MaxInterfaces  = 64
	MaxProcesses   = 1024
	MaxString      = 256
	maxCPUs        = 1 << 16
)

// ratioSlack is the float error tolerated on a ratio outside [0, 1].
const ratioSlack = 1e-6

// Report is one sample of a server's metrics, as its agent sent it.
type Report struct {
	CollectedAt time.Time // by the agent's clock
	Hostname    string
	// CPUUsage is the busy share of all CPUs since the agent's previous
	// sample, 0 to 1.
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
	Free   uint64
	Used   uint64
}

// Interface holds one network interface's counters.
type Interface struct {
	Device               string
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
	RxErrors, TxErrors   uint64
}

// Process describes one node process the agent supervises.
type Process struct {
	Name       string // the node's name
	PID        int32  // 0: not running
	CPUSeconds float64
	RSS        uint64
	Running    bool
}

// Validate refuses a report no real host sends: too many entries, overlong
// or non-UTF-8 strings, ratios outside [0, 1], NaN or infinite values, used
// beyond total, and duplicate names (they would make duplicate series,
// which fail the whole scrape). It clamps a ratio a float error put just
// outside [0, 1].
func (r *Report) Validate() error {
	if err := checkString("hostname", r.Hostname, false); err != nil {
		return err
	}
	if !finite(r.CPUUsage) || r.CPUUsage < -ratioSlack || r.CPUUsage > 1+ratioSlack {
		return invalid.Field("cpuUsageRatio", "%v is not between 0 and 1", r.CPUUsage)
	}
	r.CPUUsage = min(1, max(0, r.CPUUsage))
	if r.CPUCount < 1 || r.CPUCount > maxCPUs {
		return invalid.Field("cpuCount", "%d is not a CPU count", r.CPUCount)
	}
	for name, v := range map[string]float64{"load1": r.Load1, "load5": r.Load5, "load15": r.Load15} {
		if !finite(v) || v < 0 {
			return invalid.Field(name, "%v is not a load average", v)
		}
	}
	if r.MemoryAvailable > r.MemoryTotal || r.MemoryUsed > r.MemoryTotal {
		return invalid.Field("memory", "available or used exceeds total")
	}
	if r.SwapUsed > r.SwapTotal {
		return invalid.Field("swap", "used exceeds total")
	}
	if len(r.Filesystems) > MaxFilesystems {
		return invalid.Field("filesystems", "%d filesystems, at most %d", len(r.Filesystems), MaxFilesystems)
	}
	seen := make(map[string]bool, len(r.Filesystems))
	for _, f := range r.Filesystems {
		if err := checkString("filesystems.path", f.Path, true); err != nil {
			return err
		}
		if err := checkString("filesystems.device", f.Device, false); err != nil {
			return err
		}
		if err := checkString("filesystems.fstype", f.FSType, false); err != nil {
			return err
		}
		if f.Free > f.Total || f.Used > f.Total {
			return invalid.Field("filesystems", "%s: free or used exceeds total", f.Path)
		}
		if seen[f.Path] {
			return invalid.Field("filesystems.path", "%s is listed twice", f.Path)
		}
		seen[f.Path] = true
	}
	if len(r.Network) > MaxInterfaces {
		return invalid.Field("network", "%d interfaces, at most %d", len(r.Network), MaxInterfaces)
	}
	clear(seen)
	for _, n := range r.Network {
		if err := checkString("network.device", n.Device, true); err != nil {
			return err
		}
		if seen[n.Device] {
			return invalid.Field("network.device", "%s is listed twice", n.Device)
		}
		seen[n.Device] = true
	}
	if len(r.Processes) > MaxProcesses {
		return invalid.Field("processes", "%d processes, at most %d", len(r.Processes), MaxProcesses)
	}
	clear(seen)
	for _, p := range r.Processes {
		if err := checkString("processes.name", p.Name, true); err != nil {
			return err
		}
		if p.PID < 0 {
			return invalid.Field("processes.pid", "%d is not a process id", p.PID)
		}
		if !finite(p.CPUSeconds) || p.CPUSeconds < 0 {
			return invalid.Field("processes.cpuSecondsTotal", "%v is not a CPU time", p.CPUSeconds)
		}
		if seen[p.Name] {
			return invalid.Field("processes.name", "%s is listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkString(field, v string, required bool) error {
	switch {
	case required && v == "":
		return invalid.Field(field, "is required")
	case len(v) > MaxString:
		return invalid.Field(field, "longer than %d bytes", MaxString)
	case !utf8.ValidString(v):
		return invalid.Field(field, "is not UTF-8")
	}
	return nil
}
