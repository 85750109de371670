package fleetmetrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// serverLabels label every series: the server's id, its address as the
// console knows it, its hostname as its agent reports it, and its area's
// name. Prometheus adds instance and job for the manager it scrapes.
var serverLabels = []string{"server", "manager_ip", "hostname", "area"}

// helpOf is each family's help text by its name without admq_node_, for
// WriteText.
var helpOf = map[string]string{}

func desc(name, help string, extra ...string) *prometheus.Desc {
	helpOf[name] = help
	return prometheus.NewDesc("admq_node_"+name, help, append(append([]string{}, serverLabels...), extra...), nil)
}

var (
	descUp         = desc("up", "1 if the server's agent reported metrics recently (within 3 report intervals by default), else 0; the other series of a server that is not up are left out.")
	descLastReport = desc("last_report_timestamp_seconds", "When the manager received the server's last metrics report, in Unix seconds.")
	descCPUUsage   = desc("cpu_usage_ratio", "Share of all CPUs' time spent busy, 0 to 1, over the agent's last report interval.")
	descCPUCount   = desc("cpus", "Logical CPUs.")
	descLoad1      = desc("load1", "1-minute load average.")
	descLoad5      = desc("load5", "5-minute load average.")
	descLoad15     = desc("load15", "15-minute load average.")
	descMemTotal   = desc("memory_total_bytes", "Physical memory.")
	descMemAvail   = desc("memory_available_bytes", "Memory available for new work without swapping.")
	descMemUsed    = desc("memory_used_bytes", "Memory used: total less free, buffers and page cache.")
	descSwapTotal  = desc("swap_total_bytes", "Swap space.")
	descSwapUsed   = desc("swap_used_bytes", "Swap space used.")

	fsLabels   = []string{"mountpoint", "device", "fstype"}
	descFSSize = desc("filesystem_size_bytes", "Filesystem size.", fsLabels...)
	descFSFree = desc("filesystem_free_bytes", "Filesystem space free to unprivileged users.", fsLabels...)
	descFSUsed = desc("filesystem_used_bytes", "Filesystem space used.", fsLabels...)

	descRxBytes   = desc("network_receive_bytes_total", "Bytes received by the interface.", "device")
	descTxBytes   = desc("network_transmit_bytes_total", "Bytes sent by the interface.", "device")
	descRxPackets = desc("network_receive_packets_total", "Packets received by the interface.", "device")
	descTxPackets = desc("network_transmit_packets_total", "Packets sent by the interface.", "device")
	descRxErrors  = desc("network_receive_errors_total", "Receive errors of the interface.", "device")
	descTxErrors  = desc("network_transmit_errors_total", "Transmit errors of the interface.", "device")

	descProcCPU = desc("process_cpu_seconds_total", "CPU time, user plus system, used by the node's process.", "node", "pid")
	descProcRSS = desc("process_resident_memory_bytes", "Resident memory of the node's process.", "node", "pid")
	descProcUp  = desc("process_up", "1 if the node's process is running, else 0.", "node")

	allDescs = []*prometheus.Desc{
		descUp, descLastReport, descCPUUsage, descCPUCount, descLoad1, descLoad5, descLoad15,
		descMemTotal, descMemAvail, descMemUsed, descSwapTotal, descSwapUsed,
		descFSSize, descFSFree, descFSUsed,
		descRxBytes, descTxBytes, descRxPackets, descTxPackets, descRxErrors, descTxErrors,
		descProcCPU, descProcRSS, descProcUp,
	}
)

// Describe implements prometheus.Collector.
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the series of every server that
// has reported. A server whose reports stopped keeps admq_node_up (0) and
// admq_node_last_report_timestamp_seconds; its other series are left out
// rather than repeat old values as if they were current.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	now := s.cfg.Now()
	var buf []string
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string, extra ...string) {
		buf = append(append(buf[:0], labels...), extra...)
		if m, err := prometheus.NewConstMetric(d, t, v, buf...); err == nil {
			ch <- m
		}
	}
	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	for _, e := range s.snapshot() {
		l := e.labels
		up := s.fresh(e, now)
		emit(descUp, gauge, boolFloat(up), l)
		emit(descLastReport, gauge, float64(e.received.UnixMilli())/1e3, l)
		if !up {
			continue
		}
		r := &e.report
		emit(descCPUUsage, gauge, r.CPUUsage, l)
		emit(descCPUCount, gauge, float64(r.CPUCount), l)
		emit(descLoad1, gauge, r.Load1, l)
		emit(descLoad5, gauge, r.Load5, l)
		emit(descLoad15, gauge, r.Load15, l)
		emit(descMemTotal, gauge, float64(r.MemoryTotal), l)
		emit(descMemAvail, gauge, float64(r.MemoryAvailable), l)
		emit(descMemUsed, gauge, float64(r.MemoryUsed), l)
		emit(descSwapTotal, gauge, float64(r.SwapTotal), l)
		emit(descSwapUsed, gauge, float64(r.SwapUsed), l)
		for _, f := range r.Filesystems {
			emit(descFSSize, gauge, float64(f.Total), l, f.Path, f.Device, f.FSType)
			emit(descFSFree, gauge, float64(f.Free), l, f.Path, f.Device, f.FSType)
			emit(descFSUsed, gauge, float64(f.Used), l, f.Path, f.Device, f.FSType)
		}
		for _, n := range r.Network {
			emit(descRxBytes, counter, float64(n.RxBytes), l, n.Device)
			emit(descTxBytes, counter, float64(n.TxBytes), l, n.Device)
			emit(descRxPackets, counter, float64(n.RxPackets), l, n.Device)
			emit(descTxPackets, counter, float64(n.TxPackets), l, n.Device)
			emit(descRxErrors, counter, float64(n.RxErrors), l, n.Device)
			emit(descTxErrors, counter, float64(n.TxErrors), l, n.Device)
		}
		for _, p := range r.Processes {
			emit(descProcUp, gauge, boolFloat(p.Running), l, p.Name)
			if p.Running {
				pid := strconv.Itoa(int(p.PID))
				emit(descProcCPU, counter, p.CPUSeconds, l, p.Name, pid)
				emit(descProcRSS, gauge, float64(p.RSS), l, p.Name, pid)
			}
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var _ prometheus.Collector = (*Store)(nil)
