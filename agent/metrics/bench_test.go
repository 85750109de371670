package metrics_test

import (
	"os"
	"testing"

	"github.com/admq/admq-manager/agent/metrics"
)

// BenchmarkCollect is an agent's cost of one report on this host, with one
// supervised process.
func BenchmarkCollect(b *testing.B) {
	c := metrics.NewCollector(b.TempDir(), procs{{Name: "self", PID: int32(os.Getpid())}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Collect(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
