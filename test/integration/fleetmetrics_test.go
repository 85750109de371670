package integration

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// series is one sample of a scrape: its metric name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeFleet reads GET /metrics/fleet, which needs no login.
func scrapeFleet(t testing.TB, tm *testenv.Manager) []series {
	t.Helper()
	resp, err := http.Get("http://" + tm.HTTPAddr() + "/metrics/fleet")
	if err != nil {
		t.Fatalf("GET /metrics/fleet: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics/fleet: HTTP %d %v: %s", resp.StatusCode, err, body)
	}
	var out []series
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, val, ok := strings.Cut(line, "} ")
		name, labels, ok2 := strings.Cut(head, "{")
		if !ok || !ok2 {
			t.Fatalf("unexpected exposition line %q", line)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("value of %q: %v", line, err)
		}
		s := series{name: name, labels: map[string]string{}, value: v}
		for _, m := range labelRe.FindAllStringSubmatch(labels, -1) {
			s.labels[m[1]] = m[2]
		}
		out = append(out, s)
	}
	return out
}

// ofServer returns the samples of metric name for server id.
func ofServer(all []series, name, id string) []series {
	var out []series
	for _, s := range all {
		if s.name == name && s.labels["server"] == id {
			out = append(out, s)
		}
	}
	return out
}

// exporterStatus is the server's serverExporterStatus in GET /server.
func exporterStatus(t testing.TB, c *testenv.Client, id string) int {
	t.Helper()
	var page struct {
		List []struct {
			ID                   string `json:"id"`
			ServerExporterStatus int    `json:"serverExporterStatus"`
		} `json:"list"`
	}
	c.OK(t, http.MethodGet, "/server?id="+id, nil, &page)
	if len(page.List) != 1 {
		t.Fatalf("server %s is not listed", id)
	}
	return page.List[0].ServerExporterStatus
}

// TestFleetMetrics runs two agents that report host metrics every second
// (the manager's interval) and checks the one scrape that carries both, and
// what happens when one agent dies: its admq_node_up turns 0 within three
// intervals and its other series leave the scrape (rather than repeat stale
// values), and its serverExporterStatus turns 0.
func TestFleetMetrics(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t, func(cfg *manager.Config) { cfg.Tunnel.MetricsInterval = time.Second })
	c := tm.Client(t)
	tok := c.CreateToken(t, 2, 0)
	a1, id1 := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: "127.0.0.31"})
	_, id2 := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: "127.0.0.32"})
	ips := map[string]string{id1: "127.0.0.31", id2: "127.0.0.32"}

	var all []series
	testenv.Eventually(t, 30*time.Second, "both servers up in /metrics/fleet", func() bool {
		all = scrapeFleet(t, tm)
		return len(ofServer(all, "admq_node_up", id1)) == 1 && len(ofServer(all, "admq_node_up", id2)) == 1 &&
			ofServer(all, "admq_node_up", id1)[0].value == 1 && ofServer(all, "admq_node_up", id2)[0].value == 1
	})
	for id, ip := range ips {
		up := ofServer(all, "admq_node_up", id)[0]
		if up.labels["area"] != "默认可用区" || up.labels["manager_ip"] != ip || up.labels["hostname"] == "" {
			t.Errorf("server %s: admq_node_up labels %v, want area 默认可用区, manager_ip %s and a hostname", id, up.labels, ip)
		}
		for _, name := range []string{"admq_node_memory_total_bytes", "admq_node_memory_available_bytes", "admq_node_cpus", "admq_node_filesystem_size_bytes"} {
			got := ofServer(all, name, id)
			if len(got) == 0 || got[0].value <= 0 {
				t.Errorf("server %s: %s = %v, want a positive sample", id, name, got)
			}
		}
		if got := ofServer(all, "admq_node_cpu_usage_ratio", id); len(got) != 1 || got[0].value < 0 || got[0].value > 1 {
			t.Errorf("server %s: cpu usage ratio %v, want one sample in [0, 1]", id, got)
		}
		for _, fs := range ofServer(all, "admq_node_filesystem_size_bytes", id) {
			if fs.labels["mountpoint"] == "" || fs.labels["fstype"] == "" {
				t.Errorf("server %s: filesystem labels %v", id, fs.labels)
			}
		}
		if s := exporterStatus(t, c, id); s != 1 {
			t.Errorf("server %s: serverExporterStatus %d while its agent reports, want 1", id, s)
		}
	}
	t.Logf("one scrape of 2 servers: %d series", len(all))

	// Kill one agent without a word: its reports stop.
	a1.Kill()
	took := testenv.Eventually(t, 30*time.Second, "the killed agent's admq_node_up to turn 0", func() bool {
		all = scrapeFleet(t, tm)
		up := ofServer(all, "admq_node_up", id1)
		return len(up) == 1 && up[0].value == 0
	})
	t.Logf("admq_node_up of the killed agent turned 0 %v after SIGKILL (interval 1s, stale after 3)", took)
	if got := ofServer(all, "admq_node_memory_total_bytes", id1); len(got) != 0 {
		t.Errorf("a server that stopped reporting still has memory series %v", got)
	}
	if got := ofServer(all, "admq_node_last_report_timestamp_seconds", id1); len(got) != 1 {
		t.Errorf("a server that stopped reporting lost its last report time: %v", got)
	}
	if up := ofServer(all, "admq_node_up", id2); len(up) != 1 || up[0].value != 1 {
		t.Errorf("the live agent's admq_node_up is %v, want 1", up)
	}
	if s := exporterStatus(t, c, id1); s != 0 {
		t.Errorf("killed agent's serverExporterStatus %d, want 0", s)
	}
	if s := exporterStatus(t, c, id2); s != 1 {
		t.Errorf("live agent's serverExporterStatus %d, want 1", s)
	}
}
