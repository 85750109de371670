package api

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleetmetrics"
)

func TestServerExporterStatusFollowsReports(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	type view struct {
		ID                   string `json:"id"`
		ServerExporterStatus int    `json:"serverExporterStatus"`
	}
	created := decodeData[view](t, h.call("POST", "/server", tok, map[string]any{"managerIp": "198.18.7.1"}))
	if created.ServerExporterStatus != 0 {
		t.Fatalf("a new server's serverExporterStatus is %d, want 0", created.ServerExporterStatus)
	}
	status := func() int {
		t.Helper()
		list := decodeData[page[view]](t, h.call("GET", "/server?id="+created.ID, tok, nil))
		if len(list.List) != 1 {
			t.Fatalf("server %s not listed", created.ID)
		}
		return list.List[0].ServerExporterStatus
	}
	if s := status(); s != 0 {
		t.Fatalf("serverExporterStatus %d before any report, want 0", s)
	}

	id, err := ids.Parse(created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err = h.metrics.Report(t.Context(), id, fleetmetrics.Report{
		CollectedAt: time.Now(), Hostname: "host-1", CPUUsage: 0.1, CPUCount: 4,
		MemoryTotal: 1 << 30, MemoryAvailable: 1 << 29, MemoryUsed: 1 << 28,
		Filesystems: []fleetmetrics.Filesystem{{Path: "/", Device: "/dev/vda1", FSType: "ext4", Total: 100, Free: 50, Used: 50}},
	}); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != 1 {
		t.Fatalf("serverExporterStatus %d after a report, want 1", s)
	}

	// The fleet scrape needs no login and names the server and its area.
	resp, err := http.Get(h.srv.URL + "/metrics/fleet")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantLine := `admq_node_up{area="默认可用区",hostname="host-1",manager_ip="198.18.7.1",server="` + created.ID + `"} 1`
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), wantLine) {
		t.Fatalf("GET /metrics/fleet: HTTP %d, want a line %s in:\n%s", resp.StatusCode, wantLine, body)
	}
	// The manager's own /metrics stays without them.
	resp, err = http.Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "admq_node_") {
		t.Fatal("/metrics carries the fleet's host metrics")
	}

	// Deleting the server drops its series.
	want(t, h.call("DELETE", "/server?id="+created.ID, tok, nil), 200, 0)
	resp, err = http.Get(h.srv.URL + "/metrics/fleet")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), created.ID) {
		t.Fatalf("a deleted server's series are still served:\n%s", body)
	}
}
