package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/admq/admq-manager/test/testenv"
)

// itemsOf lists a namespace's items as key → value, through c.
func itemsOf(t *testing.T, c *testenv.ApolloClient, cluster, ns string) map[string]string {
	t.Helper()
	var page struct {
		Total   int
		Content []struct{ Key, Value string }
	}
	a := c.Get(t, testenv.NS("PRO", apolloApp, cluster, ns, "items"), [][2]string{{"page", "0"}, {"size", "10000"}}, &page)
	checkDTO(t, "OpenPageDTO<OpenItemDTO>", a.Body)
	out := map[string]string{}
	for _, it := range page.Content {
		out[it.Key] = it.Value
	}
	if page.Total != len(out) {
		t.Fatalf("items of %s/%s: total %d, %d items", cluster, ns, page.Total, len(out))
	}
	return out
}

func apolloItems(t *testing.T, e *apolloEnv) {
	j, b := e.java(), e.bash()
	ns := func(cluster, name string, more ...string) []string {
		return testenv.NS("PRO", apolloApp, cluster, name, more...)
	}

	defer apolloAudited(t, e)

	// Read what the package brought.
	var got map[string]any
	a := j.Get(t, ns("default", "app.properties", "items", "session.timeout"), nil, &got)
	checkDTO(t, "OpenItemDTO", a.Body)
	if got["value"] != "3000" || got["key"] != "session.timeout" || !strings.Contains(fmt.Sprint(got["comment"]), "how long a session lasts") {
		t.Fatalf("session.timeout = %s", a.Body)
	}
	if _, ok := got["dataChangeCreatedTime"]; !ok {
		t.Errorf("item has no dataChangeCreatedTime: %s", a.Body)
	}

	// ApolloOpenApiClient: create, update, createOrUpdate with a key
	// holding '/' (encodedItems), page, remove.
	a = j.Must(t, 200, "POST", ns("default", "app.properties", "items"), nil,
		testenv.ApolloItem{Key: "java.key", Value: "v1", Comment: "from java", DataChangeCreatedBy: "admin"})
	checkDTO(t, "OpenItemDTO", a.Body)
	json.Unmarshal(a.Body, &got)
	if got["key"] != "java.key" || got["value"] != "v1" || got["dataChangeCreatedBy"] != "admin" {
		t.Fatalf("created %s", a.Body)
	}
	if a = j.Must(t, 200, "PUT", ns("default", "app.properties", "items", "java.key"), nil,
		testenv.ApolloItem{Key: "java.key", Value: "v2", Comment: "from java", DataChangeLastModifiedBy: "admin"}); len(a.Body) != 0 {
		t.Errorf("update answered a body: %q", a.Body)
	}
	j.Must(t, 200, "PUT", ns("default", "app.properties", "items", "path/to\\key"), [][2]string{{"createIfNotExists", "true"}},
		testenv.ApolloItem{Key: "path/to\\key", Value: "slashes", DataChangeCreatedBy: "admin", DataChangeLastModifiedBy: "admin"})
	j.Must(t, 200, "PUT", ns("default", "app.properties", "items", "path/to\\key"), [][2]string{{"createIfNotExists", "true"}},
		testenv.ApolloItem{Key: "path/to\\key", Value: "slashes 2", DataChangeCreatedBy: "admin", DataChangeLastModifiedBy: "admin"})
	a = j.Get(t, ns("default", "app.properties", "items", "path/to\\key"), nil, &got)
	if got["value"] != "slashes 2" || !strings.Contains(string(a.Body), `"key":"path/to\\key"`) {
		t.Fatalf("encoded key read back: %s", a.Body)
	}
	if items := itemsOf(t, j, "default", "app.properties"); items["java.key"] != "v2" || items["path/to\\key"] != "slashes 2" || items["max.connections"] != "60" {
		t.Fatalf("items after java edits: %v", items)
	}
	var page struct {
		Page, Size, Total int
		Content           []map[string]any
	}
	j.Get(t, ns("default", "app.properties", "items"), [][2]string{{"page", "1"}, {"size", "2"}}, &page)
	if page.Page != 1 || page.Size != 2 || page.Total != 5 || len(page.Content) != 2 {
		t.Fatalf("page 1 of size 2: %+v", page)
	}
	if a := j.Must(t, 200, "DELETE", ns("default", "app.properties", "items", "path/to\\key"), [][2]string{{"operator", "admin"}}, nil); len(a.Body) != 0 {
		t.Errorf("delete answered a body: %q", a.Body)
	}
	a, _ = j.Send("GET", ns("default", "app.properties", "items", "path/to\\key"), nil, nil)
	apolloError(t, a, 404, "item not found")

	// openapi.sh: keys with dots unescaped, Content-Type on GET and DELETE.
	b.Must(t, 200, "POST", ns("default", "app.properties", "items"), nil,
		map[string]any{"key": "bash.key.with.dots", "value": "b1", "comment": "", "dataChangeCreatedBy": "admin"})
	b.Must(t, 200, "PUT", ns("default", "app.properties", "items", "bash.key.with.dots"), nil,
		map[string]any{"key": "bash.key.with.dots", "value": "b2", "comment": "", "dataChangeLastModifiedBy": "admin"})
	b.Must(t, 200, "PUT", ns("default", "app.properties", "items", "bash.upsert"), [][2]string{{"createIfNotExists", "true"}},
		map[string]any{"key": "bash.upsert", "value": "u", "comment": "", "dataChangeLastModifiedBy": "admin", "dataChangeCreatedBy": "admin"})
	b.Get(t, ns("default", "app.properties", "items", "bash.key.with.dots"), nil, &got)
	if got["value"] != "b2" {
		t.Fatalf("bash.key.with.dots = %v", got)
	}
	b.Must(t, 200, "DELETE", ns("default", "app.properties", "items", "bash.upsert"), [][2]string{{"operator", "admin"}}, nil)

	// A node's cluster: its own key, an override, a layer key switched off.
	j.Must(t, 200, "POST", ns("storage-1", "app.properties", "items"), nil, testenv.ApolloItem{Key: "node.only", Value: "n1", DataChangeCreatedBy: "admin"})
	j.Must(t, 200, "PUT", ns("storage-1", "app.properties", "items", "max.connections"), nil,
		testenv.ApolloItem{Key: "max.connections", Value: "99", Comment: "ignored for a layer key", DataChangeLastModifiedBy: "admin"})
	j.Must(t, 200, "DELETE", ns("storage-2", "app.properties", "items", "java.key"), [][2]string{{"operator", "admin"}}, nil)
	c1, c2, def := itemsOf(t, j, "storage-1", "app.properties"), itemsOf(t, j, "storage-2", "app.properties"), itemsOf(t, j, "default", "app.properties")
	if c1["node.only"] != "n1" || c1["max.connections"] != "99" || c1["java.key"] != "v2" {
		t.Errorf("storage-1 sees %v", c1)
	}
	if _, ok := c2["node.only"]; ok || c2["max.connections"] != "60" {
		t.Errorf("storage-2 sees %v", c2)
	}
	if _, ok := c2["java.key"]; ok {
		t.Errorf("java.key deleted on storage-2 is still there: %v", c2)
	}
	if _, ok := def["node.only"]; ok || def["max.connections"] != "60" || def["java.key"] != "v2" {
		t.Errorf("default sees %v", def)
	}
	// Deleting the switched-off key again is a 404; creating it switches it on.
	a, _ = j.Send("DELETE", ns("storage-2", "app.properties", "items", "java.key"), [][2]string{{"operator", "admin"}}, nil)
	apolloError(t, a, 404, "item not found")
	j.Must(t, 200, "POST", ns("storage-2", "app.properties", "items"), nil, testenv.ApolloItem{Key: "java.key", Value: "back", DataChangeCreatedBy: "admin"})
	if c2 := itemsOf(t, j, "storage-2", "app.properties"); c2["java.key"] != "back" {
		t.Errorf("java.key switched on again on storage-2: %v", c2)
	}

	// A txt namespace holds one item, content.
	b.Get(t, ns("default", "notes.txt", "items", "content"), nil, &got)
	if got["value"] != "free text\n" {
		t.Fatalf("notes.txt content = %v", got)
	}
	j.Must(t, 200, "PUT", ns("default", "notes.txt", "items", "content"), nil, testenv.ApolloItem{Key: "content", Value: "new text\n", DataChangeLastModifiedBy: "admin"})

	// Namespaces with and without their items.
	var nss []map[string]any
	a = j.Get(t, []string{"envs", "PRO", "apps", apolloApp, "clusters", "default", "namespaces"}, [][2]string{{"fillItemDetail", "false"}}, &nss)
	checkDTO(t, "[]OpenNamespaceDTO", a.Body)
	if len(nss) != 5 {
		t.Fatalf("namespaces of default: %s", a.Body)
	}
	for _, n := range nss {
		if items, _ := n["items"].([]any); len(items) != 0 {
			t.Errorf("fillItemDetail=false gave items: %v", n)
		}
	}
	a = j.Get(t, []string{"envs", "PRO", "apps", apolloApp, "clusters", "broker-1", "namespaces"}, nil, &nss)
	checkDTO(t, "[]OpenNamespaceDTO", a.Body)
	if len(nss) != 2 || nss[0]["namespaceName"] != "broker.log4j.properties" && nss[0]["namespaceName"] != "broker.properties" {
		t.Fatalf("namespaces of broker-1: %s", a.Body)
	}
	var one struct {
		NamespaceName, Format, ClusterName string
		IsPublic                           bool
		Items                              []struct{ Key, Value string }
	}
	a = b.Get(t, ns("storage-1", "app.properties"), nil, &one)
	checkDTO(t, "OpenNamespaceDTO", a.Body)
	if one.Format != "properties" || one.ClusterName != "storage-1" || len(one.Items) != len(c1) {
		t.Fatalf("namespace app.properties of storage-1: %s", a.Body)
	}
	a = j.Get(t, ns("default", "notes.txt"), [][2]string{{"fillItemDetail", "true"}}, &one)
	if one.Format != "txt" || len(one.Items) != 1 || one.Items[0].Key != "content" {
		t.Fatalf("notes.txt: %s", a.Body)
	}
	var appNS []map[string]any
	a = j.Get(t, []string{"apps", apolloApp, "appnamespaces"}, nil, &appNS)
	checkDTO(t, "[]OpenAppNamespaceDTO", a.Body)
	if len(appNS) != 5 {
		t.Fatalf("appnamespaces: %s", a.Body)
	}
	var count int
	j.Get(t, ns("default", "app.properties", "instances"), nil, &count)
	if count != 2 {
		t.Errorf("instances of app.properties on default: %d, want its 2 storages", count)
	}
	j.Get(t, ns("broker-1", "broker.properties", "instances"), nil, &count)
	if count != 1 {
		t.Errorf("instances of broker.properties on broker-1: %d", count)
	}
}

