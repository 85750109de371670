package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
)

// history is one entry of a release history (Apollo's ReleaseHistoryBO).
type history struct {
	ID                 int64  `json:"id"`
	ReleaseID          int64  `json:"releaseId"`
	ClusterName        string `json:"clusterName"`
	Operation          int    `json:"operation"`
	IsReleaseAbandoned bool   `json:"isReleaseAbandoned"`
	PreviousReleaseID  int64  `json:"previousReleaseId"`
	Configuration      []struct{ FirstEntity, SecondEntity string }
	OperationContext   map[string]any `json:"operationContext"`
}

func (h history) state() string { return fmt.Sprint(h.OperationContext["state"]) }

func (h history) nodeStates() map[string]string {
	out := map[string]string{}
	l, _ := h.OperationContext["nodes"].([]any)
	for _, n := range l {
		m, _ := n.(map[string]any)
		out[fmt.Sprint(m["node"])] = fmt.Sprint(m["state"])
	}
	return out
}

func historyPath(cluster, ns string) []string {
	return []string{"apps", apolloApp, "envs", "PRO", "clusters", cluster, "namespaces", ns, "releases", "histories"}
}

// settled waits until release id of the namespace is settled (applied or
// failed) and returns its history entry.
func settled(t testing.TB, c *testenv.ApolloClient, cluster, ns string, id int64) history {
	t.Helper()
	var found history
	testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("release %d to settle", id), func() bool {
		var list []history
		c.Get(t, historyPath(cluster, ns), [][2]string{{"size", "20"}}, &list)
		for _, h := range list {
			if h.ReleaseID == id && (h.state() == "applied" || h.state() == "failed") {
				found = h
				return true
			}
		}
		return false
	})
	return found
}

// publish publishes a namespace of a cluster and returns the release's id.
func publish(t *testing.T, c *testenv.ApolloClient, cluster, ns, title string) int64 {
	t.Helper()
	a := c.Must(t, 200, "POST", testenv.NS("PRO", apolloApp, cluster, ns, "releases"), nil,
		testenv.ApolloRelease{ReleaseTitle: title, ReleaseComment: "by the suite", ReleasedBy: "admin"})
	checkDTO(t, "OpenReleaseDTO", a.Body)
	var r struct {
		ID                       int64
		Name, ClusterName        string
		NamespaceName            string
		DataChangeCreatedBy      string
		Configurations           map[string]string
		DataChangeCreatedTime    string
		DataChangeLastModifiedBy string
	}
	json.Unmarshal(a.Body, &r)
	if r.ID <= 0 || r.Name != title || r.ClusterName != cluster || r.DataChangeCreatedBy != "admin" || r.Configurations == nil {
		t.Fatalf("publish of %s/%s answered %s", cluster, ns, a.Body)
	}
	return r.ID
}

