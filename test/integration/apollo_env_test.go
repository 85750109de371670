package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager"
	"github.com/admq/admq-manager/test/testenv"
	"github.com/admq/admq-manager/test/workloads"
)

// The Apollo Open API suites (apollo_*_test.go) drive /openapi/v1 of a real
// manager whose cluster "mq1" has nodes on real agents (127.0.95.x), and
// check what Apollo's clients would see: statuses, JSON field names and
// types against fixtures written from Apollo's DTOs
// (testdata/apollo/dto.json), and dates in Gson's format.

// apolloEnv is a manager with three agents and cluster mq1: storage-1
// and storage-2 (files app.properties, log4j.properties, notes.txt)
// and broker-1 (log4j.properties, broker.properties). The nodes run a
// sleeper whose health check fails while its app.properties or
// broker.properties holds a line "bad=".
type apolloEnv struct {
	tm    *testenv.Manager
	c     *testenv.Client
	root  string
	ips   []string
	nodes map[string]testenv.Node // by node name
	// consumer is a third-party app with a grant on all of mq1 (modify and
	// release); token is its token.
	consumerID, token string
	// pkgID is the package the clusters run; mq2ID is cluster mq2's id.
	pkgID, mq2ID string

	// seen records every answer of every client the env made: route
	// coverage and error cases, checked against the served document.
	mu   sync.Mutex
	seen []seenAnswer
}

type seenAnswer struct {
	method, path string
	status       int
}

// client is an Open API client of the env's manager with token, whose
// answers are recorded.
func (e *apolloEnv) client(token string, flavor testenv.ApolloFlavor) *testenv.ApolloClient {
	c := e.tm.Apollo(token, flavor)
	c.Observe = func(method, path string, a testenv.ApolloAnswer) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.seen = append(e.seen, seenAnswer{method, path, a.Status})
	}
	return c
}

const apolloApp = "mq1"

func apolloManifest() manifest.Manifest {
	healthy := func(file string) manifest.Health {
		return manifest.Health{Command: []string{"/bin/sh", "-c", "! grep -q '^bad=' {programDir}/conf/" + file},
			TimeoutSeconds: 3, IntervalSeconds: 1, StartSeconds: 5}
	}
	return manifest.Manifest{
		ManifestVersion: 1, Name: "admq-apollo", Version: "1.0", MqType: 3, Description: "sleepers with config files, for the Open API suites",
		Components: map[string]manifest.Component{
			"storage": {
				Start: []string{"/bin/sh", "-c", "exec sleep 3600"}, ServerPort: 2181,
				ConfigFiles: []manifest.ConfigFile{
					{Name: "app.properties", Path: "conf/app.properties", Format: manifest.FormatProperties},
					{Name: "log4j.properties", Path: "conf/log4j.properties", Format: manifest.FormatProperties},
					{Name: "notes.txt", Path: "conf/notes.txt", Format: manifest.FormatRaw},
				},
				Health: healthy("app.properties"),
			},
			"broker": {
				Start: []string{"/bin/sh", "-c", "exec sleep 3600"}, ServerPort: 9092,
				ConfigFiles: []manifest.ConfigFile{
					{Name: "log4j.properties", Path: "conf/log4j.properties", Format: manifest.FormatProperties},
					{Name: "broker.properties", Path: "conf/broker.properties", Format: manifest.FormatProperties},
				},
				Health: healthy("broker.properties"),
			},
		},
	}
}

