package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleetmetrics"
)

// TestConsoleBesideTheAPI: the console answers outside the API's prefix,
// the API is untouched under it, and a wrong API path is still the JSON
// error, never the console's page.
func TestConsoleBesideTheAPI(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		method, path string
		status       int
		html         bool
	}{
		{"GET", "/", 200, true},
		{"GET", "/clusters/1995325829847502849", 200, true},
		{"HEAD", "/overview", 200, true},
		{"GET", "/admq-manager/health", 200, false},
		{"GET", "/admq-manager/no-such-route", 404, false},
		{"GET", "/admq-manager", 404, false},
		{"GET", "/admq-manager/", 404, false},
		{"GET", "/metrics/nope", 404, false},
		{"POST", "/overview", 405, false},
		{"PATCH", "/admq-manager/area", 405, false},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, h.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		isHTML := strings.HasPrefix(ct, "text/html")
		if isHTML != tc.html {
			t.Errorf("%s %s: Content-Type %q, want html=%t", tc.method, tc.path, ct, tc.html)
		}
		if !tc.html {
			var env struct{ Code *int }
			if err := json.Unmarshal(body, &env); err != nil || env.Code == nil {
				t.Errorf("%s %s: not an envelope: %q", tc.method, tc.path, body)
			}
			if resp.Header.Get("Content-Security-Policy") != "" && !strings.HasPrefix(tc.path, "/admq-manager") && tc.status != 405 {
				t.Errorf("%s %s: an API answer carries the console's CSP", tc.method, tc.path)
			}
		} else if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s %s: the console answers without a CSP", tc.method, tc.path)
		}
	}
}

func TestHealthSaysTheTimeZone(t *testing.T) {
	h := newHarness(t)
	v := decodeData[healthView](t, h.call("GET", "/health", "", nil))
	_, off := time.Now().Zone()
	if v.UTCOffsetSeconds != off || v.TimeZone == "" {
		t.Errorf("health %+v: want the manager's zone, offset %d", v, off)
	}
}

func TestServerMetricsJSON(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	type srv struct {
		ID string `json:"id"`
	}
	var list []ids.ID
	for i, u := range []float64{0.05, 0.55, 0.95} {
		s := decodeData[srv](t, h.call("POST", "/server", tok, map[string]any{"managerIp": "198.18.9." + string(rune('1'+i))}))
		id, _ := ids.Parse(s.ID)
		list = append(list, id)
		err := h.metrics.Report(t.Context(), id, fleetmetrics.Report{
			CollectedAt: time.Now(), Hostname: "h", CPUUsage: u, CPUCount: 2,
			MemoryTotal: 1000, MemoryUsed: uint64(u * 1000), MemoryAvailable: 1000 - uint64(u*1000),
			Filesystems: []fleetmetrics.Filesystem{
				{Path: "/", Device: "/dev/vda1", FSType: "ext4", Total: 100, Used: 20, Free: 80},
				{Path: "/srv", Device: "/dev/vda1", FSType: "ext4", Total: 100, Used: 20, Free: 80}, // same device: once
				{Path: "/data", Device: "/dev/vdb", FSType: "xfs", Total: 300, Used: 0, Free: 300},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sum := decodeData[fleetSummaryView](t, h.call("GET", "/server/metrics/summary", tok, nil))
	if sum.Reporting != 3 || sum.Up != 3 {
		t.Fatalf("summary %+v: want 3 reporting and up", sum)
	}
	if got := sum.CPUHistogram; got[0] != 1 || got[5] != 1 || got[9] != 1 {
		t.Errorf("cpu histogram %v: want one server in buckets 0, 5 and 9", got)
	}
	if d := sum.DiskUsedRatio; d < 0.0499 || d > 0.0501 {
		t.Errorf("disk used ratio %v, want 20/400 = 0.05 (a device mounted twice counts once)", d)
	}
	if c := sum.CPUUsage; c < 0.5166 || c > 0.5168 {
		t.Errorf("mean cpu %v, want 0.5167", c)
	}

	type row struct {
		ServerID  ids.ID `json:"serverId"`
		DiskTotal uint64 `json:"diskTotal"`
		Up        bool   `json:"up"`
	}
	page := decodeData[page[row]](t, h.call("GET", "/server/metrics?serverIds="+list[2].String()+","+list[0].String(), tok, nil))
	if page.Total != 2 || len(page.List) != 2 || page.List[0].ServerID != list[0] || page.List[1].DiskTotal != 400 || !page.List[0].Up {
		t.Errorf("metrics of two servers: %+v", page)
	}
	want(t, h.call("GET", "/server/metrics?serverIds=x", tok, nil), 400, codeParamInvalid)
	want(t, h.call("GET", "/server/metrics", "", nil), 401, codeTokenInvalid)
}

func TestAuditFilters(t *testing.T) {
	h := newHarness(t)
	tok := h.login("admin", adminPassword)
	want(t, h.call("POST", "/area", tok, map[string]string{"code": "a1", "area": "one"}), 200, 0)
	want(t, h.call("POST", "/user", tok, map[string]string{"username": "op", "password": "op-secret-1", "role": "operator"}), 200, 0)
	op := h.login("op", "op-secret-1")
	want(t, h.call("POST", "/area", op, map[string]string{"code": "a2", "area": "two"}), 200, 0)
	want(t, h.call("DELETE", "/area?id=1", op, nil), 404, codeAreaNotExist)

	count := func(q string) int {
		t.Helper()
		return decodeData[page[struct{}]](t, h.call("GET", "/audit?pageSize=500&"+q, tok, nil)).Total
	}
	if n := count("username=op"); n != 3 {
		t.Errorf("username=op: %d entries, want 3 (login, area, delete)", n)
	}
	if n := count("username=op&method=delete"); n != 1 {
		t.Errorf("op's DELETEs: %d, want 1", n)
	}
	if n := count("path=/area"); n != 3 {
		t.Errorf("path=/area: %d, want 3", n)
	}
	now := time.Now()
	if n := count("from=" + urlTime(now.Add(time.Hour))); n != 0 {
		t.Errorf("from an hour ahead: %d entries, want 0", n)
	}
	if n := count("from=" + urlTime(now.Add(-time.Hour)) + "&to=" + urlTime(now.Add(time.Hour)) + "&username=admin&method=POST"); n < 3 {
		t.Errorf("admin's POSTs this hour: %d, want at least 3 (login, area, user)", n)
	}
	want(t, h.call("GET", "/audit?from=yesterday", tok, nil), 400, codeParamInvalid)
	want(t, h.call("GET", "/audit?from="+urlTime(now)+"&to="+urlTime(now.Add(-time.Hour)), tok, nil), 400, codeParamInvalid)
}

func urlTime(t time.Time) string { return strings.ReplaceAll(t.Format(timeLayout), " ", "%20") }
