package fleetmetrics_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// servers is a fake fleet: the label source.
type servers struct {
	mu      sync.Mutex
	byID    map[ids.ID]fleet.Server
	lookups int
}

func (s *servers) Server(_ context.Context, id ids.ID) (fleet.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	srv, ok := s.byID[id]
	if !ok {
		return fleet.Server{}, fleet.ErrServerNotFound
	}
	return srv, nil
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	serverA ids.ID = 1001
	serverB ids.ID = 1002
)

func newStore(t testing.TB) (*fleetmetrics.Store, *servers, *clock, *prometheus.Registry) {
	t.Helper()
	srvs := &servers{byID: map[ids.ID]fleet.Server{
		serverA: {ID: serverA, ManagerIP: "10.0.0.1", AreaName: "默认可用区"},
		serverB: {ID: serverB, ManagerIP: "10.0.1.2", AreaName: "east"},
	}}
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	s := fleetmetrics.New(fleetmetrics.Config{Interval: 15 * time.Second, Now: clk.Now}, srvs, reg)
	return s, srvs, clk, reg
}

// sample is a typical report: two filesystems, two interfaces, two node
// processes of which one is stopped.
func sample(host string) fleetmetrics.Report {
	return fleetmetrics.Report{
		CollectedAt: time.Unix(1_700_000_000, 0), Hostname: host,
		CPUUsage: 0.25, CPUCount: 8, Load1: 1.5, Load5: 1.25, Load15: 1,
		MemoryTotal: 16 << 30, MemoryAvailable: 12 << 30, MemoryUsed: 3 << 30,
		SwapTotal: 2 << 30, SwapUsed: 1 << 20,
		Filesystems: []fleetmetrics.Filesystem{
			{Path: "/", Device: "/dev/vda1", FSType: "ext4", Total: 100 << 30, Free: 60 << 30, Used: 35 << 30},
			{Path: "/data", Device: "/dev/vdb", FSType: "xfs", Total: 500 << 30, Free: 400 << 30, Used: 100 << 30},
		},
		Network: []fleetmetrics.Interface{
			{Device: "eth0", RxBytes: 1000, TxBytes: 2000, RxPackets: 10, TxPackets: 20, RxErrors: 1, TxErrors: 2},
			{Device: "eth1", RxBytes: 3000, TxBytes: 4000, RxPackets: 30, TxPackets: 40},
		},
		Processes: []fleetmetrics.Process{
			{Name: "broker-1", PID: 4242, CPUSeconds: 12.5, RSS: 256 << 20, Running: true},
			{Name: "broker-2"},
		},
	}
}

func report(t testing.TB, s *fleetmetrics.Store, id ids.ID, r fleetmetrics.Report) {
	t.Helper()
	if err := s.Report(context.Background(), id, r); err != nil {
		t.Fatalf("report of %s: %v", id, err)
	}
}

// golden compares the store's exposition with testdata/name, or rewrites
// it under -update.
func golden(t *testing.T, s *fleetmetrics.Store, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(s)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(s, f); err != nil {
		t.Fatal(err)
	}
	sameText(t, s)
}

// sameText checks that WriteText, which the fleet scrape serves, says what
// Collect says, series by series.
func sameText(t *testing.T, s *fleetmetrics.Store) {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(s, &b); err != nil {
		t.Fatalf("WriteText differs from Collect: %v\n%s", err, b.String())
	}
}

func TestTwoServersInTwoAreas(t *testing.T) {
	s, _, clk, _ := newStore(t)
	report(t, s, serverA, sample("host-a"))
	clk.Add(5 * time.Second)
	b := sample("host-b")
	b.Filesystems, b.Processes = b.Filesystems[:1], nil
	report(t, s, serverB, b)
	golden(t, s, "two_servers.prom")
	if !s.Reporting(serverA) || !s.Reporting(serverB) || s.Reporting(9999) {
		t.Error("Reporting: want true for both servers and false for an unknown one")
	}
}