// apolloItemsBadInput: every refused edit answers its status and changes
// nothing.
func apolloItemsBadInput(t *testing.T, e *apolloEnv) {
	j, b := e.java(), e.bash()
	ns := func(cluster, name string, more ...string) []string {
		return testenv.NS("PRO", apolloApp, cluster, name, more...)
	}
	_, ro := e.consumer(t, "reader", map[string]any{"appId": apolloApp})
	_, other := e.consumer(t, "other-ns", map[string]any{"appId": apolloApp, "namespaceName": "broker.properties", "modify": true, "release": true})
	reader, stranger := e.client(ro, testenv.ApolloJava), e.client(other, testenv.ApolloJava)
	before := map[string]map[string]string{}
	for _, c := range []string{"default", "storage-1"} {
		before[c] = itemsOf(t, j, c, "app.properties")
	}
	long := strings.Repeat("k", 129)
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
		{"key over 128", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: long, Value: "v", DataChangeCreatedBy: "admin"}, 400, "key too long"},
		{"value over 20000", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "big", Value: strings.Repeat("v", 20001), DataChangeCreatedBy: "admin"}, 400, "value too long"},
		{"comment over 256", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "c", Value: "v", Comment: strings.Repeat("c", 257), DataChangeCreatedBy: "admin"}, 400, "Comment length"},
		{"key with a line break", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "a\nb=evil", Value: "v", DataChangeCreatedBy: "admin"}, 400, "would corrupt the file"},
		{"key that is a variable", b, "POST", ns("default", "app.properties", "items"), nil, map[string]any{"key": "{myid}", "value": "v", "dataChangeCreatedBy": "admin"}, 400, "key"},
		{"null value", b, "POST", ns("default", "app.properties", "items"), nil, map[string]any{"key": "nv", "dataChangeCreatedBy": "admin"}, 400, "value should not be null"},
		{"no key", b, "POST", ns("default", "app.properties", "items"), nil, map[string]any{"value": "v", "dataChangeCreatedBy": "admin"}, 400, "key should not be null"},
		{"no body", b, "POST", ns("default", "app.properties", "items"), nil, nil, 400, "payload can not be empty"},
		{"malformed JSON", b, "POST", ns("default", "app.properties", "items"), nil, rawBody{"application/json;charset=UTF-8", `{"key":`}, 400, "malformed JSON"},
		{"wrong type", b, "POST", ns("default", "app.properties", "items"), nil, map[string]any{"key": 7, "value": "v", "dataChangeCreatedBy": "admin"}, 400, "want a JSON string"},
		{"existing key", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "session.timeout", Value: "1", DataChangeCreatedBy: "admin"}, 400, "item already exists"},
		{"unknown operator", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "x", Value: "v", DataChangeCreatedBy: "mallory"}, 400, "user not exist"},
		{"no operator", j, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "x", Value: "v"}, 400, "operator should not be null"},
		{"update a missing key", j, "PUT", ns("default", "app.properties", "items", "missing"), nil, testenv.ApolloItem{Key: "missing", Value: "v", DataChangeLastModifiedBy: "admin"}, 404, "item not found"},
		{"path key differs from body key", j, "PUT", ns("default", "app.properties", "items", "session.timeout"), nil, testenv.ApolloItem{Key: "max.connections", Value: "1", DataChangeLastModifiedBy: "admin"}, 400, "Key in path and payload is not consistent"},
		{"delete without operator", b, "DELETE", ns("default", "app.properties", "items", "session.timeout"), nil, nil, 400, "operator should not be null"},
		{"delete with unknown operator", b, "DELETE", ns("default", "app.properties", "items", "session.timeout"), [][2]string{{"operator", "mallory"}}, nil, 400, "user not exist"},
		{"delete a missing key", b, "DELETE", ns("default", "app.properties", "items", "missing"), [][2]string{{"operator", "admin"}}, nil, 404, "item not found"},
		{"encodedItems not base64", b, "GET", ns("default", "app.properties", "encodedItems", "***"), nil, nil, 400, "not base64"},
		{"encodedItems not base64 (put)", b, "PUT", ns("default", "app.properties", "encodedItems", "a%20b"), nil, map[string]any{"key": "a b", "value": "v", "dataChangeLastModifiedBy": "admin"}, 400, "not base64"},
		{"second key in a txt namespace", j, "POST", ns("default", "notes.txt", "items"), nil, testenv.ApolloItem{Key: "other", Value: "v", DataChangeCreatedBy: "admin"}, 400, "its one item is \"content\""},
		{"page -1", j, "GET", ns("default", "app.properties", "items"), [][2]string{{"page", "-1"}, {"size", "10"}}, nil, 400, "page must be"},
		{"size 0", j, "GET", ns("default", "app.properties", "items"), [][2]string{{"page", "0"}, {"size", "0"}}, nil, 400, "size must be"},
		{"size not a number", j, "GET", ns("default", "app.properties", "items"), [][2]string{{"size", "ten"}}, nil, 400, "size must be"},
		{"fillItemDetail not a boolean", j, "GET", ns("default", "app.properties"), [][2]string{{"fillItemDetail", "maybe"}}, nil, 400, "fillItemDetail must be"},
		{"read-only grant edits", reader, "POST", ns("default", "app.properties", "items"), nil, testenv.ApolloItem{Key: "ro", Value: "v", DataChangeCreatedBy: "admin"}, 403, "no modify grant"},
		{"read-only grant deletes", reader, "DELETE", ns("default", "app.properties", "items", "session.timeout"), [][2]string{{"operator", "admin"}}, nil, 403, "no modify grant"},
		{"grant on another namespace", stranger, "PUT", ns("default", "app.properties", "items", "session.timeout"), nil, testenv.ApolloItem{Key: "session.timeout", Value: "1", DataChangeLastModifiedBy: "admin"}, 403, "no modify grant"},
		{"grant on another namespace reads", stranger, "GET", ns("default", "app.properties", "items"), nil, nil, 403, "no read grant"},
		{"wrong content type", b, "POST", ns("default", "app.properties", "items"), nil, rawBody{"text/plain", "key=x"}, 400, "not supported"},
		{"appnamespace creation", j, "POST", []string{"apps", apolloApp, "appnamespaces"}, nil, map[string]any{"name": "new.cfg", "appId": apolloApp, "format": "properties", "isPublic": false, "dataChangeCreatedBy": "admin"}, 400, "come with the component's nodes"},
		{"appnamespace of another app", j, "POST", []string{"apps", apolloApp, "appnamespaces"}, nil, map[string]any{"name": "new.cfg", "appId": "x", "dataChangeCreatedBy": "admin"}, 400, "AppId not equal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a testenv.ApolloAnswer
			var err error
			if r, ok := tc.body.(rawBody); ok {
				a, err = tc.c.SendRaw(tc.method, tc.path, r.contentType, r.body)
			} else {
				a, err = tc.c.Send(tc.method, tc.path, tc.query, tc.body)
			}
			if err != nil {
				t.Fatal(err)
			}
			apolloError(t, a, tc.status, tc.msg)
		})
	}
	for _, c := range []string{"default", "storage-1"} {
		if after := itemsOf(t, j, c, "app.properties"); fmt.Sprint(after) != fmt.Sprint(before[c]) {
			t.Errorf("refused edits changed %s: %v, was %v", c, after, before[c])
		}
	}
	var got map[string]any
	reader.Get(t, ns("default", "app.properties", "items", "session.timeout"), nil, &got)
	if got["value"] != before["default"]["session.timeout"] {
		t.Errorf("a read-only grant reads %v", got)
	}
}

