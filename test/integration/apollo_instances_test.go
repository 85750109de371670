package integration

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/admq/admq-manager/test/testenv"
)

// apolloInstances: Apollo's instances are the nodes holding a namespace's
// file, each with the release last applied to it: by namespace (paged),
// by release (paged), and those not on given releases.
func apolloInstances(t *testing.T, e *apolloEnv) {
	j, b := e.java(), e.bash()
	type instance struct {
		ID          int64
		AppID       string
		ClusterName string
		DataCenter  string
		IP          string
		Configs     []struct {
			Release struct {
				ID          int64
				ClusterName string
			}
			ReleaseDeliveryTime string
		}
	}
	type page struct {
		Page, Size, Total int
		Instances         []instance
	}
	scope := func(cluster string, more ...string) [][2]string {
		q := [][2]string{{"appId", apolloApp}, {"clusterName", cluster}, {"namespaceName", "app.properties"}}
		for i := 0; i+1 < len(more); i += 2 {
			q = append(q, [2]string{more[i], more[i+1]})
		}
		return q
	}
	byNamespace := func(c *testenv.ApolloClient, cluster string, more ...string) page {
		t.Helper()
		var p page
		a := c.Get(t, []string{"envs", "PRO", "instances", "by-namespace"}, scope(cluster, more...), &p)
		checkDTO(t, "OpenInstancePageDTO", a.Body)
		return p
	}
	byRelease := func(id int64, more ...string) page {
		t.Helper()
		q := [][2]string{{"releaseId", fmt.Sprint(id)}}
		for i := 0; i+1 < len(more); i += 2 {
			q = append(q, [2]string{more[i], more[i+1]})
		}
		var p page
		a := j.Get(t, []string{"envs", "PRO", "instances", "by-release"}, q, &p)
		checkDTO(t, "OpenInstancePageDTO", a.Body)
		return p
	}
	notIn := func(cluster string, releaseIDs ...int64) []instance {
		t.Helper()
		var s []string
		for _, id := range releaseIDs {
			s = append(s, fmt.Sprint(id))
		}
		var out []instance
		a := b.Get(t, []string{"envs", "PRO", "instances", "by-namespace-and-releases-not-in"}, scope(cluster, "releaseIds", strings.Join(s, ",")), &out)
		checkDTO(t, "[]OpenInstanceDTO", a.Body)
		return out
	}
	// runs says which release each instance runs: node → release id (0:
	// none known).
	runs := func(list []instance) string {
		t.Helper()
		var out []string
		for _, in := range list {
			n := e.nodes[in.ClusterName]
			// The suite's servers are in the default area: organization
			// "default".
			if in.AppID != apolloApp || in.IP != n.ManagerIP || fmt.Sprint(in.ID) != n.ID || in.DataCenter != "default" {
				t.Errorf("instance %+v: want node %s of %s at %s in data center default", in, n.ID, apolloApp, n.ManagerIP)
			}
			var rel int64
			switch len(in.Configs) {
			case 0:
			case 1:
				rel = in.Configs[0].Release.ID
				testenv.ParseApolloDate(t, in.Configs[0].ReleaseDeliveryTime)
			default:
				t.Errorf("instance %s has %d configs of one namespace", in.ClusterName, len(in.Configs))
			}
			out = append(out, fmt.Sprintf("%s=%d", in.ClusterName, rel))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}

	// A publish of default: both storages run it.
	j.Must(t, 200, "PUT", testenv.NS("PRO", apolloApp, "default", "app.properties", "items", "instances.key"), [][2]string{{"createIfNotExists", "true"}},
		testenv.ApolloItem{Key: "instances.key", Value: "1", DataChangeCreatedBy: "admin", DataChangeLastModifiedBy: "admin"})
	p1 := publish(t, j, "default", "app.properties", "for instances")
	if h := settled(t, j, "default", "app.properties", p1); h.state() != "applied" {
		t.Fatalf("release %d: %+v", p1, h)
	}
	want := fmt.Sprintf("storage-1=%d storage-2=%d", p1, p1)
	if got := byNamespace(j, "default"); got.Total != 2 || runs(got.Instances) != want {
		t.Fatalf("by-namespace after release %d: %+v, want %s", p1, got, want)
	}
	if got := byRelease(p1); got.Total != 2 || runs(got.Instances) != want || got.Size != 20 {
		t.Fatalf("by-release %d: %+v, want %s", p1, got, want)
	}
	if got := notIn("default", p1); len(got) != 0 {
		t.Fatalf("not in release %d: %+v, want none", p1, got)
	}

	// A flush of storage-1 (its own cluster): storage-1 runs it, storage-2
	// the default release still.
	p2 := publish(t, j, "storage-1", "app.properties", "storage-1 for instances")
	if h := settled(t, j, "storage-1", "app.properties", p2); h.state() != "applied" {
		t.Fatalf("release %d: %+v", p2, h)
	}
	want = fmt.Sprintf("storage-1=%d storage-2=%d", p2, p1)
	got := byNamespace(b, "default")
	if runs(got.Instances) != want {
		t.Fatalf("by-namespace after release %d of storage-1: %s, want %s", p2, runs(got.Instances), want)
	}
	for _, in := range got.Instances {
		if wantCluster := map[string]string{"storage-1": "storage-1", "storage-2": "default"}[in.ClusterName]; in.Configs[0].Release.ClusterName != wantCluster {
			t.Errorf("%s runs a release of cluster %s, want %s", in.ClusterName, in.Configs[0].Release.ClusterName, wantCluster)
		}
	}
	if got := byNamespace(j, "storage-1"); got.Total != 1 || runs(got.Instances) != fmt.Sprintf("storage-1=%d", p2) {
		t.Fatalf("by-namespace of cluster storage-1: %+v", got)
	}
	if got := byRelease(p1); got.Total != 1 || runs(got.Instances) != fmt.Sprintf("storage-2=%d", p1) {
		t.Fatalf("by-release %d after storage-1 moved on: %+v", p1, got)
	}
	if got := runs(notIn("default", p1)); got != fmt.Sprintf("storage-1=%d", p2) {
		t.Fatalf("not in %d: %s", p1, got)
	}
	if got := runs(notIn("default", 1, p2)); got != fmt.Sprintf("storage-2=%d", p1) {
		t.Fatalf("not in 1, %d: %s", p2, got)
	}
	// Pages.
	if got := byNamespace(j, "default", "page", "1", "size", "1"); got.Total != 2 || got.Page != 1 || got.Size != 1 || len(got.Instances) != 1 {
		t.Fatalf("page 1 of size 1: %+v", got)
	}
	if got := byNamespace(j, "default", "page", "2", "size", "1"); got.Total != 2 || len(got.Instances) != 0 {
		t.Fatalf("page 2 of size 1: %+v", got)
	}
	if got := byNamespace(j, "default", "instanceAppId", "other"); got.Total != 0 || len(got.Instances) != 0 {
		t.Fatalf("instances of another app: %+v", got)
	}
	// mq2 was never deployed: its node runs no release.
	var never page
	a := j.Get(t, []string{"envs", "PRO", "instances", "by-namespace"},
		[][2]string{{"appId", "mq2"}, {"clusterName", "default"}, {"namespaceName", "app.properties"}}, &never)
	checkDTO(t, "OpenInstancePageDTO", a.Body)
	if never.Total != 1 || len(never.Instances) != 1 || len(never.Instances[0].Configs) != 0 || !strings.Contains(string(a.Body), `"configs":[]`) {
		t.Fatalf("instances of mq2: %s", a.Body)
	}

	for _, tc := range []struct {
		name   string
		path   string
		query  [][2]string
		status int
		msg    string
	}{
		{"by-release, unknown release", "by-release", [][2]string{{"releaseId", "12345"}}, 404, "release not found"},
		{"by-release, no release", "by-release", nil, 400, "releaseId must be a release id"},
		{"by-release, page -1", "by-release", [][2]string{{"releaseId", fmt.Sprint(p1)}, {"page", "-1"}}, 400, "page must be"},
		{"by-release, size 0", "by-release", [][2]string{{"releaseId", fmt.Sprint(p1)}, {"size", "0"}}, 400, "size must be"},
		{"by-namespace, no appId", "by-namespace", [][2]string{{"clusterName", "default"}, {"namespaceName", "app.properties"}}, 400, "appId should not be null or empty"},
		{"by-namespace, no namespace", "by-namespace", [][2]string{{"appId", apolloApp}, {"clusterName", "default"}}, 400, "namespaceName should not be null or empty"},
		{"by-namespace, unknown namespace", "by-namespace", scopeOf(apolloApp, "default", "nope.properties"), 404, "nope.properties"},
		{"by-namespace, unknown cluster", "by-namespace", scopeOf(apolloApp, "storage-9", "app.properties"), 404, "storage-9"},
		{"by-namespace, app without grant", "by-namespace", scopeOf("nope", "default", "app.properties"), 403, "no grant on app nope"},
		{"by-namespace, size 0", "by-namespace", append(scope("default"), [2]string{"size", "0"}), 400, "size must be"},
		{"not-in, no releaseIds", "by-namespace-and-releases-not-in", scope("default"), 400, "releaseIds should not be empty"},
		{"not-in, bad releaseIds", "by-namespace-and-releases-not-in", scope("default", "releaseIds", "1,x"), 400, "comma separated numbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := j.Send("GET", []string{"envs", "PRO", "instances", tc.path}, tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			apolloError(t, a, tc.status, tc.msg)
		})
	}
	// A token whose grant is on another namespace reads neither.
	_, token := e.consumer(t, "instances-reader", map[string]any{"appId": apolloApp, "namespaceName": "broker.properties"})
	other := e.client(token, testenv.ApolloJava)
	a, _ = other.Send("GET", []string{"envs", "PRO", "instances", "by-release"}, [][2]string{{"releaseId", fmt.Sprint(p1)}}, nil)
	apolloError(t, a, 403, "Access is denied")
	a, _ = other.Send("GET", []string{"envs", "PRO", "instances", "by-namespace"}, scope("default"), nil)
	apolloError(t, a, 403, "Access is denied")
}

// scopeOf is the query naming a namespace of a cluster of an app.
func scopeOf(app, cluster, ns string) [][2]string {
	return [][2]string{{"appId", app}, {"clusterName", cluster}, {"namespaceName", ns}}
}
