package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/test/testenv"
)

// TestApolloOpenAPI is the contract suite of the Apollo-compatible Open
// API: one manager, three agents and cluster mq1 for all its parts, and at
// the end a check that every route of the served document was driven.
func TestApolloOpenAPI(t *testing.T) {
	integrationTest(t)
	e := startApolloEnv(t, "127.0.95")
	t.Run("apps and clusters", func(t *testing.T) { apolloAppsAndClusters(t, e) })
	t.Run("tokens and grants", func(t *testing.T) { apolloTokensAndGrants(t, e) })
	t.Run("namespace names", func(t *testing.T) { apolloNamespaceNames(t, e) })
	t.Run("items", func(t *testing.T) { apolloItems(t, e) })
	t.Run("items bad input", func(t *testing.T) { apolloItemsBadInput(t, e) })
	t.Run("batch", func(t *testing.T) { apolloBatch(t, e) })
	t.Run("item authors", func(t *testing.T) { apolloAuthors(t, e) })
	t.Run("releases", func(t *testing.T) { apolloReleases(t, e) })
	t.Run("releases bad input", func(t *testing.T) { apolloReleasesBadInput(t, e) })
	t.Run("instances", func(t *testing.T) { apolloInstances(t, e) })
	t.Run("coverage", func(t *testing.T) { apolloCoverage(t, e) })
}

func apolloAppsAndClusters(t *testing.T, e *apolloEnv) {
	for _, c := range []*testenv.ApolloClient{e.java(), e.bash()} {
		var envs []string
		c.Get(t, []string{"envs"}, nil, &envs)
		if len(envs) != 1 || envs[0] != "PRO" {
			t.Fatalf("%s envs = %v", c.Flavor(), envs)
		}
		orgPath := []string{"organizations"}
		if c.Flavor() == testenv.ApolloJava {
			orgPath = []string{"/organizations"}
		}
		a := c.Get(t, orgPath, nil, nil)
		checkDTO(t, "[]OpenOrganizationDto", a.Body)
		if !strings.Contains(string(a.Body), `"orgId":"default"`) {
			t.Errorf("organizations %s: want the default area", a.Body)
		}
		if a.ContentType != "application/json;charset=UTF-8" {
			t.Errorf("content type %q", a.ContentType)
		}

		var apps []map[string]any
		a = c.Get(t, []string{"apps"}, nil, &apps)
		checkDTO(t, "[]OpenAppDTO", a.Body)
		if len(apps) != 2 || apps[0]["appId"] != apolloApp || apps[0]["name"] != apolloApp || apps[1]["appId"] != "mq2" {
			t.Fatalf("apps = %s, want mq1 and mq2", a.Body)
		}
		if a := c.Get(t, []string{"apps"}, [][2]string{{"appIds", "other," + apolloApp}}, nil); !strings.Contains(string(a.Body), apolloApp) || strings.Contains(string(a.Body), "mq2") {
			t.Errorf("apps?appIds: %s", a.Body)
		}
		if a := c.Get(t, []string{"apps"}, [][2]string{{"appIds", "other"}}, nil); string(a.Body) != "[]" {
			t.Errorf("apps?appIds=other: %s", a.Body)
		}
		a = c.Get(t, []string{"apps", "authorized"}, nil, nil)
		checkDTO(t, "[]OpenAppDTO", a.Body)

		var ec []struct {
			Env      string
			Clusters []string
		}
		a = c.Get(t, []string{"apps", apolloApp, "envclusters"}, nil, &ec)
		checkDTO(t, "[]OpenEnvClusterDTO", a.Body)
		if len(ec) != 1 || ec[0].Env != "PRO" || strings.Join(ec[0].Clusters, ",") != "default,storage-1,storage-2,broker-1" {
			t.Fatalf("envclusters = %s", a.Body)
		}

		for _, cl := range []string{"default", "storage-2", "broker-1"} {
			var got map[string]any
			a = c.Get(t, []string{"envs", "pro", "apps", apolloApp, "clusters", cl}, nil, &got)
			checkDTO(t, "OpenClusterDTO", a.Body)
			if got["name"] != cl || got["appId"] != apolloApp {
				t.Errorf("cluster %s = %s", cl, a.Body)
			}
			// id is the ADMQ cluster's for default, the node's for a node,
			// as a 64-bit number; parentClusterId 0: no gray branches.
			var ids struct {
				ID              json.Number
				ParentClusterID *json.Number
			}
			dec := json.NewDecoder(bytes.NewReader(a.Body))
			dec.UseNumber()
			if err := dec.Decode(&ids); err != nil {
				t.Fatal(err)
			}
			want := e.nodes["storage-1"].ClusterID
			if cl != "default" {
				want = e.nodes[cl].ID
			}
			if ids.ID.String() != want || ids.ParentClusterID == nil || ids.ParentClusterID.String() != "0" {
				t.Errorf("cluster %s: id %s, parentClusterId %v; want %s and 0: %s", cl, ids.ID, ids.ParentClusterID, want, a.Body)
			}
		}
	}
	c := e.java()
	for _, tc := range []struct {
		name   string
		method string
		path   []string
		query  [][2]string
		body   any
		status int
		msg    string
	}{
		{"unknown cluster", "GET", []string{"envs", "PRO", "apps", apolloApp, "clusters", "broker-9"}, nil, nil, 404, "no cluster broker-9"},
		{"unknown app", "GET", []string{"apps", "nope", "envclusters"}, nil, nil, 403, "no grant on app nope"},
		{"other env", "GET", []string{"envs", "FAT", "apps", apolloApp, "clusters", "default"}, nil, nil, 400, "env FAT does not exist"},
		{"create app", "POST", []string{"apps"}, nil, map[string]any{"app": map[string]any{"appId": "x", "name": "x"}}, 400, "create a cluster in the console"},
		{"create cluster", "POST", []string{"envs", "PRO", "apps", apolloApp, "clusters"}, nil,
			map[string]any{"name": "extra", "appId": apolloApp, "dataChangeCreatedBy": "admin"}, 400, "add nodes through the console"},
		{"create cluster, unknown operator", "POST", []string{"envs", "PRO", "apps", apolloApp, "clusters"}, nil,
			map[string]any{"name": "extra", "appId": apolloApp, "dataChangeCreatedBy": "nobody"}, 400, "user not exist"},
		{"create cluster, no operator", "POST", []string{"envs", "PRO", "apps", apolloApp, "clusters"}, nil,
			map[string]any{"name": "extra", "appId": apolloApp}, 400, "operator should not be null or empty"},
		{"create cluster, other app in body", "POST", []string{"envs", "PRO", "apps", apolloApp, "clusters"}, nil,
			map[string]any{"name": "extra", "appId": "other", "dataChangeCreatedBy": "admin"}, 400, "AppId not equal"},
		{"create cluster, existing", "POST", []string{"envs", "PRO", "apps", apolloApp, "clusters"}, [][2]string{{"operator", "admin"}},
			map[string]any{"name": "storage-1", "appId": apolloApp}, 400, "already exists"},
		{"wrong method", "DELETE", []string{"apps"}, nil, nil, 405, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := c.Send(tc.method, tc.path, tc.query, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			apolloError(t, a, tc.status, tc.msg)
		})
	}
}

