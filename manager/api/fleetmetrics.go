package api

import (
	"cmp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/paging"
)

// FleetMetrics gives the latest host metrics of every reporting server;
// *fleetmetrics.Store implements it.
type FleetMetrics interface {
	Latest() []fleetmetrics.Sample
}

// serverMetricsView is a server's latest host metrics, as /metrics/fleet
// has them, for clients that read JSON (the console's charts).
type serverMetricsView struct {
	ServerID    ids.ID  `json:"serverId"`
	ManagerIP   string  `json:"managerIp"`
	Hostname    string  `json:"hostname"`
	Area        string  `json:"area"`
	Up          bool    `json:"up"` // the last report is recent (3 intervals)
	CollectTime apiTime `json:"collectTime"`
	CPUUsage    float64 `json:"cpuUsage"` // busy share of all CPUs, 0-1
	CPUCount    int     `json:"cpuCount"`
	Load1       float64 `json:"load1"`
	MemoryTotal uint64  `json:"memoryTotal"`
	MemoryUsed  uint64  `json:"memoryUsed"`
	DiskTotal   uint64  `json:"diskTotal"` // every filesystem, once per device
	DiskUsed    uint64  `json:"diskUsed"`
}

func toServerMetricsView(s fleetmetrics.Sample) serverMetricsView {
	dt, du := s.Report.DiskUsage()
	return serverMetricsView{ServerID: s.ServerID, ManagerIP: s.ManagerIP, Hostname: s.Hostname, Area: s.Area, Up: s.Up,
		CollectTime: apiTime(s.Received), CPUUsage: s.Report.CPUUsage, CPUCount: s.Report.CPUCount, Load1: s.Report.Load1,
		MemoryTotal: s.Report.MemoryTotal, MemoryUsed: s.Report.MemoryUsed, DiskTotal: dt, DiskUsed: du}
}

// fleetSummaryView sums up the fleet's latest metrics over the servers
// that are up: averages, and how many servers fall in each tenth of usage.
type fleetSummaryView struct {
	Reporting       int     `json:"reporting"` // servers that reported since the manager started
	Up              int     `json:"up"`        // of which recently
	CPUUsage        float64 `json:"cpuUsage"`  // mean over servers that are up, 0-1
	MemoryUsedRatio float64 `json:"memoryUsedRatio"`
	DiskUsedRatio   float64 `json:"diskUsedRatio"`
	// Histograms count servers by usage: [0] 0-10 %, … [9] 90-100 %.
	CPUHistogram    []int `json:"cpuHistogram"`
	MemoryHistogram []int `json:"memoryHistogram"`
	DiskHistogram   []int `json:"diskHistogram"`
}

func (a *API) samples() []fleetmetrics.Sample {
	if a.d.FleetMetrics == nil {
		return nil
	}
	return a.d.FleetMetrics.Latest()
}

func (a *API) listServerMetrics(c echo.Context) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	var only map[ids.ID]bool
	if s := c.QueryParam("serverIds"); s != "" {
		parts := strings.Split(s, ",")
		if len(parts) > paging.MaxSize {
			return invalid.Field("serverIds", "at most %d ids", paging.MaxSize)
		}
		only = make(map[ids.ID]bool, len(parts))
		for _, part := range parts {
			id, err := ids.Parse(strings.TrimSpace(part))
			if err != nil {
				return invalid.Field("serverIds", "%v", err)
			}
			only[id] = true
		}
	}
	all := a.samples()
	list := make([]serverMetricsView, 0, len(all))
	for _, s := range all {
		if only == nil || only[s.ServerID] {
			list = append(list, toServerMetricsView(s))
		}
	}
	slices.SortFunc(list, func(x, y serverMetricsView) int {
		return cmp.Or(cmp.Compare(x.ManagerIP, y.ManagerIP), cmp.Compare(x.ServerID, y.ServerID))
	})
	total := len(list)
	lo, hi := min(p.Offset(), total), min(p.Offset()+p.Size, total)
	return ok(c, newPage(p, total, list[lo:hi]))
}

func (a *API) fleetSummary(c echo.Context) error {
	v := fleetSummaryView{CPUHistogram: make([]int, 10), MemoryHistogram: make([]int, 10), DiskHistogram: make([]int, 10)}
	var cpu, mem, disk float64
	var withMem, withDisk int
	bucket := func(r float64) int { return min(9, max(0, int(r*10))) }
	for _, s := range a.samples() {
		v.Reporting++
		if !s.Up {
			continue
		}
		v.Up++
		cpu += s.Report.CPUUsage
		v.CPUHistogram[bucket(s.Report.CPUUsage)]++
		if t := s.Report.MemoryTotal; t > 0 {
			r := float64(s.Report.MemoryUsed) / float64(t)
			mem += r
			withMem++
			v.MemoryHistogram[bucket(r)]++
		}
		if t, u := s.Report.DiskUsage(); t > 0 {
			r := float64(u) / float64(t)
			disk += r
			withDisk++
			v.DiskHistogram[bucket(r)]++
		}
	}
	if v.Up > 0 {
		v.CPUUsage = cpu / float64(v.Up)
	}
	if withMem > 0 {
		v.MemoryUsedRatio = mem / float64(withMem)
	}
	if withDisk > 0 {
		v.DiskUsedRatio = disk / float64(withDisk)
	}
	return ok(c, v)
}
