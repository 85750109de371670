package browser

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// These benchmarks print how long the console takes to show real data on
// loopback: the overview of a fleet of 1,000 servers, and the node table
// of a 100-node cluster. Each iteration loads the page afresh (a new
// navigation, assets from the browser's cache as a returning operator has
// them) and reads performance.now() in the first animation frame where the
// data is on screen: milliseconds since the navigation started. Run them
// with make bench or go test -run '^$' -bench . ./test/browser/.

// fleet registers n servers (pending: no agent) at 198.18.x.y, returning
// their addresses.
func fleet(b *testing.B, c *testenv.Client, n int) []string {
	b.Helper()
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("198.18.%d.%d", 10+i/250, 1+i%250)
		c.OK(b, http.MethodPost, "/server", map[string]any{"managerIp": ips[i]}, nil)
	}
	return ips
}

// loggedIn opens a browser on m's console logged in as the admin.
func loggedIn(b *testing.B, m *testenv.Manager) *browser {
	b.Helper()
	br := newBrowser(b, "http://"+m.HTTPAddr(), "en")
	br.visit("/login", "#login-username")
	br.fill("#login-username", "admin")
	br.fill("#login-password", testenv.AdminPassword)
	br.click("[data-test=login]")
	br.run("log in", chromedp.WaitVisible(chromedp.CSS("[data-test=overview]")))
	return br
}

// renderTime navigates to path and returns the ms from the navigation's
// start to the first frame where cond (a JS expression) holds, and the
// longest of the API requests whose URL contains api.
func renderTime(b *testing.B, br *browser, path, cond, api string) (render, request float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(br.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(br.base+path)); err != nil {
		b.Fatal(err)
	}
	ms, err := chromedp.Run(ctx, chromedp.Poll[float64](`(`+cond+`) && performance.now()`, chromedp.WithPollingTimeout(time.Minute)))
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	req, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf(
		`Math.max(0, ...performance.getEntriesByType('resource').filter(e => e.name.includes(%q)).map(e => e.duration))`, api)))
	if err != nil {
		b.Fatal(err)
	}
	end, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf(
		`Math.max(0, ...performance.getEntriesByType('resource').filter(e => e.name.includes(%q)).map(e => e.responseEnd))`, api)))
	if err == nil {
		b.Logf("%s: data in at %.0f ms, on screen at %.0f ms", path, end, ms)
	}
	if err != nil {
		b.Fatal(err)
	}
	return ms, req
}

func BenchmarkOverviewFirstRender1000Servers(b *testing.B) {
	needBrowser(b)
	m := testenv.StartManager(b)
	fleet(b, m.Client(b), 1000)
	br := loggedIn(b, m)
	var total, api float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, q := renderTime(b, br, "/overview",
			`document.querySelector('[data-test=server-totals] [data-status=pending]')?.textContent.trim() === '1000'`, "/admq-manager/")
		total, api = total+r, api+q
	}
	b.ReportMetric(total/float64(b.N), "ms/render")
	b.ReportMetric(api/float64(b.N), "ms/slowest-api-call")
	br.noProblems()
}

func BenchmarkNodeTable100Nodes(b *testing.B) {
	needBrowser(b)
	m := testenv.StartManager(b)
	c := m.Client(b)
	ips := fleet(b, c, 100)
	pkg := c.UploadPackage(b, buildPackage(b))
	nodes := make([]testenv.ClusterNode, len(ips))
	for i, ip := range ips {
		nodes[i] = testenv.ClusterNode{ManagerIP: ip, ProgramDir: "/opt/admq/{cluster}/{nodeDir}", DataDir: "/var/lib/admq/{cluster}/{nodeDir}"}
	}
	cl := c.CreateCluster(b, testenv.NewCluster{Name: "big", PackageID: pkg.ID, BrokerList: nodes})
	br := loggedIn(b, m)
	var total, api float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, q := renderTime(b, br, "/clusters/"+cl.ID,
			`[...document.querySelectorAll('[data-test=nodes-table] [data-test=run-status]')].filter(e => e.getClientRects().length).length === 100`,
			"/admq-manager/cluster/node?")
		total, api = total+r, api+q
	}
	b.ReportMetric(total/float64(b.N), "ms/render")
	b.ReportMetric(api/float64(b.N), "ms/node-list-call")
	br.noProblems()
}

// buildPackage is the broker package of the journey without its bulk.
func buildPackage(tb testing.TB) string {
	tb.Helper()
	return workloads.Build(tb, tb.TempDir(), "admq-ui-V1.0-x86.tar", nodeManifest(nodePort),
		workloads.Entry{Name: "conf/broker.properties", Data: []byte("greeting=hello\n")})
}
