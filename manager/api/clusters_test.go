package api

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/pkg"
)

// newClusterHarness is newHarness serving packages and clusters, with
// servers 10.1.0.1-4 registered (pending) and a ZooKeeper package and a
// NATS package uploaded. It returns an operator's token and the packages'
// ids.
func newClusterHarness(t testing.TB) (h *harness, op string, zk, nats string) {
	t.Helper()
	h = newHarness(t)
	gen, _ := ids.NewGenerator(4)
	pkgs := pkg.NewService(h.db, filepath.Join(t.TempDir(), "packages"), 1<<20, gen, time.Now)
	clusters := cluster.NewService(h.db, pkgs, gen, time.Now)
	configs := config.NewService(h.db, pkgs, gen, time.Now)
	deps := h.deps
	h.deps = func(t testing.TB) Deps {
		d := deps(t)
		d.Packages, d.Clusters, d.Config = pkgs, clusters, configs
		d.BodyLimit = 64 << 10 // a config value may be 20000 characters
		return d
	}
	h.srv.Close()
	h.srv = httptest.NewServer(New(h.deps(t)))
	t.Cleanup(h.srv.Close)

	op = h.userToken("operator")
	for i := 1; i <= 4; i++ {
		r := h.call("POST", "/server", op, map[string]any{"managerIp": fmt.Sprintf("10.1.0.%d", i)})
		want(t, r, 200, 0)
	}
	r := h.upload(op, "zookeeper-V3.8.4-x86.tar.gz", at.Package(t, "3.8.4"))
	want(t, r, 200, 0)
	zk = decodeData[pkgItem](t, r).ID
	r = h.upload(op, "nats-V2.10.0-all.tar.gz", at.TarGz(t,
		at.File("admq-package.json", `{"name": "nats", "version": "2.10.0", "mqType": 2, "components": {"broker": {
  "start": ["{programDir}/nats-server"], "serverPort": 4222,
  "configFiles": [{"name": "nats.conf", "path": "nats.conf", "format": "properties"}],
  "health": {"tcp": "{managerIp}:{serverPort}"}}}}`),
		at.File("nats-server", "x"),
		at.File("nats.conf", "# client port\nport={serverPort}\nserver_name={nodeDir}\n")))
	want(t, r, 200, 0)
	nats = decodeData[pkgItem](t, r).ID
	return h, op, zk, nats
}

var regexpTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

type nodeItem struct {
	ID, CreateTime, UpdateTime, ClusterID, ServerID, ManagerIP, DataIP, Component string
	ComponentType                                                                 int
	ComponentTypeStr, DeployStatus, RunStatus                                     string
	ServerPort, SyncNodeConfigStatus, Mode, Myid                                  int
	ProgramDir, DataDir, NodeDir, PackageID                                       string
	ConfigFiles                                                                   []struct{ ID, Name string }
}

type clusterItem struct {
	ID, CreateTime, UpdateTime, Name string
	NodeCount                        int
	Components                       []string
	Nodes                            []nodeItem
}

type itemItem struct {
	ID, CreateTime, UpdateTime, ConfigKey, ConfigValue, Describes string
	Effective                                                     int
}

func zkList(ips ...string) []map[string]any {
	var out []map[string]any
	for _, ip := range ips {
		out = append(out, map[string]any{"managerIp": ip, "programDir": "/opt/admq/{cluster}/{nodeDir}", "dataDir": "/data/admq/{cluster}/{nodeDir}"})
	}
	return out
}