func apolloReleases(t *testing.T, e *apolloEnv) {
	j, b := e.java(), e.bash()
	ns := func(cluster, name string, more ...string) []string {
		return testenv.NS("PRO", apolloApp, cluster, name, more...)
	}
	pids := func() map[string]int {
		out := map[string]int{}
		for _, n := range e.c.Nodes(t, e.nodes["storage-1"].ClusterID) {
			out[n.NodeDir] = n.Pid
		}
		return out
	}

	// Publish default: every storage's file follows the layer.
	j.Must(t, 200, "PUT", ns("default", "app.properties", "items", "session.timeout"), nil,
		testenv.ApolloItem{Key: "session.timeout", Value: "4500", DataChangeLastModifiedBy: "admin"})
	id1 := publish(t, j, "default", "app.properties", "timeout 4500")
	h := settled(t, j, "default", "app.properties", id1)
	if h.state() != "applied" || h.IsReleaseAbandoned || h.Operation != 0 {
		t.Fatalf("release %d: %+v", id1, h)
	}
	for _, n := range []string{"storage-1", "storage-2"} {
		if f := e.nodeFile(t, n, "conf/app.properties"); !strings.Contains(f, "session.timeout=4500\n") {
			t.Fatalf("%s's app.properties after the publish:\n%s", n, f)
		}
	}
	var rel map[string]any
	a := j.Get(t, ns("default", "app.properties", "releases", "latest"), nil, &rel)
	checkDTO(t, "OpenReleaseDTO", a.Body)
	if testenv.ApolloID(t, rel["id"]) != id1 || rel["configurations"].(map[string]any)["session.timeout"] != "4500" {
		t.Fatalf("latest = %s", a.Body)
	}
	a = b.Get(t, []string{"envs", "PRO", "releases", fmt.Sprint(id1)}, nil, &rel)
	checkDTO(t, "OpenReleaseDTO", a.Body)
	if testenv.ApolloID(t, rel["id"]) != id1 || rel["namespaceName"] != "app.properties" || rel["comment"] != "by the suite" {
		t.Fatalf("release %d = %s", id1, a.Body)
	}

	// A node's cluster: a flush of that node only.
	before := pids()
	id2 := publish(t, j, "storage-1", "app.properties", "storage-1 overrides")
	if h := settled(t, j, "storage-1", "app.properties", id2); h.state() != "applied" || h.ClusterName != "storage-1" {
		t.Fatalf("flush of storage-1: %+v", h)
	}
	if f := e.nodeFile(t, "storage-1", "conf/app.properties"); !strings.Contains(f, "max.connections=99\n") || !strings.Contains(f, "node.only=n1\n") {
		t.Fatalf("storage-1's app.properties after its flush:\n%s", f)
	}
	if f := e.nodeFile(t, "storage-2", "conf/app.properties"); strings.Contains(f, "max.connections=99") {
		t.Fatalf("storage-2 got storage-1's override:\n%s", f)
	}
	if after := pids(); after["storage-2"] != before["storage-2"] || after["broker-1"] != before["broker-1"] {
		t.Errorf("a flush of storage-1 restarted others: %v → %v", before, after)
	}
	a = j.Get(t, ns("storage-1", "app.properties", "releases", "latest"), nil, &rel)
	if testenv.ApolloID(t, rel["id"]) != id2 || rel["configurations"].(map[string]any)["node.only"] != "n1" {
		t.Fatalf("latest of storage-1 = %s", a.Body)
	}

	// An empty change: a release with the same configuration, nothing
	// restarted.
	before = pids()
	id3 := publish(t, b, "default", "app.properties", "nothing changed")
	if h := settled(t, j, "default", "app.properties", id3); h.state() != "applied" {
		t.Fatalf("empty publish: %+v", h)
	}
	if after := pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("an empty publish restarted nodes: %v → %v", before, after)
	}

	// Comparison.
	var diff struct {
		Changes []struct{ ChangeType, Key, OldValue, NewValue string }
	}
	a = j.Get(t, []string{"envs", "PRO", "releases", "comparison"}, [][2]string{{"baseReleaseId", fmt.Sprint(id1)}, {"toCompareReleaseId", fmt.Sprint(id2)}}, &diff)
	checkDTO(t, "OpenReleaseDiffDTO", a.Body)
	kinds := map[string]string{}
	for _, c := range diff.Changes {
		kinds[c.Key] = c.ChangeType
	}
	if kinds["node.only"] != "ADDED" || kinds["max.connections"] != "MODIFIED" || kinds["session.timeout"] != "" {
		t.Fatalf("comparison %d → %d: %s", id1, id2, a.Body)
	}
	a = j.Get(t, []string{"envs", "PRO", "releases", "comparison"}, [][2]string{{"baseReleaseId", "0"}, {"toCompareReleaseId", fmt.Sprint(id1)}}, &diff)
	if len(diff.Changes) == 0 || diff.Changes[0].ChangeType != "ADDED" {
		t.Fatalf("comparison from nothing: %s", a.Body)
	}

	// A bad value: the first node fails its health check, gets its file
	// back; the rollout stops; the release is failed in the history.
	j.Must(t, 200, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "bad", Value: "1", DataChangeCreatedBy: "admin"})
	id4 := publish(t, j, "default", "app.properties", "a bad value")
	h = settled(t, j, "default", "app.properties", id4)
	states := h.nodeStates()
	if h.state() != "failed" || !h.IsReleaseAbandoned || h.OperationContext["reason"] == nil {
		t.Fatalf("bad release: %+v", h)
	}
	restored, cancelled := 0, 0
	for _, s := range states {
		switch s {
		case "restored":
			restored++
		case "cancelled":
			cancelled++
		}
	}
	if restored != 1 || cancelled != 1 {
		t.Fatalf("bad release's nodes %v: want one restored, one never touched", states)
	}
	for _, n := range []string{"storage-1", "storage-2"} {
		if f := e.nodeFile(t, n, "conf/app.properties"); strings.Contains(f, "bad=") {
			t.Fatalf("%s keeps the bad value:\n%s", n, f)
		}
	}
	j.Get(t, ns("default", "app.properties", "releases", "latest"), nil, &rel)
	if testenv.ApolloID(t, rel["id"]) != id3 {
		t.Fatalf("latest after a failed release is %v, want %d", rel["id"], id3)
	}
	j.Must(t, 200, "DELETE", ns("default", "app.properties", "items", "bad"), [][2]string{{"operator", "admin"}}, nil)

	// History: newest first, paged, with the previous release.
	var page []history
	a = j.Get(t, historyPath("default", "app.properties"), [][2]string{{"page", "0"}, {"size", "2"}}, &page)
	checkDTO(t, "[]ReleaseHistoryBO", a.Body)
	if len(page) != 2 || page[0].ReleaseID != id4 || page[0].PreviousReleaseID != page[1].ReleaseID {
		t.Fatalf("history page 0: %s", a.Body)
	}
	j.Get(t, historyPath("default", "app.properties"), [][2]string{{"page", "1"}, {"size", "2"}}, &page)
	if len(page) == 0 || page[0].ReleaseID >= id3 {
		t.Fatalf("history page 1: %+v", page)
	}

	// Rollback of release 1 of default: back to the one before it. The
	// items it sets back are last changed by its operator.
	e.c.OK(t, "POST", "/user", map[string]any{"username": "carol", "password": "carol-password-1", "role": "operator"}, nil)
	j.Must(t, 200, "PUT", []string{"envs", "PRO", "releases", fmt.Sprint(id1), "rollback"}, [][2]string{{"operator", "carol"}}, nil)
	var rb history
	testenv.Eventually(t, 2*time.Minute, "the rollback to settle", func() bool {
		var list []history
		j.Get(t, historyPath("default", "app.properties"), nil, &list)
		if len(list) > 0 && list[0].Operation == 1 && list[0].state() == "applied" {
			rb = list[0]
			return true
		}
		return false
	})
	if f := e.nodeFile(t, "storage-2", "conf/app.properties"); !strings.Contains(f, "session.timeout=3000\n") {
		t.Fatalf("storage-2 after the rollback:\n%s", f)
	}
	var it map[string]any
	j.Get(t, ns("default", "app.properties", "items", "session.timeout"), nil, &it)
	if it["value"] != "3000" || it["dataChangeLastModifiedBy"] != "carol" {
		t.Errorf("the draft after the rollback: session.timeout=%v, last modified by %v (want 3000, carol)", it["value"], it["dataChangeLastModifiedBy"])
	}
	// A key the rollback left as it was keeps its author, on the layer
	// and on a node: admin, whose creation of mq1 imported it.
	for _, cl := range []string{"default", "storage-2"} {
		var untouched map[string]any
		j.Get(t, ns(cl, "app.properties", "items", "log.dir"), nil, &untouched)
		if by := untouched["dataChangeLastModifiedBy"]; by != "admin" {
			t.Errorf("log.dir of %s, from the package and untouched by the rollback: last modified by %v, want admin (who created mq1)", cl, by)
		}
	}
	// toReleaseId: forward again to release 1.
	b.Must(t, 200, "PUT", []string{"envs", "PRO", "releases", fmt.Sprint(rb.ReleaseID), "rollback"}, [][2]string{{"operator", "admin"}, {"toReleaseId", fmt.Sprint(id1)}}, nil)
	testenv.Eventually(t, 2*time.Minute, "the rollback to release 1 to settle", func() bool {
		return strings.Contains(e.nodeFile(t, "storage-2", "conf/app.properties"), "session.timeout=4500\n")
	})

	// Releases of a namespace never released answer 200 with no body.
	var never testenv.ApolloAnswer
	testenv.Eventually(t, time.Minute, "latest of the undeployed cluster", func() bool {
		never = j.Get(t, testenv.NS("PRO", "mq2", "default", "app.properties", "releases", "latest"), nil, nil)
		return true
	})
	if len(never.Body) != 0 {
		t.Fatalf("latest of a namespace never released: %q", never.Body)
	}
}