// startApolloEnv builds the manager, agents, package and cluster; ipBase
// is a /24 of 127/8 of the test's own ("127.0.95").
func startApolloEnv(t testing.TB, ipBase string, opts ...func(*manager.Config)) *apolloEnv {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() {
		if pids := killProcsUnder(root); len(pids) > 0 {
			t.Logf("cleanup: killed node processes %v left running under %s", pids, root)
		}
	})
	tm := testenv.StartManager(t, opts...)
	c := tm.Client(t)
	e := &apolloEnv{tm: tm, c: c, root: root, nodes: map[string]testenv.Node{}}
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("%s.%d", ipBase, i)
		enrollOnline(t, tm, c, testenv.AgentOptions{Token: c.CreateToken(t, 1, 0).Token, AdvertiseIP: ip})
		e.ips = append(e.ips, ip)
	}
	pkg := c.UploadPackage(t, workloads.Build(t, t.TempDir(), "admq-apollo-V1.0-x86.tar.gz", apolloManifest(),
		workloads.Entry{Name: "conf/app.properties", Data: []byte("# how long a session lasts\nsession.timeout=3000\nmax.connections=60\nlog.dir={dataDir}/logs\n")},
		workloads.Entry{Name: "conf/log4j.properties", Data: []byte("log4j.rootLogger=INFO, R\n")},
		workloads.Entry{Name: "conf/notes.txt", Data: []byte("free text\n")},
		workloads.Entry{Name: "conf/broker.properties", Data: []byte("listeners=PLAINTEXT://{dataIp}:9092\nnum.partitions=3\n")},
	))
	dirs := func(ip string) testenv.ClusterNode {
		return testenv.ClusterNode{ManagerIP: ip, ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}
	}
	cl := c.CreateCluster(t, testenv.NewCluster{Name: apolloApp, PackageID: pkg.ID,
		StorageList: []testenv.ClusterNode{dirs(e.ips[0]), dirs(e.ips[1])},
		BrokerList:  []testenv.ClusterNode{dirs(e.ips[2])}})
	for _, n := range c.Nodes(t, cl.ID) {
		e.nodes[n.NodeDir] = n
	}
	job := c.WaitJob(t, c.DeployCluster(t, cl.ID), 2*time.Minute)
	if job.State != "succeeded" {
		t.Fatalf("deploy %s:\n%s", apolloApp, job)
	}
	// mq2 is never deployed: its namespaces were never released.
	e.pkgID = pkg.ID
	e.mq2ID = c.CreateCluster(t, testenv.NewCluster{Name: "mq2", PackageID: pkg.ID, StorageList: []testenv.ClusterNode{{ManagerIP: e.ips[0], ServerPort: 2182,
		ProgramDir: root + "/opt/{cluster}/{nodeDir}", DataDir: root + "/data/{cluster}/{nodeDir}"}}}).ID
	e.consumerID, e.token = e.consumer(t, "suite", map[string]any{"appId": apolloApp, "modify": true, "release": true},
		map[string]any{"appId": "mq2"})
	return e
}

// consumer registers a third-party app with the given grants and returns
// its id and token.
func (e *apolloEnv) consumer(t testing.TB, appID string, grants ...map[string]any) (string, string) {
	t.Helper()
	var created struct{ ID, Token string }
	e.c.OK(t, "POST", "/consumer", map[string]any{"appId": appID, "name": appID, "orgId": "test", "orgName": "Test",
		"ownerName": "admin", "ownerEmail": "admin@example.com"}, &created)
	for _, g := range grants {
		g["consumerId"] = created.ID
		e.c.OK(t, "POST", "/consumer/grant", g, nil)
	}
	return created.ID, created.Token
}

// java and bash are clients with the suite's token.
func (e *apolloEnv) java() *testenv.ApolloClient { return e.client(e.token, testenv.ApolloJava) }
func (e *apolloEnv) bash() *testenv.ApolloClient { return e.client(e.token, testenv.ApolloBash) }