// apolloError checks an error answer: its status, Apollo's error body
// and a message that says msg.
func apolloError(t *testing.T, a testenv.ApolloAnswer, status int, msg string) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("%s, want HTTP %d saying %q", a, status, msg)
	}
	checkDTO(t, "ExceptionResponse", a.Body)
	e := a.Error()
	if e.Status != status || !strings.Contains(e.Message, msg) || e.Exception == "" {
		t.Fatalf("%s, want HTTP %d saying %q", a, status, msg)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999999", e.Timestamp); err != nil {
		t.Errorf("timestamp %q is not ISO local date-time: %v", e.Timestamp, err)
	}
}

func apolloTokensAndGrants(t *testing.T, e *apolloEnv) {
	// A token with a grant on one namespace of one node reads just that.
	_, narrow := e.consumer(t, "narrow", map[string]any{"appId": apolloApp, "clusterName": "storage-1", "namespaceName": "app.properties"})
	n := e.client(narrow, testenv.ApolloJava)
	var ec []struct{ Clusters []string }
	n.Get(t, []string{"apps", apolloApp, "envclusters"}, nil, &ec)
	if len(ec) != 1 || strings.Join(ec[0].Clusters, ",") != "storage-1" {
		t.Fatalf("narrow token's envclusters = %+v", ec)
	}
	if a := n.Get(t, []string{"apps", "authorized"}, nil, nil); !strings.Contains(string(a.Body), `"appId":"mq1"`) {
		t.Fatalf("narrow token's authorized apps: %s", a.Body)
	}
	a, _ := n.Send("GET", []string{"envs", "PRO", "apps", apolloApp, "clusters", "default"}, nil, nil)
	apolloError(t, a, 403, "no read grant on cluster default")

	// No grant: no apps, 403 on mq1.
	_, none := e.consumer(t, "nothing")
	z := e.client(none, testenv.ApolloBash)
	if a := z.Get(t, []string{"apps", "authorized"}, nil, nil); string(a.Body) != "[]" {
		t.Fatalf("a token without grants sees apps: %s", a.Body)
	}
	if a := z.Get(t, []string{"apps"}, nil, nil); string(a.Body) != "[]" {
		t.Fatalf("a token without grants sees apps: %s", a.Body)
	}
	a, _ = z.Send("GET", []string{"apps", apolloApp, "envclusters"}, nil, nil)
	apolloError(t, a, 403, "no grant on app mq1")

	// Revoked: 401 at once. Expired: 401.
	id, doomed := e.consumer(t, "doomed", map[string]any{"appId": apolloApp})
	d := e.client(doomed, testenv.ApolloJava)
	d.Get(t, []string{"apps"}, nil, nil)
	e.c.OK(t, "DELETE", "/consumer", map[string]string{"id": id}, nil)
	a, _ = d.Send("GET", []string{"apps"}, nil, nil)
	apolloError(t, a, 401, "Unauthorized")

	var short struct{ ID, Token string }
	e.c.OK(t, "POST", "/consumer", map[string]any{"appId": "short", "name": "short", "orgId": "t", "orgName": "t",
		"ownerName": "a", "ownerEmail": "a@example.com", "ttlSeconds": 1}, &short)
	time.Sleep(1100 * time.Millisecond) // the token's whole life; no faster way to let it expire
	a, _ = e.client(short.Token, testenv.ApolloJava).Send("GET", []string{"apps"}, nil, nil)
	apolloError(t, a, 401, "Unauthorized")

	for _, tok := range []string{"", "Bearer " + e.token, strings.ToUpper(e.token), "x"} {
		a, _ := e.client(tok, testenv.ApolloBash).Send("GET", []string{"envs"}, nil, nil)
		apolloError(t, a, 401, "Unauthorized")
	}
}