func TestStaleServerIsDown(t *testing.T) {
	s, _, clk, _ := newStore(t)
	report(t, s, serverA, sample("host-a"))
	report(t, s, serverB, sample("host-b"))
	perServer := testutil.CollectAndCount(s) / 2

	clk.Add(45 * time.Second) // 3 intervals: still up
	if !s.Reporting(serverA) {
		t.Fatal("not reporting after 3 intervals")
	}
	report(t, s, serverB, sample("host-b"))
	clk.Add(time.Second) // A is now past 3 intervals; B is fresh
	if s.Reporting(serverA) || !s.Reporting(serverB) {
		t.Fatalf("reporting: A %t, B %t; want false, true", s.Reporting(serverA), s.Reporting(serverB))
	}
	want := `
# HELP admq_node_up 1 if the server's agent reported metrics recently (within 3 report intervals by default), else 0; the other series of a server that is not up are left out.
# TYPE admq_node_up gauge
admq_node_up{area="east",hostname="host-b",manager_ip="10.0.1.2",server="1002"} 1
admq_node_up{area="默认可用区",hostname="host-a",manager_ip="10.0.0.1",server="1001"} 0
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), "admq_node_up"); err != nil {
		t.Fatal(err)
	}
	sameText(t, s)
	// The stale server keeps only up and its last report time.
	if n := testutil.CollectAndCount(s); n != perServer+2 {
		t.Fatalf("%d series, want %d (one fresh server) + 2", n, perServer)
	}
	if n := testutil.CollectAndCount(s, "admq_node_last_report_timestamp_seconds"); n != 2 {
		t.Fatalf("%d last-report series, want 2", n)
	}
	// A new report brings it back.
	report(t, s, serverA, sample("host-a"))
	if n := testutil.CollectAndCount(s); n != 2*perServer {
		t.Fatalf("%d series after the stale server reported again, want %d", n, 2*perServer)
	}
}

func TestForgetRemovesSeries(t *testing.T) {
	s, _, _, _ := newStore(t)
	report(t, s, serverA, sample("host-a"))
	report(t, s, serverB, sample("host-b"))
	both := testutil.CollectAndCount(s)
	s.Forget(serverA)
	if n := testutil.CollectAndCount(s); n != both/2 {
		t.Fatalf("%d series after Forget, want %d", n, both/2)
	}
	if s.Reporting(serverA) {
		t.Fatal("a forgotten server is still reporting")
	}
	want := `
# HELP admq_node_up 1 if the server's agent reported metrics recently (within 3 report intervals by default), else 0; the other series of a server that is not up are left out.
# TYPE admq_node_up gauge
admq_node_up{area="east",hostname="host-b",manager_ip="10.0.1.2",server="1002"} 1
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), "admq_node_up"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownServerIsRefused(t *testing.T) {
	s, _, _, _ := newStore(t)
	err := s.Report(t.Context(), 4242, sample("ghost"))
	if err == nil || !strings.Contains(err.Error(), fleet.ErrServerNotFound.Error()) {
		t.Fatalf("report of an unknown server: %v, want ErrServerNotFound", err)
	}
	if n := testutil.CollectAndCount(s); n != 0 {
		t.Fatalf("%d series", n)
	}
}

// TestLabelsAreLookedUpOnce: a server's address and area are looked up
// on its first report only (they never change); a new hostname comes with
// the report itself. A forgotten (deleted) server is looked up again.
func TestLabelsAreLookedUpOnce(t *testing.T) {
	s, srvs, clk, _ := newStore(t)
	for range 3 {
		report(t, s, serverA, sample("host-a"))
		clk.Add(time.Hour)
	}
	report(t, s, serverA, sample("host-renamed"))
	if srvs.lookups != 1 {
		t.Fatalf("%d label lookups for 4 reports over 3 hours, want 1", srvs.lookups)
	}
	if n := testutil.CollectAndCount(s, "admq_node_up"); n != 1 {
		t.Fatalf("%d up series after a hostname change, want 1", n)
	}
	if got := s.Latest(); len(got) != 1 || got[0].Hostname != "host-renamed" {
		t.Fatalf("latest after a hostname change: %+v", got)
	}
	s.Forget(serverA)
	report(t, s, serverA, sample("host-a"))
	if srvs.lookups != 2 {
		t.Fatalf("%d label lookups after the server was forgotten, want 2", srvs.lookups)
	}
}