// nodeFile reads a file of a node as its agent wrote it.
func (e *apolloEnv) nodeFile(t *testing.T, node, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.nodes[node].ProgramDir, rel))
	if err != nil {
		t.Fatalf("read %s of %s: %v", rel, node, err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// DTO fixtures.

var (
	apolloDTOsOnce sync.Once
	apolloDTOs     map[string]map[string]any
)

func dtoSpec(t *testing.T, name string) map[string]string {
	t.Helper()
	apolloDTOsOnce.Do(func() {
		raw, err := os.ReadFile("testdata/apollo/dto.json")
		if err != nil {
			panic(err)
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal(raw, &all); err != nil {
			panic(err)
		}
		apolloDTOs = map[string]map[string]any{}
		for k, v := range all {
			if k == "_comment" {
				continue
			}
			var d map[string]any
			if err := json.Unmarshal(v, &d); err != nil {
				panic(fmt.Sprintf("testdata/apollo/dto.json %s: %v", k, err))
			}
			apolloDTOs[k] = d
		}
	})
	d, ok := apolloDTOs[name]
	if !ok {
		t.Fatalf("no fixture for DTO %s", name)
	}
	spec := map[string]string{}
	for k, v := range d {
		if k == "_base" {
			for bk, bv := range apolloDTOs["base"] {
				spec[bk] = bv.(string)
			}
			continue
		}
		spec[k] = v.(string)
	}
	return spec
}

// checkDTO checks that raw is the JSON of Apollo's DTO name as Gson writes
// it: only the DTO's fields, each of its type, primitives always there,
// dates in yyyy-MM-dd'T'HH:mm:ss.SSSZ. "[]X" is a list of X.
func checkDTO(t *testing.T, name string, raw []byte) {
	t.Helper()
	if strings.HasPrefix(name, "[]") {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatalf("want a JSON list of %s: %v in %s", name[2:], err, raw)
		}
		for _, el := range list {
			checkDTO(t, name[2:], el)
		}
		return
	}
	spec := dtoSpec(t, name)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("%s: want a JSON object: %v in %s", name, err, raw)
	}
	for field, v := range obj {
		typ, ok := spec[field]
		if !ok {
			t.Errorf("%s has field %q, which Apollo's %s does not: %s", name, field, name, raw)
			continue
		}
		checkValue(t, name+"."+field, strings.TrimSuffix(typ, "!"), v)
	}
	var names []string
	for field, typ := range spec {
		if strings.HasSuffix(typ, "!") {
			if _, ok := obj[field]; !ok {
				names = append(names, field)
			}
		}
	}
	sort.Strings(names)
	if len(names) > 0 {
		t.Errorf("%s lacks %v, which Gson always writes: %s", name, names, raw)
	}
}

func checkValue(t *testing.T, where, typ string, v json.RawMessage) {
	t.Helper()
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if x == nil {
		t.Errorf("%s is null: Gson leaves null fields out", where)
		return
	}
	kind := reflect.TypeOf(x).Kind()
	switch {
	case typ == "string":
		if kind != reflect.String {
			t.Errorf("%s = %s: want a string", where, v)
		}
	case typ == "date":
		if kind != reflect.String {
			t.Errorf("%s = %s: want a date string", where, v)
		} else {
			testenv.ParseApolloDate(t, x.(string))
		}
	case typ == "int" || typ == "long":
		if f, ok := x.(float64); !ok || f != float64(int64(f)) {
			t.Errorf("%s = %s: want a whole number", where, v)
		}
	case typ == "bool":
		if kind != reflect.Bool {
			t.Errorf("%s = %s: want true or false", where, v)
		}
	case typ == "map":
		m, ok := x.(map[string]any)
		if !ok {
			t.Errorf("%s = %s: want an object of strings", where, v)
		}
		for k, mv := range m {
			if _, ok := mv.(string); !ok {
				t.Errorf("%s[%s] = %v: want a string", where, k, mv)
			}
		}
	case typ == "object":
		if kind != reflect.Map {
			t.Errorf("%s = %s: want an object", where, v)
		}
	case typ == "[]string":
		l, ok := x.([]any)
		if !ok {
			t.Errorf("%s = %s: want a list of strings", where, v)
		}
		for _, s := range l {
			if _, ok := s.(string); !ok {
				t.Errorf("%s holds %v: want strings", where, s)
			}
		}
	default: // a DTO or a list of them
		checkDTO(t, typ, v)
	}
}
