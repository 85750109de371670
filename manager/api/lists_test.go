package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetmetrics"
	"github.com/admq/admq-manager/manager/paging"
)

// raw returns the body of GET path as the server sent it.
func (h *harness) raw(path, token string) []byte {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+Prefix+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		h.t.Fatalf("GET %s: HTTP %d %q: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return body
}

// encodeAsEcho encodes v as echo's c.JSON does (encoding/json's Encoder),
// indented with ?pretty.
func encodeAsEcho(t testing.TB, v any, pretty bool) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if pretty {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// serverListAsBefore is what GET /server answered before the list kept
// encoded servers: the views of fleet's Servers, encoded whole.
func serverListAsBefore(t testing.TB, d Deps, f fleet.ServerFilter, p paging.Page, pretty bool) []byte {
	t.Helper()
	list, total, err := d.Fleet.Servers(t.Context(), f, p)
	if err != nil {
		t.Fatal(err)
	}
	views := make([]serverView, len(list))
	idList := make([]ids.ID, len(list))
	for i, s := range list {
		views[i] = toServerView(s)
		if d.Exporters.Reporting(s.ID) {
			views[i].ServerExporterStatus = 1
		}
		idList[i] = s.ID
	}
	if d.Clusters != nil {
		names, err := d.Clusters.ClusterNamesOnServers(t.Context(), idList)
		if err != nil {
			t.Fatal(err)
		}
		for i := range views {
			views[i].DeployClusters = strings.Join(names[views[i].ID], ", ")
		}
	}
	return encodeAsEcho(t, envelope{Code: 0, Msg: "SUCCESS", Message: "success", Data: newPage(p, total, views)}, pretty)
}

// TestServerListBytes: GET /server sends the bytes it sent before it kept
// encoded servers, for every filter, on pages with pending, offline and
// online servers, kept credentials, a reporting collector, clusters and
// characters encoding/json escapes; twice (encoded, then kept).
func TestServerListBytes(t *testing.T) {
	h, op, zk, _ := newClusterHarness(t)
	d := h.deps(t)
	ctx := t.Context()
	r := h.call("POST", "/server", op, map[string]any{"managerIp": "10.1.0.9", "cpuInfo": `<b>"16 x Xeon" & co</b>`, "account": "ops\u2028"})
	want(t, r, 200, 0)
	list := decodeData[page[struct{ ID, ManagerIP string }]](t, h.call("GET", "/server?pageSize=100", op, nil))
	if list.Total != 5 {
		t.Fatalf("%d servers, want 5", list.Total)
	}
	id := func(i int) ids.ID { v, _ := ids.Parse(list.List[i].ID); return v }
	// 0 online with facts and a collector, 1 offline with a kept password,
	// 2 with facts only, the rest pending.
	admin := h.login("admin", adminPassword)
	h.enroll(admin, id(0), "a0")
	h.enroll(admin, id(1), "a1")
	h.presence.Connected(id(0))
	h.presence.Heartbeat(id(0), fleet.Facts{Hostname: "web-<1>", OS: "linux", CPUs: 4, MemoryTotal: 1 << 33, AgentVersion: "1.2.3"})
	h.presence.Heartbeat(id(2), fleet.Facts{Hostname: "web-2", OS: "linux", CPUs: 2})
	h.presence.Flush(ctx)
	if err := h.db.SetServerSecrets(ctx, id(1), fleet.SealedSecrets{Password: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	if err := h.metrics.Report(ctx, id(0), fleetmetrics.Report{CollectedAt: time.Now(), Hostname: "web-<1>", CPUUsage: 0.5, CPUCount: 4,
		MemoryTotal: 1000, MemoryUsed: 500, MemoryAvailable: 500}); err != nil {
		t.Fatal(err)
	}
	want(t, h.call("POST", "/admq/cluster", op, map[string]any{"name": "c1", "packageId": zk,
		"zkList": zkList(list.List[1].ManagerIP, list.List[2].ManagerIP, list.List[3].ManagerIP)}), 200, 0)

	area, err := h.db.AreaByCode(ctx, fleet.DefaultAreaCode)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		f     fleet.ServerFilter
		p     paging.Page
	}{
		{"", fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10}},
		{"pageSize=2&pageNum=2", fleet.ServerFilter{}, paging.Page{Num: 2, Size: 2}},
		{"pageSize=2&pageNum=9", fleet.ServerFilter{}, paging.Page{Num: 9, Size: 2}},
		{"areaId=" + area.ID.String(), fleet.ServerFilter{AreaID: area.ID}, paging.Page{Num: 1, Size: 10}},
		{"areaId=42", fleet.ServerFilter{AreaID: 42}, paging.Page{Num: 1, Size: 10}},
		{"hostname=web-", fleet.ServerFilter{HostnamePrefix: "web-"}, paging.Page{Num: 1, Size: 10}},
		{"agentStatus=online", fleet.ServerFilter{Status: fleet.StatusOnline}, paging.Page{Num: 1, Size: 10}},
		{"agentStatus=offline", fleet.ServerFilter{Status: fleet.StatusOffline}, paging.Page{Num: 1, Size: 10}},
		{"agentStatus=pending&pageSize=1", fleet.ServerFilter{Status: fleet.StatusPending}, paging.Page{Num: 1, Size: 1}},
		{"pretty", fleet.ServerFilter{}, paging.Page{Num: 1, Size: 10}},
	} {
		pretty := tc.query == "pretty"
		wantBody := serverListAsBefore(t, d, tc.f, tc.p, pretty)
		for round := range 2 {
			if got := h.raw("/server?"+tc.query, op); !bytes.Equal(got, wantBody) {
				t.Fatalf("GET /server?%s (round %d):\n%s\nwant\n%s", tc.query, round, got, wantBody)
			}
		}
	}
	body := string(h.raw("/server", op))
	for _, s := range []string{`"agentStatus":"online"`, `"agentStatus":"offline"`, `"agentStatus":"pending"`, `"password":"******"`,
		`"serverExporterStatus":1`, `"deployClusters":"c1"`, `\u003cb\u003e`, `\u2028`} {
		if !strings.Contains(body, s) {
			t.Errorf("no %s in %s", s, body)
		}
	}
}

// enroll makes the pending server id enrolled, with certificate serial
// serial, as an agent's enrollment with a new join token does.
func (h *harness) enroll(token string, id ids.ID, serial string) {
	h.t.Helper()
	r := h.call("POST", "/agent/token", token, nil)
	want(h.t, r, 200, 0)
	tok := decodeData[struct{ ID string }](h.t, r)
	srv, err := h.db.Server(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.db.CompleteEnrollment(h.t.Context(), enroll.Enrollment{TokenID: tok.ID, Now: time.Now(), ServerID: id,
		ManagerIP: srv.ManagerIP, Hostname: "enrolled-" + serial, CertSerial: serial})
	if err != nil {
		h.t.Fatal(err)
	}
}

// TestServerListSeesWrites: after each kind of write to servers (added,
// facts reported, enrolled, connected and gone, credentials kept and
// dropped, nodes placed on it, added in another area, deleted) the next
// GET /server, with every filter, answers what a fresh encoding of the
// store's servers answers: nothing kept outlives the write.
func TestServerListSeesWrites(t *testing.T) {
	h, op, _, nats := newClusterHarness(t)
	d := h.deps(t)
	ctx := t.Context()
	admin := h.login("admin", adminPassword)
	want(t, h.call("POST", "/area", op, map[string]string{"code": "east", "area": "East"}), 200, 0)
	east := decodeData[page[struct{ ID, Code string }]](t, h.call("GET", "/area", op, nil))
	var eastID ids.ID
	for _, a := range east.List {
		if a.Code == "east" {
			eastID, _ = ids.Parse(a.ID)
		}
	}
	filters := []struct {
		query string
		f     fleet.ServerFilter
	}{
		{"", fleet.ServerFilter{}},
		{"areaId=" + eastID.String(), fleet.ServerFilter{AreaID: eastID}},
		{"hostname=db-", fleet.ServerFilter{HostnamePrefix: "db-"}},
		{"agentStatus=online", fleet.ServerFilter{Status: fleet.StatusOnline}},
		{"agentStatus=offline", fleet.ServerFilter{Status: fleet.StatusOffline}},
		{"agentStatus=pending", fleet.ServerFilter{Status: fleet.StatusPending}},
	}
	check := func(step string) string {
		t.Helper()
		for _, f := range filters {
			p := paging.Page{Num: 1, Size: 100}
			wantBody := serverListAsBefore(t, d, f.f, p, false)
			if got := h.raw("/server?pageSize=100&"+f.query, op); !bytes.Equal(got, wantBody) {
				t.Fatalf("%s: GET /server?%s:\n%s\nwant\n%s", step, f.query, got, wantBody)
			}
		}
		return string(h.raw("/server?pageSize=100", op))
	}
	check("start")

	r := h.call("POST", "/server", op, map[string]any{"managerIp": "10.1.0.20", "cpuInfo": "first"})
	want(t, r, 200, 0)
	id, _ := ids.Parse(decodeData[struct{ ID string }](t, r).ID)
	if body := check("added"); !strings.Contains(body, `"managerIp":"10.1.0.20"`) {
		t.Fatalf("added server not listed: %s", body)
	}
	h.presence.Heartbeat(id, fleet.Facts{Hostname: "db-1", MemoryAvailable: 1111})
	h.presence.Flush(ctx)
	if body := check("facts"); !strings.Contains(body, `"hostname":"db-1"`) || !strings.Contains(body, `"memoryAvailable":1111`) {
		t.Fatalf("facts not listed: %s", body)
	}
	h.presence.Heartbeat(id, fleet.Facts{Hostname: "db-1", MemoryAvailable: 2222})
	h.presence.Flush(ctx)
	if body := check("new facts"); !strings.Contains(body, `"memoryAvailable":2222`) {
		t.Fatalf("new facts not listed: %s", body)
	}
	h.enroll(admin, id, "e1")
	check("enrolled")
	h.presence.Connected(id)
	if body := check("connected"); !strings.Contains(body, `"agentStatus":"online"`) {
		t.Fatalf("online server not listed: %s", body)
	}
	h.presence.Disconnected(id)
	h.presence.Flush(ctx)
	check("disconnected")
	if err := h.db.SetServerSecrets(ctx, id, fleet.SealedSecrets{PrivateKey: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	if body := check("key kept"); !strings.Contains(body, `"privateKey":"******"`) {
		t.Fatalf("kept key not listed: %s", body)
	}
	if err := h.db.SetServerSecrets(ctx, id, fleet.SealedSecrets{}); err != nil {
		t.Fatal(err)
	}
	if body := check("key dropped"); strings.Contains(body, `"privateKey":"******"`) {
		t.Fatalf("dropped key listed: %s", body)
	}
	want(t, h.call("POST", "/admq/cluster", op, map[string]any{"name": "n1", "packageId": nats,
		"brokerList": []map[string]any{{"managerIp": "10.1.0.20", "programDir": "/opt/n1", "dataDir": "/data/n1"}}}), 200, 0)
	if body := check("cluster"); !strings.Contains(body, `"deployClusters":"n1"`) {
		t.Fatalf("cluster not listed: %s", body)
	}
	r = h.call("POST", "/server", op, map[string]any{"managerIp": "10.1.0.21", "room": "east"})
	want(t, r, 200, 0)
	id2, _ := ids.Parse(decodeData[struct{ ID string }](t, r).ID)
	if body := check("added in east"); !strings.Contains(body, `"room":"East"`) {
		t.Fatalf("server in east not listed: %s", body)
	}
	want(t, h.call("DELETE", "/server", op, map[string]string{"id": id2.String()}), 200, 0)
	if body := check("deleted"); strings.Contains(body, `"managerIp":"10.1.0.21"`) {
		t.Fatalf("deleted server listed: %s", body)
	}
}

// TestNodeItemListSeesWrites: GET /cluster/node/config sends the bytes a
// fresh encoding of the store's items sends (pages, ?pretty), and after
// each kind of write to a node file's items (the layer's added, changed,
// turned off and deleted; the node's overridden, reset, added) the next
// list shows it, on every page.
func TestNodeItemListSeesWrites(t *testing.T) {
	h, op, zk, _ := newClusterHarness(t)
	d := h.deps(t)
	r := h.call("POST", "/admq/cluster", op, map[string]any{"name": "c1", "packageId": zk, "zkList": zkList("10.1.0.1", "10.1.0.2", "10.1.0.3")})
	want(t, r, 200, 0)
	cl := decodeData[clusterItem](t, r)
	layer := decodeData[[]struct{ ID string }](t, h.call("GET", "/cluster/config/file?clusterId="+cl.ID, op, nil))[0].ID
	nodeFile := decodeData[[]struct{ ID string }](t, h.call("GET", "/cluster/node/config/file?nodeId="+cl.Nodes[0].ID, op, nil))[0].ID
	fid, _ := ids.Parse(nodeFile)
	check := func(step string) map[string]itemItem {
		t.Helper()
		for _, q := range []struct {
			query  string
			p      paging.Page
			pretty bool
		}{{"", paging.Page{Num: 1, Size: 10}, false}, {"&pageSize=2&pageNum=2", paging.Page{Num: 2, Size: 2}, false},
			{"&pageSize=3&pretty", paging.Page{Num: 1, Size: 3}, true}} {
			items, total, err := d.Config.NodeItems(t.Context(), fid, q.p)
			if err != nil {
				t.Fatal(err)
			}
			views := make([]configItemView, len(items))
			for i, it := range items {
				views[i] = toNodeItemView(it)
			}
			wantBody := encodeAsEcho(t, envelope{Code: 0, Msg: "SUCCESS", Message: "success", Data: newPage(q.p, total, views)}, q.pretty)
			for round := range 2 {
				if got := h.raw("/cluster/node/config?configFileId="+nodeFile+q.query, op); !bytes.Equal(got, wantBody) {
					t.Fatalf("%s: page %s (round %d):\n%s\nwant\n%s", step, q.query, round, got, wantBody)
				}
			}
		}
		out := map[string]itemItem{}
		for _, it := range decodeData[page[itemItem]](t, h.call("GET", "/cluster/node/config?pageSize=500&configFileId="+nodeFile, op, nil)).List {
			out[it.ConfigKey] = it
		}
		return out
	}
	check("start")
	r = h.call("POST", "/cluster/config", op, map[string]any{"configFileId": layer, "configKey": "maxClientCnxns", "configValue": "60"})
	want(t, r, 200, 0)
	added := decodeData[layerItem](t, r)
	if it := check("layer added")["maxClientCnxns"]; it.ConfigValue != "60" {
		t.Fatalf("layer item not listed: %+v", it)
	}
	want(t, h.call("PUT", "/cluster/config", op, map[string]any{"id": added.ID, "configValue": "61", "describes": "new"}), 200, 0)
	mine := check("layer changed")["maxClientCnxns"]
	if mine.ConfigValue != "61" || mine.Describes != "new" {
		t.Fatalf("layer change not listed: %+v", mine)
	}
	want(t, h.call("PUT", "/cluster/node/config", op, map[string]any{"id": mine.ID, "configValue": "7"}), 200, 0)
	if it := check("overridden")["maxClientCnxns"]; it.ConfigValue != "7" {
		t.Fatalf("override not listed: %+v", it)
	}
	want(t, h.call("PUT", "/cluster/node/config/status", op, map[string]any{"id": mine.ID, "effective": 0}), 200, 0)
	if it := check("turned off")["maxClientCnxns"]; it.Effective != 0 {
		t.Fatalf("off not listed: %+v", it)
	}
	want(t, h.call("DELETE", "/cluster/node/config", op, map[string]any{"id": mine.ID}), 200, 0)
	if it := check("reset")["maxClientCnxns"]; it.ConfigValue != "61" || it.Effective != 1 {
		t.Fatalf("reset not listed: %+v", it)
	}
	want(t, h.call("POST", "/cluster/node/config", op, map[string]any{"configFileId": nodeFile, "configKey": "own.key", "configValue": "x"}), 200, 0)
	if it, ok := check("own added")["own.key"]; !ok || it.ConfigValue != "x" {
		t.Fatalf("own key not listed: %+v", it)
	}
	want(t, h.call("DELETE", "/cluster/config", op, map[string]any{"id": added.ID}), 200, 0)
	if it, ok := check("layer deleted")["maxClientCnxns"]; ok {
		t.Fatalf("deleted layer item listed: %+v", it)
	}
}