// rawBody is a body sent as it is, with its content type.
type rawBody struct{ contentType, body string }

// apolloBatch: batch-create, batch-update and batch-delete change every
// item or none.
func apolloBatch(t *testing.T, e *apolloEnv) {
	j, b := e.java(), e.bash()
	path := func(cluster, op string) []string {
		return testenv.NS("PRO", apolloApp, cluster, "broker.properties", "items", "batch-"+op)
	}
	items := func(kv ...string) []testenv.ApolloItem {
		var out []testenv.ApolloItem
		for i := 0; i < len(kv); i += 2 {
			out = append(out, testenv.ApolloItem{Key: kv[i], Value: kv[i+1], DataChangeCreatedBy: "admin", DataChangeLastModifiedBy: "admin"})
		}
		return out
	}
	state := func(cluster string) string { return fmt.Sprint(itemsOf(t, j, cluster, "broker.properties")) }

	if a := j.Must(t, 200, "POST", path("default", "create"), nil, items("b.one", "1", "b.two", "2")); len(a.Body) != 0 {
		t.Errorf("batch-create answered %q", a.Body)
	}
	before := state("default")
	for _, tc := range []struct {
		name   string
		op     string
		query  [][2]string
		body   any
		status int
		msg    string
	}{
		{"create with an existing key", "create", nil, items("b.three", "3", "num.partitions", "9"), 400, "item already exists"},
		{"create with a bad key", "create", nil, items("b.three", "3", "bad\nkey", "9"), 400, "would corrupt the file"},
		{"create with a long value", "create", nil, items("b.three", "3", "b.four", strings.Repeat("x", 20001)), 400, "value too long"},
		{"update with a missing key", "update", nil, items("b.one", "11", "b.missing", "x"), 404, "item not found"},
		{"delete with a missing key", "delete", [][2]string{{"operator", "admin"}}, items("b.one", "", "b.missing", ""), 404, "item not found"},
		{"delete without operator", "delete", nil, items("b.one", ""), 400, "names no operator"},
		{"a key twice", "update", nil, items("b.one", "11", "b.one", "12"), 400, "given twice"},
		{"two operators", "create", nil, []testenv.ApolloItem{{Key: "x1", Value: "1", DataChangeCreatedBy: "admin"}, {Key: "x2", Value: "2", DataChangeCreatedBy: "other"}}, 400, "two operators"},
		{"unknown operator", "create", [][2]string{{"operator", "mallory"}}, items("x1", "1"), 400, "user not exist"},
		{"empty list", "create", nil, []testenv.ApolloItem{}, 400, "at least one item"},
		{"not a list", "create", nil, testenv.ApolloItem{Key: "x", Value: "1"}, 400, "want a JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := b.Send("POST", path("default", tc.op), tc.query, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			apolloError(t, a, tc.status, tc.msg)
			if after := state("default"); after != before {
				t.Fatalf("a refused batch changed the namespace: %s, was %s", after, before)
			}
		})
	}
	j.Must(t, 200, "POST", path("default", "update"), [][2]string{{"createIfNotExists", "true"}}, items("b.one", "11", "b.three", "3"))
	if m := itemsOf(t, j, "default", "broker.properties"); m["b.one"] != "11" || m["b.two"] != "2" || m["b.three"] != "3" {
		t.Fatalf("after batch-update: %v", m)
	}
	j.Must(t, 200, "POST", path("default", "delete"), [][2]string{{"operator", "admin"}}, items("b.one", "", "b.two", "", "b.three", ""))
	if m := itemsOf(t, j, "default", "broker.properties"); m["b.one"] != "" || m["b.two"] != "" || len(m) != 2 {
		t.Fatalf("after batch-delete: %v", m)
	}
	// On a node's cluster: an override and a key of its own in one call.
	j.Must(t, 200, "POST", path("broker-1", "update"), [][2]string{{"createIfNotExists", "true"}}, items("num.partitions", "6", "broker.own", "o"))
	if m := itemsOf(t, j, "broker-1", "broker.properties"); m["num.partitions"] != "6" || m["broker.own"] != "o" {
		t.Fatalf("broker-1 after its batch: %v", m)
	}
	if m := itemsOf(t, j, "default", "broker.properties"); m["num.partitions"] != "3" {
		t.Fatalf("default after broker-1's batch: %v", m)
	}
}

// apolloAudited checks that the audit log names, for the Open API's
// changes, the operator and the third-party app whose token made them.
func apolloAudited(t *testing.T, e *apolloEnv) {
	var page struct {
		List []struct {
			Username, Role, Consumer, Method, Path, Detail string
			Status                                         int
		}
	}
	e.c.OK(t, "GET", "/audit?pageNum=1&pageSize=500", nil, &page)
	for _, a := range page.List {
		if a.Method == "POST" && strings.HasSuffix(a.Path, "/clusters/default/namespaces/app.properties/items") && a.Status == 200 {
			if a.Consumer != "suite" || a.Username != "admin" || a.Role != "consumer" || !strings.Contains(a.Detail, "create") {
				t.Fatalf("audit entry of an item created through the Open API: %+v", a)
			}
			return
		}
	}
	t.Fatalf("no audit entry of an item created through the Open API in %d entries", len(page.List))
}
