package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/admq/admq-manager/test/testenv"
)

// consoleTime is how the console API writes times.
const consoleTime = "2006-01-02 15:04:05"

// apolloAuthors: an item's creator and last modifier are the console user
// or the Open API operator who made the change, in the Open API's item
// DTOs (get, list, namespace with items) and the console's item lists,
// with the item's real times; a key imported from the package names the
// console user whose request imported it (admin created mq1, alice adds
// mq2's broker). Every author comes with its display name, and every item
// with its lineNum: its place in the file as the list gives it.
func apolloAuthors(t *testing.T, e *apolloEnv) {
	for _, u := range []string{"alice", "bob"} {
		e.c.OK(t, "POST", "/user", map[string]any{"username": u, "password": u + "-password-1", "role": "operator"}, nil)
	}
	alice := e.tm.ClientAs(t, "alice", "alice-password-1")
	j := e.java()
	ns := func(cluster string, more ...string) []string {
		return testenv.NS("PRO", apolloApp, cluster, "app.properties", more...)
	}
	clusterID := e.nodes["storage-1"].ClusterID
	layer := e.c.LayerFile(t, clusterID, "storage", "app.properties")
	nodeFile := e.c.NodeFile(t, e.nodes["storage-1"].ID, "app.properties")

	type dto struct {
		Key, Value                                                          string
		DataChangeCreatedBy, DataChangeLastModifiedBy                       string
		DataChangeCreatedByDisplayName, DataChangeLastModifiedByDisplayName string
		DataChangeCreatedTime, DataChangeLastModifiedTime                   string
		LineNum                                                             *int
	}
	// line shows a lineNum as the DTO has it.
	line := func(n *int) string {
		if n == nil {
			return "absent"
		}
		return fmt.Sprint(*n)
	}
	// list is the namespace's items in the cluster, each of which must
	// have its place in the list as its lineNum.
	list := func(app, cluster, namespace string) []dto {
		t.Helper()
		var page struct{ Content []dto }
		a := j.Get(t, testenv.NS("PRO", app, cluster, namespace, "items"), [][2]string{{"size", "1000"}}, &page)
		checkDTO(t, "OpenPageDTO<OpenItemDTO>", a.Body)
		for i, it := range page.Content {
			if it.LineNum == nil || *it.LineNum != i+1 {
				t.Errorf("%s %s %s: item %d (%s) has lineNum %s, want %d: %s", app, cluster, namespace, i, it.Key, line(it.LineNum), i+1, a.Body)
			}
		}
		return page.Content
	}
	lineOf := func(cluster, key string) int {
		t.Helper()
		for i, it := range list(apolloApp, cluster, "app.properties") {
			if it.Key == key {
				return i + 1
			}
		}
		t.Fatalf("%s has no %s", cluster, key)
		return 0
	}
	get := func(cluster, key string) dto {
		t.Helper()
		var d dto
		a := j.Get(t, ns(cluster, "items", key), nil, &d)
		checkDTO(t, "OpenItemDTO", a.Body)
		if want := lineOf(cluster, key); d.LineNum == nil || *d.LineNum != want {
			t.Errorf("%s in %s: lineNum %s, the list has it at %d: %s", key, cluster, line(d.LineNum), want, a.Body)
		}
		return d
	}
	authors := func(what string, d dto, created, modified string) {
		t.Helper()
		if d.DataChangeCreatedBy != created || d.DataChangeLastModifiedBy != modified {
			t.Errorf("%s: created by %q, last modified by %q; want %q and %q", what, d.DataChangeCreatedBy, d.DataChangeLastModifiedBy, created, modified)
		}
		// Console users have no display name: it is the name.
		if d.DataChangeCreatedByDisplayName != created || d.DataChangeLastModifiedByDisplayName != modified {
			t.Errorf("%s: display names %q and %q; want %q and %q", what, d.DataChangeCreatedByDisplayName, d.DataChangeLastModifiedByDisplayName, created, modified)
		}
	}

	// Keys from the package: admin created mq1, whose config the package
	// gave; the node's copy says the same.
	authors("session.timeout from the package", get("default", "session.timeout"), "admin", "admin")
	authors("storage-1's session.timeout from the package", get("storage-1", "session.timeout"), "admin", "admin")
	if got := get("default", "session.timeout"); line(got.LineNum) != "1" {
		t.Errorf("session.timeout, the file's first key, has lineNum %s", line(got.LineNum))
	}

	// Alice adds a key in the console; bob changes it through the Open API.
	alice.OK(t, "POST", "/cluster/config", map[string]any{"configFileId": layer.ID, "configKey": "authored.key", "configValue": "a"}, nil)
	authors("a key alice added", get("default", "authored.key"), "alice", "alice")
	j.Must(t, 200, "PUT", ns("default", "items", "authored.key"), nil,
		testenv.ApolloItem{Key: "authored.key", Value: "b", DataChangeLastModifiedBy: "bob"})
	d := get("default", "authored.key")
	authors("default after bob's update", d, "alice", "bob")
	created, modified := testenv.ParseApolloDate(t, d.DataChangeCreatedTime), testenv.ParseApolloDate(t, d.DataChangeLastModifiedTime)
	if modified.Before(created) {
		t.Errorf("last modified %s before created %s", d.DataChangeLastModifiedTime, d.DataChangeCreatedTime)
	}
	// A node's cluster sees the layer's key with the layer's authors.
	authors("storage-1's copy", get("storage-1", "authored.key"), "alice", "bob")

	// The item list and the namespace with its items say the same.
	items := list(apolloApp, "default", "app.properties")
	// ?extendInfo=true is Apollo's ask for the portal's draft state, which
	// nothing here holds: it is left out, items and namespace alike.
	var nsDTO struct{ Items []dto }
	a := j.Get(t, ns("default"), [][2]string{{"extendInfo", "true"}}, &nsDTO)
	checkDTO(t, "OpenNamespaceDTO", a.Body)
	if strings.Contains(string(a.Body), "extendInfo") {
		t.Errorf("namespace with ?extendInfo=true: %s", a.Body)
	}
	for i, it := range nsDTO.Items {
		if it.LineNum == nil || *it.LineNum != i+1 {
			t.Errorf("namespace items: %s has lineNum %s, want %d", it.Key, line(it.LineNum), i+1)
		}
	}
	for what, list := range map[string][]dto{"item list": items, "namespace items": nsDTO.Items} {
		found := false
		for _, it := range list {
			switch it.Key {
			case "authored.key":
				found = true
				authors(what, it, "alice", "bob")
			case "log.dir": // from the package, imported when admin created mq1
				authors(what+" log.dir", it, "admin", "admin")
			}
		}
		if !found {
			t.Errorf("%s lacks authored.key: %+v", what, list)
		}
	}

	// The console's lists: the layer and the node's copy, with the times
	// the Open API gives.
	for route, fileID := range map[string]string{"/cluster/config": layer.ID, "/cluster/node/config": nodeFile.ID} {
		it := alice.Items(t, route, fileID)["authored.key"]
		if it.CreateUser != "alice" || it.UpdateUser != "bob" {
			t.Errorf("console %s: authored.key created by %q, updated by %q; want alice and bob", route, it.CreateUser, it.UpdateUser)
		}
		if it.CreateTime != created.Format(consoleTime) || it.UpdateTime != modified.Format(consoleTime) {
			t.Errorf("console %s: times %s / %s; the Open API's %s / %s", route, it.CreateTime, it.UpdateTime, d.DataChangeCreatedTime, d.DataChangeLastModifiedTime)
		}
		if it := alice.Items(t, route, fileID)["log.dir"]; it.CreateUser != "admin" || it.UpdateUser != "admin" {
			t.Errorf("console %s: log.dir from the package created by %q, updated by %q; want admin (who created the cluster)", route, it.CreateUser, it.UpdateUser)
		}
	}

	// A node's own key: created by alice, changed by bob, both through the
	// Open API.
	// The fields a client sends back from a DTO it read (lineNum, display
	// names, extendInfo) are ignored: the answer is the manager's.
	j.Must(t, 200, "POST", ns("storage-2", "items"), nil, map[string]any{"key": "authored.own", "value": "1", "dataChangeCreatedBy": "alice",
		"lineNum": 99, "dataChangeCreatedByDisplayName": "Mallory", "extendInfo": map[string]any{"isModified": true}})
	j.Must(t, 200, "PUT", ns("storage-2", "items", "authored.own"), nil, testenv.ApolloItem{Key: "authored.own", Value: "2", DataChangeLastModifiedBy: "bob"})
	own := get("storage-2", "authored.own")
	authors("storage-2's own key", own, "alice", "bob")
	if n := len(list(apolloApp, "storage-2", "app.properties")); line(own.LineNum) != fmt.Sprint(n) {
		t.Errorf("storage-2's own key, added last, has lineNum %s of %d", line(own.LineNum), n)
	}
	j.Must(t, 200, "DELETE", ns("storage-2", "items", "authored.own"), [][2]string{{"operator", "admin"}}, nil)

	// A batch records its operator: each item's, or ?operator=.
	batch := func(op string, query [][2]string, items ...testenv.ApolloItem) {
		t.Helper()
		j.Must(t, 200, "POST", ns("default", "items", "batch-"+op), query, items)
	}
	batch("create", nil, testenv.ApolloItem{Key: "authored.b1", Value: "1", DataChangeCreatedBy: "bob"},
		testenv.ApolloItem{Key: "authored.b2", Value: "2", DataChangeCreatedBy: "bob"})
	authors("batch-created b1", get("default", "authored.b1"), "bob", "bob")
	batch("update", [][2]string{{"operator", "alice"}}, testenv.ApolloItem{Key: "authored.b1", Value: "11"},
		testenv.ApolloItem{Key: "authored.b2", Value: "22"}, testenv.ApolloItem{Key: "authored.key", Value: "c"})
	for _, k := range []string{"authored.b1", "authored.b2"} {
		authors("batch-updated "+k, get("default", k), "bob", "alice")
	}
	authors("batch-updated authored.key", get("default", "authored.key"), "alice", "alice")
	if it := e.c.Items(t, "/cluster/config", layer.ID)["authored.b2"]; it.CreateUser != "bob" || it.UpdateUser != "alice" {
		t.Errorf("console: authored.b2 created by %q, updated by %q; want bob and alice", it.CreateUser, it.UpdateUser)
	}
	batch("delete", [][2]string{{"operator", "admin"}}, testenv.ApolloItem{Key: "authored.b1"}, testenv.ApolloItem{Key: "authored.b2"},
		testenv.ApolloItem{Key: "authored.key"})
	var after struct{ Content []json.RawMessage }
	j.Get(t, ns("default", "items"), [][2]string{{"size", "1000"}}, &after)
	for _, it := range after.Content {
		var k struct{ Key string }
		json.Unmarshal(it, &k)
		if len(k.Key) > 9 && k.Key[:9] == "authored." {
			t.Errorf("%s is left after the batch-delete", k.Key)
		}
	}

	// Alice adds a broker to mq2: its layer of broker.properties is
	// imported by her request, in the file's order.
	alice.AddNodes(t, e.mq2ID, "broker", e.pkgID, []testenv.ClusterNode{{ManagerIP: e.ips[1], ServerPort: 9193,
		ProgramDir: e.root + "/opt/{cluster}/{nodeDir}", DataDir: e.root + "/data/{cluster}/{nodeDir}"}})
	for _, cluster := range []string{"default", "broker-1"} {
		got := list("mq2", cluster, "broker.properties")
		if len(got) != 2 || got[0].Key != "listeners" || got[1].Key != "num.partitions" {
			t.Fatalf("mq2 %s broker.properties: %+v", cluster, got)
		}
		for _, it := range got {
			authors("mq2 "+cluster+" "+it.Key+" imported by alice's request", it, "alice", "alice")
		}
	}
}