func TestClusterAPI(t *testing.T) {
	h, op, zk, nats := newClusterHarness(t)
	viewer := h.userToken("viewer")

	// Viewers may not create.
	body := map[string]any{"name": "c1", "packageId": zk, "zkList": zkList("10.1.0.1", "10.1.0.2", "10.1.0.3")}
	want(t, h.call("POST", "/admq/cluster", viewer, body), 403, codePermissionDeny)

	r := h.call("POST", "/admq/cluster", op, body)
	want(t, r, 200, 0)
	cl := decodeData[clusterItem](t, r)
	if cl.Name != "c1" || cl.NodeCount != 3 || len(cl.Nodes) != 3 || cl.Nodes[2].Myid != 3 ||
		cl.Nodes[0].ComponentTypeStr != "admq协调器" || cl.Nodes[0].ComponentType != 1 || cl.Nodes[0].ServerPort != 2181 ||
		cl.Nodes[0].DataDir != "/data/admq/c1/coordinator-1" || cl.Nodes[0].DeployStatus != "undeployed" || cl.Nodes[0].Mode != 0 || cl.Nodes[0].SyncNodeConfigStatus != 3 ||
		len(cl.Nodes[0].ConfigFiles) != 1 || cl.Nodes[0].ConfigFiles[0].Name != "zoo.cfg" || !regexpTime.MatchString(cl.CreateTime) {
		t.Fatalf("created %+v", cl)
	}

	// Errors, each leaving nothing.
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   int
	}{
		{"duplicate name", body, 409, codeClusterNameExist},
		{"unknown server", map[string]any{"name": "c2", "packageId": zk, "zkList": zkList("10.1.0.4", "10.9.9.9")}, 404, codeServerNotExist},
		{"nested dirs", map[string]any{"name": "c2", "packageId": zk, "zkList": []map[string]any{{"managerIp": "10.1.0.4", "programDir": "/opt/a", "dataDir": "/opt/a/b"}}}, 400, codeServerDirIllegal},
		{"component not in package", map[string]any{"name": "c2", "packageId": zk, "brokerList": zkList("10.1.0.4")}, 400, codeComponentNotInPackage},
		{"server twice", map[string]any{"name": "c2", "packageId": zk, "zkList": zkList("10.1.0.4", "10.1.0.4")}, 400, codeNodeServerRepeated},
		{"unknown package", map[string]any{"name": "c2", "packageId": "777", "zkList": zkList("10.1.0.4")}, 404, codePackageNotExist},
		{"bad name", map[string]any{"name": "c 2", "packageId": zk, "zkList": zkList("10.1.0.4")}, 400, codeParamInvalid},
		{"unknown field", map[string]any{"name": "c2", "packageId": zk, "zkNodes": zkList("10.1.0.4")}, 400, codeParamInvalid},
	} {
		r := h.call("POST", "/admq/cluster", op, tc.body)
		want(t, r, tc.status, tc.code)
		if tc.code == codeParamInvalid && !strings.Contains(string(r.Data), "field") {
			t.Errorf("%s: no field in %s", tc.name, r.Data)
		}
	}
	r = h.call("GET", "/admq/cluster", viewer, nil)
	want(t, r, 200, 0)
	if list := decodeData[page[clusterItem]](t, r); list.Total != 1 || list.List[0].NodeCount != 3 {
		t.Fatalf("clusters %+v", list)
	}

	// Add NATS brokers from another package.
	r = h.call("POST", "/admq/cluster/node", op, map[string]any{"clusterId": cl.ID, "component": "broker", "packageId": nats,
		"nodes": []map[string]any{{"managerIp": "10.1.0.4", "programDir": "/opt/{cluster}/{nodeDir}", "dataDir": "/data/{cluster}/{nodeDir}", "serverPort": 4333}}})
	want(t, r, 200, 0)
	added := decodeData[[]nodeItem](t, r)
	if len(added) != 1 || added[0].ComponentTypeStr != "admq代理" || added[0].ServerPort != 4333 || added[0].PackageID != nats || added[0].ProgramDir != "/opt/c1/broker-1" {
		t.Fatalf("added %+v", added)
	}
	want(t, h.call("POST", "/admq/cluster/node", op, map[string]any{"clusterId": "999", "component": "broker", "packageId": nats,
		"nodes": zkList("10.1.0.3")}), 404, codeClusterNotExist)

	r = h.call("GET", "/cluster/node?clusterId="+cl.ID+"&pageSize=2", viewer, nil)
	want(t, r, 200, 0)
	nodes := decodeData[page[nodeItem]](t, r)
	if nodes.Total != 4 || nodes.Pages != 2 || len(nodes.List) != 2 || nodes.List[0].Myid != 1 {
		t.Fatalf("nodes %+v", nodes)
	}
	want(t, h.call("GET", "/cluster/node", viewer, nil), 400, codeParamInvalid)
	want(t, h.call("GET", "/cluster/node?clusterId=5", viewer, nil), 404, codeClusterNotExist)

	node := cl.Nodes[0]
	r = h.call("GET", "/cluster/node/config/file?nodeId="+node.ID, viewer, nil)
	want(t, r, 200, 0)
	files := decodeData[[]struct{ ID, NodeID, Name, Path, Format string }](t, r)
	if len(files) != 1 || files[0].Path != "conf/zoo.cfg" || files[0].Format != "properties" || files[0].NodeID != node.ID {
		t.Fatalf("files %+v", files)
	}
	fileID := files[0].ID
	want(t, h.call("GET", "/cluster/node/config/file?nodeId=5", viewer, nil), 404, codeNodeNotExist)

	r = h.call("GET", "/cluster/node/config?configFileId="+fileID+"&pageNum=1&pageSize=10", viewer, nil)
	want(t, r, 200, 0)
	items := decodeData[page[itemItem]](t, r)
	if items.Total != 3 || items.List[0].ConfigKey != "clientPort" || items.List[0].Effective != 1 {
		t.Fatalf("items %+v", items)
	}

	// Seed 2.3.0.6, with its fields.
	add := map[string]any{"fileMap": map[string]string{fileID: "zoo.cfg"}, "configFileId": fileID, "cid": cl.ID, "total": 3,
		"configKey": "test", "configValue": "test", "describes": "111"}
	r = h.call("POST", "/cluster/node/config", op, add)
	want(t, r, 200, 0)
	it := decodeData[itemItem](t, r)
	if it.ConfigKey != "test" || it.Describes != "111" || it.Effective != 1 {
		t.Fatalf("item %+v", it)
	}
	want(t, h.call("POST", "/cluster/node/config", op, add), 409, codeConfigItemExist)
	add["configKey"], add["cid"] = "other", "123"
	want(t, h.call("POST", "/cluster/node/config", op, add), 400, codeParamInvalid)
	add["cid"], add["bogus"] = cl.ID, 1
	want(t, h.call("POST", "/cluster/node/config", op, add), 400, codeParamInvalid)
	want(t, h.call("POST", "/cluster/node/config", op, map[string]any{"configFileId": "5", "configKey": "k", "configValue": ""}), 404, codeConfigFileNotExist)

	// Seed 2.3.0.7 and 2.3.0.8.
	r = h.call("GET", "/cluster/node/config?configFileId="+fileID, viewer, nil)
	items = decodeData[page[itemItem]](t, r)
	want(t, h.call("PUT", "/cluster/node/config/status", op, map[string]any{"id": items.List[0].ID, "effective": 0}), 200, 0)
	want(t, h.call("PUT", "/cluster/node/config/status", op, map[string]any{"id": items.List[0].ID, "effective": 2}), 400, codeParamInvalid)
	batch := []string{items.List[1].ID, items.List[2].ID}
	want(t, h.call("PUT", "/cluster/node/config/status/batch", op, map[string]any{"ids": append(batch, "42"), "effective": 0}), 404, codeConfigItemNotExist)
	want(t, h.call("PUT", "/cluster/node/config/status/batch", op, map[string]any{"ids": batch, "effective": 0}), 200, 0)
	r = h.call("GET", "/cluster/node/config?configFileId="+fileID, viewer, nil)
	items = decodeData[page[itemItem]](t, r)
	if items.List[0].Effective != 0 || items.List[1].Effective != 0 || items.List[2].Effective != 0 || items.List[3].Effective != 1 {
		t.Fatalf("after status changes %+v", items.List)
	}

	// Neither a package nor a server that cluster nodes use can be deleted.
	want(t, h.call("DELETE", "/package", op, map[string]any{"id": zk}), 409, codePackageInUse)
	nodeServer := decodeData[page[struct{ ServerID string }]](t, h.call("GET", "/cluster/node?clusterId="+cl.ID, viewer, nil)).List[0].ServerID
	want(t, h.call("DELETE", "/server", op, map[string]any{"id": nodeServer}), 409, codeServerInUse)

	// The audit log has the details.
	admin := h.login("admin", adminPassword)
	r = h.call("GET", "/audit?pageSize=100", admin, nil)
	if !strings.Contains(string(r.Data), "cluster=c1") {
		t.Errorf("no cluster detail in the audit log: %s", r.Data)
	}

	// Seed 2.3.0.11.
	want(t, h.call("DELETE", "/cluster", viewer, map[string]any{"id": cl.ID}), 403, codePermissionDeny)
	want(t, h.call("DELETE", "/cluster", op, map[string]any{"id": cl.ID}), 200, 0)
	want(t, h.call("DELETE", "/cluster?id="+cl.ID, op, nil), 404, codeClusterNotExist)
	want(t, h.call("GET", "/cluster/node/config/file?nodeId="+node.ID, viewer, nil), 404, codeNodeNotExist)
	r = h.call("GET", "/admq/cluster", viewer, nil)
	if list := decodeData[page[clusterItem]](t, r); list.Total != 0 {
		t.Fatalf("clusters after delete %+v", list)
	}
	want(t, h.call("DELETE", "/package", op, map[string]any{"id": zk}), 200, 0)
}

