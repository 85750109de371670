package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

type fleetOp struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
	Total   int    `json:"total"`
	Done    int    `json:"done"`
	OK      int    `json:"ok"`
	Failed  int    `json:"failed"`
	Offline int    `json:"offline"`
}

type fleetOpResult struct {
	Seq      int      `json:"seq"`
	ServerID string   `json:"serverId"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason"`
	RttMs    *float64 `json:"rttMs"`
	Facts    *struct {
		Hostname string `json:"hostname"`
		CPUs     int    `json:"cpus"`
	} `json:"facts"`
}

// TestFleetOperationOnRealAgents pings and collects facts from three real
// agents and one server without an agent, each as one API call, and
// follows the results as events.
func TestFleetOperationOnRealAgents(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 3, 0)
	online := map[string]bool{}
	for _, ip := range []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"} {
		_, id := enrollOnline(t, tm, c, testenv.AgentOptions{Token: tok.Token, AdvertiseIP: ip})
		online[id] = true
	}
	// A server registered before its agent exists: pending, never online.
	var pending struct {
		ID string `json:"id"`
	}
	c.OK(t, http.MethodPost, "/server", map[string]any{"room": "default", "managerIp": "127.0.0.29", "dataIp": "127.0.0.29"}, &pending)

	// Ping all, streamed.
	var op fleetOp
	c.OK(t, http.MethodPost, "/fleet/operation", map[string]any{"kind": "ping", "all": true, "concurrency": 2, "timeoutMs": 5000}, &op)
	if op.Total != 4 || op.Kind != "ping" {
		t.Fatalf("started %+v, want 4 targets", op)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	events, err := c.Events(ctx, "/fleet/operation/events?id="+url.QueryEscape(op.ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	var results []fleetOpResult
	var done fleetOp
	for _, ev := range events {
		switch ev.Name {
		case "result":
			var r fleetOpResult
			if err := json.Unmarshal([]byte(ev.Data), &r); err != nil {
				t.Fatal(err)
			}
			results = append(results, r)
		case "done":
			if err := json.Unmarshal([]byte(ev.Data), &done); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(results) != 4 || done.State != "done" || done.OK != 3 || done.Offline != 1 || done.Failed != 0 {
		t.Fatalf("events: %d results, done %+v; want 4 results, 3 ok and 1 offline", len(results), done)
	}
	for _, r := range results {
		switch {
		case online[r.ServerID] && (r.Status != "ok" || r.RttMs == nil):
			t.Errorf("agent %s: %+v, want ok with an RTT", r.ServerID, r)
		case r.ServerID == pending.ID && (r.Status != "offline" || r.Reason == ""):
			t.Errorf("server without agent: %+v, want offline with a reason", r)
		}
	}

	// Facts of the three, by ids, read back through the detail route.
	ids := []string{}
	for id := range online {
		ids = append(ids, id)
	}
	c.OK(t, http.MethodPost, "/fleet/operation", map[string]any{"kind": "facts", "serverIds": ids}, &op)
	var detail struct {
		Operation fleetOp `json:"operation"`
		Results   struct {
			Total int             `json:"total"`
			List  []fleetOpResult `json:"list"`
		} `json:"results"`
	}
	testenv.Eventually(t, 30*time.Second, "the facts operation to end", func() bool {
		c.OK(t, http.MethodGet, "/fleet/operation/detail?pageSize=10&id="+op.ID, nil, &detail)
		return detail.Operation.State == "done"
	})
	if detail.Operation.OK != 3 || detail.Results.Total != 3 {
		t.Fatalf("facts: %+v", detail)
	}
	for _, r := range detail.Results.List {
		if r.Facts == nil || r.Facts.Hostname == "" || r.Facts.CPUs == 0 {
			t.Errorf("facts of %s: %+v", r.ServerID, r.Facts)
		}
	}

	// Bad requests change nothing and say why.
	for _, tc := range []struct {
		body map[string]any
		code int
	}{
		{map[string]any{"kind": "reboot", "all": true}, 2},
		{map[string]any{"kind": "ping"}, 2},
		{map[string]any{"kind": "command", "command": "restart", "all": true}, 2},
		{map[string]any{"kind": "ping", "serverIds": []string{"12345"}}, 1262},
		{map[string]any{"kind": "log_lines", "clusterId": "12345"}, 1001},
		{map[string]any{"kind": "ping", "all": true, "concurrency": 100000}, 2},
	} {
		env, _ := c.Do(t, http.MethodPost, "/fleet/operation", tc.body)
		if env.Code != tc.code {
			t.Errorf("%v: code %d %s, want %d", tc.body, env.Code, env.Message, tc.code)
		}
	}
	var list struct {
		Total int `json:"total"`
	}
	c.OK(t, http.MethodGet, "/fleet/operation", nil, &list)
	if list.Total != 2 {
		t.Errorf("%d operations kept, want the 2 that started", list.Total)
	}
	env, status := c.Do(t, http.MethodGet, "/fleet/operation/detail?id=99", nil)
	if env.Code != 1420 || status != http.StatusNotFound {
		t.Errorf("unknown operation: HTTP %d code %d", status, env.Code)
	}
}