// TestReportKnownNeverLooksUp: ReportKnown keeps the report of a server
// that has reported (with a new hostname too), and keeps nothing, without
// a lookup, for one that has not or was forgotten; a bad report is
// refused either way.
func TestReportKnownNeverLooksUp(t *testing.T) {
	s, srvs, _, _ := newStore(t)
	if known, err := s.ReportKnown(serverA, sample("host-a")); known || err != nil {
		t.Fatalf("before any report: known %v, err %v", known, err)
	}
	if srvs.lookups != 0 || testutil.CollectAndCount(s) != 0 {
		t.Fatalf("%d lookups, %d series, want none", srvs.lookups, testutil.CollectAndCount(s))
	}
	report(t, s, serverA, sample("host-a"))
	if known, err := s.ReportKnown(serverA, sample("host-b")); !known || err != nil {
		t.Fatalf("after a report: known %v, err %v", known, err)
	}
	if got := s.Latest(); len(got) != 1 || got[0].Hostname != "host-b" || srvs.lookups != 1 {
		t.Fatalf("latest %+v after %d lookups, want host-b after 1", got, srvs.lookups)
	}
	bad := sample("host-c")
	bad.CPUUsage = 2
	if _, err := s.ReportKnown(serverA, bad); err == nil {
		t.Fatal("a bad report was taken")
	}
	s.Forget(serverA)
	if known, _ := s.ReportKnown(serverA, sample("host-a")); known || testutil.CollectAndCount(s) != 0 {
		t.Fatal("a forgotten server's report was kept")
	}
}

func TestBadReports(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name  string
		edit  func(*fleetmetrics.Report)
		field string
	}{
		{"NaN cpu usage", func(r *fleetmetrics.Report) { r.CPUUsage = math.NaN() }, "cpuUsageRatio"},
		{"cpu usage above 1", func(r *fleetmetrics.Report) { r.CPUUsage = 1.5 }, "cpuUsageRatio"},
		{"infinite load", func(r *fleetmetrics.Report) { r.Load5 = math.Inf(1) }, "load5"},
		{"negative load", func(r *fleetmetrics.Report) { r.Load1 = -1 }, "load1"},
		{"no cpus", func(r *fleetmetrics.Report) { r.CPUCount = 0 }, "cpuCount"},
		{"memory used beyond total", func(r *fleetmetrics.Report) { r.MemoryUsed = r.MemoryTotal + 1 }, "memory"},
		{"swap used beyond total", func(r *fleetmetrics.Report) { r.SwapUsed = r.SwapTotal + 1 }, "swap"},
		{"hostname too long", func(r *fleetmetrics.Report) { r.Hostname = long }, "hostname"},
		{"hostname not UTF-8", func(r *fleetmetrics.Report) { r.Hostname = "\xff" }, "hostname"},
		{"too many filesystems", func(r *fleetmetrics.Report) {
			r.Filesystems = make([]fleetmetrics.Filesystem, fleetmetrics.MaxFilesystems+1)
		}, "filesystems"},
		{"filesystem used beyond total", func(r *fleetmetrics.Report) { r.Filesystems[0].Used = r.Filesystems[0].Total + 1 }, "filesystems"},
		{"filesystem without path", func(r *fleetmetrics.Report) { r.Filesystems[0].Path = "" }, "filesystems.path"},
		{"filesystem listed twice", func(r *fleetmetrics.Report) { r.Filesystems[1].Path = r.Filesystems[0].Path }, "filesystems.path"},
		{"device too long", func(r *fleetmetrics.Report) { r.Filesystems[0].Device = long }, "filesystems.device"},
		{"too many interfaces", func(r *fleetmetrics.Report) {
			r.Network = make([]fleetmetrics.Interface, fleetmetrics.MaxInterfaces+1)
		}, "network"},
		{"interface listed twice", func(r *fleetmetrics.Report) { r.Network[1].Device = r.Network[0].Device }, "network.device"},
		{"too many processes", func(r *fleetmetrics.Report) {
			r.Processes = make([]fleetmetrics.Process, fleetmetrics.MaxProcesses+1)
		}, "processes"},
		{"negative pid", func(r *fleetmetrics.Report) { r.Processes[0].PID = -1 }, "processes.pid"},
		{"NaN process cpu", func(r *fleetmetrics.Report) { r.Processes[0].CPUSeconds = math.NaN() }, "processes.cpuSecondsTotal"},
		{"node listed twice", func(r *fleetmetrics.Report) { r.Processes[1].Name = r.Processes[0].Name }, "processes.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _, _ := newStore(t)
			r := sample("host-a")
			tc.edit(&r)
			err := s.Report(t.Context(), serverA, r)
			e, ok := invalid.As(err)
			if !ok || e.Field != tc.field {
				t.Fatalf("got %v, want an invalid %s", err, tc.field)
			}
			if n := testutil.CollectAndCount(s); n != 0 {
				t.Fatalf("a refused report left %d series", n)
			}
		})
	}
}

