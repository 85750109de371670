package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// BenchmarkApolloLatency measures the Open API's answer times on loopback
// with a real manager and agents, one request at a time, as
// ApolloOpenApiClient sends them: an item read, a page of items, an item
// update, and a publish (the call: the release recorded and its rollout
// started, not the rollout, which is awaited outside the timer). It
// reports p50 and p99 besides ns/op.
func BenchmarkApolloLatency(b *testing.B) {
	if testing.Short() {
		b.Skip("integration benchmark: real manager and agents; skipped with -short")
	}
	e := startApolloEnv(b, "127.0.97")
	j := e.java()
	ns := func(cluster string, more ...string) []string {
		return testenv.NS("PRO", apolloApp, cluster, "app.properties", more...)
	}
	// latency times each call of fn and reports the percentiles.
	latency := func(b *testing.B, fn func(i int) time.Duration) {
		d := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			d = append(d, fn(i))
		}
		b.StopTimer()
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)*50/100].Microseconds()), "p50-µs")
		b.ReportMetric(float64(d[min(len(d)-1, len(d)*99/100)].Microseconds()), "p99-µs")
	}
	timed := func(b *testing.B, method string, path []string, query [][2]string, body any) time.Duration {
		began := time.Now()
		j.Must(b, 200, method, path, query, body)
		return time.Since(began)
	}
	b.Run("item get", func(b *testing.B) {
		latency(b, func(int) time.Duration { return timed(b, "GET", ns("default", "items", "session.timeout"), nil, nil) })
	})
	b.Run("item list", func(b *testing.B) {
		latency(b, func(int) time.Duration {
			return timed(b, "GET", ns("default", "items"), [][2]string{{"page", "0"}, {"size", "50"}}, nil)
		})
	})
	b.Run("item update", func(b *testing.B) {
		latency(b, func(i int) time.Duration {
			return timed(b, "PUT", ns("default", "items", "session.timeout"), nil,
				testenv.ApolloItem{Key: "session.timeout", Value: fmt.Sprint(3000 + i), DataChangeLastModifiedBy: "admin"})
		})
	})
	b.Run("publish", func(b *testing.B) {
		// Each publish changes a key of storage-1 and flushes it; the
		// next waits until the flush is done.
		latency(b, func(i int) time.Duration {
			b.StopTimer()
			j.Must(b, 200, "PUT", ns("storage-1", "items", "session.timeout"), nil,
				testenv.ApolloItem{Key: "session.timeout", Value: fmt.Sprint(5000 + i), DataChangeLastModifiedBy: "admin"})
			b.StartTimer()
			began := time.Now()
			a := j.Must(b, 200, "POST", ns("storage-1", "releases"), nil, testenv.ApolloRelease{ReleaseTitle: fmt.Sprint("bench ", i), ReleasedBy: "admin"})
			took := time.Since(began)
			b.StopTimer()
			var r struct{ ID int64 }
			json.Unmarshal(a.Body, &r)
			settled(b, j, "storage-1", "app.properties", r.ID)
			b.StartTimer()
			return took
		})
	})
}