// TestClusterNodeErrors checks that a refused node is named as the request
// names it (zkList[1].managerIp, nodes[0].dataDir), with the reason.
func TestClusterNodeErrors(t *testing.T) {
	h, op, zk, _ := newClusterHarness(t)
	node := func(ip, prog, data string, port int) map[string]any {
		return map[string]any{"managerIp": ip, "programDir": prog, "dataDir": data, "serverPort": port}
	}
	ok := node("10.1.0.1", "/opt/{cluster}/{nodeDir}", "/data/{cluster}/{nodeDir}", 0)
	for _, tc := range []struct {
		name string
		body map[string]any
		code int
		// field is the data's field of a PARAM_INVALID; message is the
		// whole message, or its end after "…".
		field, message string
	}{
		{"no nodes", map[string]any{"name": "x", "packageId": zk}, codeParamInvalid,
			"zkList", "zkList: a cluster needs at least one node (zkList, storageList or brokerList)"},
		{"no package", map[string]any{"name": "x", "brokerList": []any{ok}}, codeParamInvalid,
			"packageId", "packageId: is required (or packages.broker) for the nodes in brokerList"},
		{"other component", map[string]any{"name": "x", "packageId": zk, "zkList": []any{ok}, "packages": map[string]any{"gateway": zk}}, codeParamInvalid,
			"packages", `packages: "gateway": only coordinator, storage and broker nodes are created with the cluster; add others with POST /admq/cluster/node`},
		{"no manager IP", map[string]any{"name": "x", "packageId": zk, "zkList": []any{node("", "/opt/x", "/data/x", 0)}}, codeParamInvalid,
			"zkList[0].managerIp", "zkList[0].managerIp: is required"},
		{"unknown server", map[string]any{"name": "x", "packageId": zk, "zkList": []any{ok, node("10.9.9.9", "/opt/x", "/data/x", 0)}}, codeServerNotExist,
			"", "server does not exist: zkList[1].managerIp: no server is registered with manager IP 10.9.9.9"},
		{"server twice", map[string]any{"name": "x", "packageId": zk, "zkList": []any{ok, ok}}, codeNodeServerRepeated,
			"", "a server is given twice for one component: zkList[1].managerIp: 10.1.0.1 already has a coordinator node in cluster x"},
		{"bad port", map[string]any{"name": "x", "packageId": zk, "zkList": []any{ok, node("10.1.0.2", "/opt/x", "/data/x", 70000)}}, codeParamInvalid,
			"zkList[1].serverPort", "zkList[1].serverPort: 70000 is not a TCP port"},
		{"relative dir", map[string]any{"name": "x", "packageId": zk, "zkList": []any{node("10.1.0.1", "opt", "/data/x", 0)}}, codeParamInvalid,
			"zkList[0].programDir", `zkList[0].programDir: "opt" must be an absolute path`},
		{"root dir", map[string]any{"name": "x", "packageId": zk, "zkList": []any{node("10.1.0.1", "/opt/x", "/", 0)}}, codeParamInvalid,
			"zkList[0].dataDir", "zkList[0].dataDir: must not be the root directory"},
		{"system dir", map[string]any{"name": "x", "packageId": zk, "zkList": []any{node("10.1.0.1", "/usr/lib", "/data/x", 0)}}, codeServerDirIllegal,
			"", "…: zkList[0].programDir: /usr/lib is a system directory (/usr and everything under it)"},
		{"nested dirs", map[string]any{"name": "x", "packageId": zk, "zkList": []any{node("10.1.0.1", "/opt/a", "/opt/a/b", 0)}}, codeServerDirIllegal,
			"", "program dir and data dir must not contain each other: zkList[0]: programDir /opt/a and dataDir /opt/a/b"},
		{"unknown package", map[string]any{"name": "x", "packageId": "777", "zkList": []any{ok}}, codePackageNotExist,
			"", "package does not exist: zkList: package 777"},
		{"component not in package", map[string]any{"name": "x", "packageId": zk, "brokerList": []any{ok}}, codeComponentNotInPackage,
			"", "…provides coordinator, not broker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/admq/cluster", op, tc.body)
			checkNodeError(t, r, tc.code, tc.field, tc.message)
		})
	}
	r := h.call("POST", "/admq/cluster", op, map[string]any{"name": "c1", "packageId": zk, "zkList": []any{ok}})
	want(t, r, 200, 0)
	id := decodeData[clusterItem](t, r).ID
	r = h.call("POST", "/admq/cluster/node", op, map[string]any{"clusterId": id, "component": "coordinator", "packageId": zk,
		"nodes": []any{node("10.1.0.2", "/opt/y", "/data/y", 0), node("10.1.0.3", "/opt/z", "", 0)}})
	checkNodeError(t, r, codeParamInvalid, "nodes[1].dataDir", "nodes[1].dataDir: is required")
}

func checkNodeError(t *testing.T, r reply, code int, field, message string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("code %d (%s: %s), want %d", r.Code, r.Msg, r.Message, code)
	}
	if end, ok := strings.CutPrefix(message, "…"); ok && !strings.HasSuffix(r.Message, end) || !ok && r.Message != message {
		t.Errorf("message %q, want %q", r.Message, message)
	}
	if field != "" && !strings.Contains(string(r.Data), fmt.Sprintf(`"field":%q`, field)) {
		t.Errorf("data %s does not name field %s", r.Data, field)
	}
}