func TestRatioJustOutsideRangeIsClamped(t *testing.T) {
	s, _, _, _ := newStore(t)
	r := sample("host-a")
	r.CPUUsage = 1 + 1e-9
	report(t, s, serverA, r)
	want := `
# HELP admq_node_cpu_usage_ratio Share of all CPUs' time spent busy, 0 to 1, over the agent's last report interval.
# TYPE admq_node_cpu_usage_ratio gauge
admq_node_cpu_usage_ratio{area="默认可用区",hostname="host-a",manager_ip="10.0.0.1",server="1001"} 1
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), "admq_node_cpu_usage_ratio"); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsLint(t *testing.T) {
	s, _, _, _ := newStore(t)
	report(t, s, serverA, sample("host-a"))
	problems, err := testutil.CollectAndLint(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// forgetting is a label source during whose lookup the server is deleted.
type forgetting struct {
	*servers
	store *fleetmetrics.Store
}

func (f *forgetting) Server(ctx context.Context, id ids.ID) (fleet.Server, error) {
	srv, err := f.servers.Server(ctx, id)
	f.store.Forget(id)
	return srv, err
}

func TestReportRacingDeleteIsDropped(t *testing.T) {
	_, srvs, _, _ := newStore(t)
	f := &forgetting{servers: srvs}
	s := fleetmetrics.New(fleetmetrics.Config{}, f, prometheus.NewRegistry())
	f.store = s
	if err := s.Report(t.Context(), serverA, sample("host-a")); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(s); n != 0 || s.Reporting(serverA) {
		t.Fatalf("a report of a server deleted meanwhile was kept: %d series", n)
	}
}

// TestTextEscapes checks label values that need escaping in the text
// format: a quote, a backslash and a newline in a mount point.
func TestTextEscapes(t *testing.T) {
	s, _, _, _ := newStore(t)
	r := sample("host-a")
	r.Filesystems[1].Path = "/mnt/a \"b\" \\c"
	r.Processes[0].Name = "broker-\\1"
	report(t, s, serverA, r)
	sameText(t, s)
}

func TestHandlerGzip(t *testing.T) {
	s, _, _, _ := newStore(t)
	report(t, s, serverA, sample("host-a"))
	srv := httptest.NewServer(s.Handler(2))
	defer srv.Close()
	for _, enc := range []string{"", "gzip"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"?gzip=1", nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if enc == "gzip" {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.CollectAndCompare(s, bytes.NewReader(b)); err != nil {
			t.Fatalf("Accept-Encoding %q: %v", enc, err)
		}
	}
}
