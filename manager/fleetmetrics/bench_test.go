package fleetmetrics_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

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

// fleetOf returns a store holding n servers' typical reports (about 40
// series each).
func fleetOf(b *testing.B, n int) (*fleetmetrics.Store, *prometheus.Registry) {
	srvs := &servers{byID: map[ids.ID]fleet.Server{}}
	for i := range n {
		id := ids.ID(10_000 + i)
		srvs.byID[id] = fleet.Server{ID: id, ManagerIP: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), AreaName: "默认可用区"}
	}
	reg := prometheus.NewRegistry()
	s := fleetmetrics.New(fleetmetrics.Config{}, srvs, reg)
	for id := range srvs.byID {
		if err := s.Report(context.Background(), id, sample("host-"+id.String())); err != nil {
			b.Fatal(err)
		}
	}
	return s, reg
}

// BenchmarkWriteText10000 is one fleet scrape of 10,000 servers as served:
// the text format written straight from the stored reports (bytes/op is
// what one scrape allocates; MB/scrape its size).
func BenchmarkWriteText10000(b *testing.B) {
	s, _ := fleetOf(b, 10000)
	var cw countingWriter
	b.ReportAllocs()
	for b.Loop() {
		cw = 0
		if err := s.WriteText(&cw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cw)/1e6, "MB/scrape")
}

// BenchmarkWriteTextGzip10000 is the same scrape gzipped, as Prometheus
// asks for it.
func BenchmarkWriteTextGzip10000(b *testing.B) {
	s, _ := fleetOf(b, 10000)
	var cw countingWriter
	b.ReportAllocs()
	for b.Loop() {
		cw = 0
		zw, _ := gzip.NewWriterLevel(&cw, gzip.BestSpeed)
		if err := s.WriteText(zw); err != nil {
			b.Fatal(err)
		}
		zw.Close()
	}
	b.ReportMetric(float64(cw)/1e6, "MB/scrape")
}

// BenchmarkGatherText10000 is what a scrape of 10,000 servers cost before
// WriteText: the registry's Gather and the text encoding of its result.
func BenchmarkGatherText10000(b *testing.B) {
	_, reg := fleetOf(b, 10000)
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		var cw countingWriter
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&cw, mf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