// apolloReleasesBadInput: refused publishes and rollbacks, and publishes
// of one namespace that race.
func apolloReleasesBadInput(t *testing.T, e *apolloEnv) {
	j := e.java()
	_, ro := e.consumer(t, "release-reader", map[string]any{"appId": apolloApp, "modify": true})
	reader := e.client(ro, testenv.ApolloJava)
	var latest map[string]any
	j.Get(t, testenv.NS("PRO", apolloApp, "default", "app.properties", "releases", "latest"), nil, &latest)
	lid := fmt.Sprint(testenv.ApolloID(t, latest["id"]))
	var other map[string]any
	j.Get(t, testenv.NS("PRO", apolloApp, "default", "broker.properties", "releases", "latest"), nil, &other)
	oid := fmt.Sprint(testenv.ApolloID(t, other["id"]))
	pub := func(c string) []string { return testenv.NS("PRO", apolloApp, c, "app.properties", "releases") }
	for _, tc := range []struct {
		name   string
		c      *testenv.ApolloClient
		method string
		path   []string
		query  [][2]string
		body   any
		status int
		msg    string
	}{
		{"no title", j, "POST", pub("default"), nil, testenv.ApolloRelease{ReleasedBy: "admin"}, 400, "releaseTitle) can not be empty"},
		{"title over 64", j, "POST", pub("default"), nil, testenv.ApolloRelease{ReleaseTitle: strings.Repeat("t", 65), ReleasedBy: "admin"}, 400, "releaseTitle too long"},
		{"comment over 256", j, "POST", pub("default"), nil, testenv.ApolloRelease{ReleaseTitle: "t", ReleaseComment: strings.Repeat("c", 257), ReleasedBy: "admin"}, 400, "releaseComment too long"},
		{"unknown releaser", j, "POST", pub("default"), nil, testenv.ApolloRelease{ReleaseTitle: "t", ReleasedBy: "mallory"}, 400, "user not exist"},
		{"no body", j, "POST", pub("default"), nil, nil, 400, "payload can not be empty"},
		{"modify grant publishes", reader, "POST", pub("default"), nil, testenv.ApolloRelease{ReleaseTitle: "t", ReleasedBy: "admin"}, 403, "no release grant"},
		{"unknown release", j, "GET", []string{"envs", "PRO", "releases", "12345"}, nil, nil, 404, "release not found"},
		{"release id not a number", j, "GET", []string{"envs", "PRO", "releases", "abc"}, nil, nil, 400, "must be a release id"},
		{"rollback of an unknown release", j, "PUT", []string{"envs", "PRO", "releases", "12345", "rollback"}, [][2]string{{"operator", "admin"}}, nil, 404, "release not found"},
		{"rollback without operator", j, "PUT", []string{"envs", "PRO", "releases", lid, "rollback"}, nil, nil, 400, "operator should not be null"},
		{"rollback to another namespace's release", j, "PUT", []string{"envs", "PRO", "releases", lid, "rollback"}, [][2]string{{"operator", "admin"}, {"toReleaseId", oid}}, nil, 400, "another namespace"},
		{"rollback to a bad id", j, "PUT", []string{"envs", "PRO", "releases", lid, "rollback"}, [][2]string{{"operator", "admin"}, {"toReleaseId", "x"}}, nil, 400, "toReleaseId must be"},
		{"rollback by a modify grant", reader, "PUT", []string{"envs", "PRO", "releases", lid, "rollback"}, [][2]string{{"operator", "admin"}}, nil, 403, "no release grant"},
		{"comparison of unknown releases", j, "GET", []string{"envs", "PRO", "releases", "comparison"}, [][2]string{{"baseReleaseId", "1"}, {"toCompareReleaseId", "2"}}, nil, 404, "release not found"},
		{"history page -1", j, "GET", historyPath("default", "app.properties"), [][2]string{{"page", "-1"}}, nil, 400, "page must be"},
		{"history size 0", j, "GET", historyPath("default", "app.properties"), [][2]string{{"size", "0"}}, nil, 400, "size must be"},
		{"gray release", j, "POST", testenv.NS("PRO", apolloApp, "default", "app.properties", "branches"), [][2]string{{"operator", "admin"}}, nil, 400, "gray release (branches) is not supported"},
		{"gray publish", j, "POST", testenv.NS("PRO", apolloApp, "default", "app.properties", "branches", "canary", "releases"), nil, testenv.ApolloRelease{ReleaseTitle: "t", ReleasedBy: "admin"}, 400, "not supported"},
		{"gray rules", j, "PUT", testenv.NS("PRO", apolloApp, "default", "app.properties", "branches", "canary", "rules"), nil, map[string]any{"ruleItems": []any{}}, 400, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tc.c.Send(tc.method, tc.path, tc.query, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			apolloError(t, a, tc.status, tc.msg)
		})
	}
	a := j.Get(t, testenv.NS("PRO", apolloApp, "default", "app.properties", "branches"), nil, nil)
	if len(a.Body) != 0 {
		t.Errorf("branches of a namespace: %q, want none", a.Body)
	}
	for _, m := range []string{"DELETE", "GET", "POST"} {
		path := testenv.NS("PRO", apolloApp, "default", "app.properties", "branches", "canary")
		switch m {
		case "GET":
			path = append(path, "items")
		case "POST":
			path = append(path, "merge")
		}
		r, _ := j.Send(m, path, [][2]string{{"operator", "admin"}}, nil)
		apolloError(t, r, 400, "not supported")
	}
	r, _ := j.Send("POST", testenv.NS("PRO", apolloApp, "default", "app.properties", "branches", "canary", "gray-del-releases"), nil, map[string]any{"releaseTitle": "t"})
	apolloError(t, r, 400, "not supported")
	r, _ = j.Send("GET", testenv.NS("PRO", apolloApp, "default", "app.properties", "branches", "canary", "rules"), nil, nil)
	apolloError(t, r, 400, "not supported")

	// Publishes of one namespace that race are never interleaved: one
	// rollout runs, the other is refused while it holds the nodes.
	j.Must(t, 200, "PUT", testenv.NS("PRO", apolloApp, "default", "app.properties", "items", "max.connections"), nil,
		testenv.ApolloItem{Key: "max.connections", Value: "61", DataChangeLastModifiedBy: "admin"})
	var wg sync.WaitGroup
	answers := make([]testenv.ApolloAnswer, 4)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = j.Send("POST", pub("default"), nil, testenv.ApolloRelease{ReleaseTitle: fmt.Sprint("race ", i), ReleasedBy: "admin"})
		}()
	}
	wg.Wait()
	var ok []int64
	for _, a := range answers {
		switch a.Status {
		case 200:
			var r struct{ ID int64 }
			json.Unmarshal(a.Body, &r)
			ok = append(ok, r.ID)
		case 400:
			if !strings.Contains(a.Error().Message, "under way") {
				t.Errorf("racing publish refused with %s", a)
			}
		default:
			t.Errorf("racing publish: %s", a)
		}
	}
	if len(ok) == 0 {
		t.Fatal("no racing publish was accepted")
	}
	for _, id := range ok {
		settled(t, j, "default", "app.properties", id)
	}
	t.Logf("racing publishes: %d accepted, %d refused while a rollout held the nodes", len(ok), len(answers)-len(ok))
}