// apolloNamespaceNames: a file name is its namespace unless two
// components have it; component.file always works.
func apolloNamespaceNames(t *testing.T, e *apolloEnv) {
	c := e.bash()
	for _, tc := range []struct{ cluster, ns, want string }{
		{"default", "app.properties", "app.properties"},
		{"default", "storage.app.properties", "app.properties"},
		{"default", "storage.log4j.properties", "storage.log4j.properties"},
		{"default", "broker.log4j.properties", "broker.log4j.properties"},
		{"broker-1", "log4j.properties", "broker.log4j.properties"}, // a node has one component
		{"storage-2", "log4j.properties", "storage.log4j.properties"},
	} {
		var lock map[string]any
		a := c.Get(t, testenv.NS("PRO", apolloApp, tc.cluster, tc.ns, "lock"), nil, &lock)
		checkDTO(t, "OpenNamespaceLockDTO", a.Body)
		if lock["namespaceName"] != tc.want || lock["isLocked"] != false {
			t.Errorf("lock of %s/%s = %s, want namespace %s, unlocked", tc.cluster, tc.ns, a.Body, tc.want)
		}
	}
	for _, tc := range []struct {
		cluster, ns string
		status      int
		msg         string
	}{
		{"default", "log4j.properties", 400, "name one of broker.log4j.properties, storage.log4j.properties"},
		{"default", "nope.cfg", 404, "has no namespace nope.cfg"},
		{"storage-1", "broker.properties", 404, "has no namespace broker.properties"},
		{"broker-1", "storage.app.properties", 404, "has no namespace storage.app.properties"},
	} {
		a, _ := c.Send("GET", testenv.NS("PRO", apolloApp, tc.cluster, tc.ns, "lock"), nil, nil)
		apolloError(t, a, tc.status, tc.msg)
	}
}

// apolloCoverage checks that the suites drove every route of the served
// document, and reports how many routes and error cases they covered.
func apolloCoverage(t *testing.T, e *apolloEnv) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage
	}
	e.java().Get(t, []string{"openapi.json"}, nil, &doc)
	type route struct{ method, path string }
	var routes []route
	for p, ops := range doc.Paths {
		for m := range ops {
			routes = append(routes, route{strings.ToUpper(m), strings.TrimPrefix(p, "/openapi/v1")})
		}
	}
	match := func(tmpl, path string) bool {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
		ts, ps := strings.Split(tmpl, "/"), strings.Split(strings.SplitN(path, "?", 2)[0], "/")
		if len(ts) != len(ps) {
			return false
		}
		for i := range ts {
			if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
				return false
			}
		}
		return true
	}
	e.mu.Lock()
	seen := append([]seenAnswer(nil), e.seen...)
	e.mu.Unlock()
	hit := map[route]bool{}
	errCases := map[string]bool{}
	for _, s := range seen {
		best := route{}
		for _, r := range routes {
			// The most literal template wins: /apps/authorized over /apps/{appId}.
			if r.method == s.method && match(r.path, s.path) &&
				(best.path == "" || strings.Count(r.path, "{") < strings.Count(best.path, "{")) {
				best = r
			}
		}
		if best.path == "" {
			continue
		}
		hit[best] = true
		if s.status != http.StatusOK {
			errCases[best.method+" "+best.path+" "+http.StatusText(s.status)] = true
		}
	}
	var missing []string
	for _, r := range routes {
		if !hit[r] {
			missing = append(missing, r.method+" "+r.path)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes of the document no suite drove:\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("contract suite: %d of %d routes driven, %d requests, %d distinct (route, error status) cases", len(hit), len(routes), len(seen), len(errCases))
}
