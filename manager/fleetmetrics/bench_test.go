package fleetmetrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
)

// BenchmarkReport is the manager's cost of taking in one typical report
// (labels cached, as for all but one report a minute).
func BenchmarkReport(b *testing.B) {
	s, _, _, _ := newStore(b)
	r := sample("host-a")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Report(ctx, serverA, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGather1000 is one scrape's gathering of 1,000 servers' typical
// reports (about 40 series each), before text encoding.
func BenchmarkGather1000(b *testing.B) {
	const n = 1000
	srvs := &servers{byID: map[ids.ID]fleet.Server{}}
	for i := range n {
		id := ids.ID(10_000 + i)
		srvs.byID[id] = fleet.Server{ID: id, ManagerIP: "10.0.0.1", AreaName: "默认可用区"}
	}
	reg := prometheus.NewRegistry()
	s := fleetmetrics.New(fleetmetrics.Config{}, srvs, reg)
	for id := range srvs.byID {
		if err := s.Report(context.Background(), id, sample("host-"+id.String())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var series int
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		series = 0
		for _, mf := range mfs {
			series += len(mf.GetMetric())
		}
	}
	b.ReportMetric(float64(series), "series")
}