// TestApolloNamespaceLock: with --namespace-lock, the first editor holds a
// namespace until it is released, and may not release it.
func TestApolloNamespaceLock(t *testing.T) {
	integrationTest(t)
	e := startApolloEnv(t, "127.0.96", func(c *manager.Config) { c.NamespaceLock = true })
	e.c.OK(t, "POST", "/user", map[string]any{"username": "bob", "password": "bob-password-1", "role": "operator"}, nil)
	j := e.java()
	ns := func(more ...string) []string {
		return testenv.NS("PRO", apolloApp, "default", "app.properties", more...)
	}
	var lock map[string]any
	j.Get(t, ns("lock"), nil, &lock)
	if lock["isLocked"] != false {
		t.Fatalf("lock before any edit: %v", lock)
	}
	j.Must(t, 200, "PUT", ns("items", "max.connections"), nil, testenv.ApolloItem{Key: "max.connections", Value: "70", DataChangeLastModifiedBy: "admin"})
	a := j.Get(t, ns("lock"), nil, &lock)
	checkDTO(t, "OpenNamespaceLockDTO", a.Body)
	if lock["isLocked"] != true || lock["lockedBy"] != "admin" || lock["isEmergencyPublishAllowed"] != true {
		t.Fatalf("lock after admin's edit: %s", a.Body)
	}
	// A token that may not release may not publish past the lock either.
	_, readOnly := e.consumer(t, "lock-reader", map[string]any{"appId": apolloApp})
	e.client(readOnly, testenv.ApolloBash).Get(t, ns("lock"), nil, &lock)
	if lock["isLocked"] != true || lock["isEmergencyPublishAllowed"] != false {
		t.Fatalf("lock as a read-only token: %v", lock)
	}
	// The holder goes on editing; another operator may not.
	j.Must(t, 200, "PUT", ns("items", "max.connections"), nil, testenv.ApolloItem{Key: "max.connections", Value: "71", DataChangeLastModifiedBy: "admin"})
	r, _ := j.Send("PUT", ns("items", "max.connections"), nil, testenv.ApolloItem{Key: "max.connections", Value: "72", DataChangeLastModifiedBy: "bob"})
	apolloError(t, r, 400, "is locked by admin")
	// Another namespace is not locked.
	j.Must(t, 200, "PUT", testenv.NS("PRO", apolloApp, "default", "broker.properties", "items", "num.partitions"), nil,
		testenv.ApolloItem{Key: "num.partitions", Value: "4", DataChangeLastModifiedBy: "bob"})
	// The editor may not release; an emergency publish may; bob may.
	r, _ = j.Send("POST", ns("releases"), nil, testenv.ApolloRelease{ReleaseTitle: "mine", ReleasedBy: "admin"})
	apolloError(t, r, 400, "can not be published by yourself")
	a = j.Must(t, 200, "POST", ns("releases"), nil, testenv.ApolloRelease{ReleaseTitle: "by bob", ReleasedBy: "bob"})
	var rel struct{ ID int64 }
	json.Unmarshal(a.Body, &rel)
	settled(t, j, "default", "app.properties", rel.ID)
	j.Get(t, ns("lock"), nil, &lock)
	if lock["isLocked"] != false {
		t.Fatalf("lock after the release: %v", lock)
	}
	j.Must(t, 200, "PUT", ns("items", "max.connections"), nil, testenv.ApolloItem{Key: "max.connections", Value: "73", DataChangeLastModifiedBy: "bob"})
	a = j.Must(t, 200, "POST", ns("releases"), nil, testenv.ApolloRelease{ReleaseTitle: "emergency", ReleasedBy: "bob", IsEmergencyPublish: true})
	checkDTO(t, "OpenReleaseDTO", a.Body)
}
