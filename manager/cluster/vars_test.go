package cluster_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/manager/cluster"
)

// brokerNodes are three brokers of cluster 1 given out of ordinal order,
// with a coordinator and another cluster's broker that {peers} leaves out.
func brokerNodes() []cluster.Node {
	broker := func(ord int, ip string) cluster.Node {
		return cluster.Node{ClusterID: 1, Component: cluster.Broker, ManagerIP: "10.0.0.9", DataIP: ip, ServerPort: 4222,
			Ordinal: ord, NodeDir: fmt.Sprintf("broker-%d", ord), ProgramDir: fmt.Sprintf("/opt/b%d", ord), DataDir: fmt.Sprintf("/data/b%d", ord)}
	}
	other := broker(1, "10.9.9.9")
	other.ClusterID = 2
	return []cluster.Node{
		broker(3, "10.0.1.3"),
		{ClusterID: 1, Component: cluster.Coordinator, ManagerIP: "10.0.0.1", ServerPort: 2181, Ordinal: 1, NodeDir: "coordinator-1"},
		broker(1, "10.0.1.1"),
		other,
		broker(2, "fd00::2"),
	}
}

func TestVarsForPeers(t *testing.T) {
	c := cluster.Cluster{ID: 1, Name: "c1"}
	all := brokerNodes()
	cases := []struct {
		name, peer string
		node       int
		want, err  string
	}{
		{name: "default", node: 0,
			want: "10.0.1.1:4222, [fd00::2]:4222, 10.0.1.3:4222"},
		{name: "nats routes", peer: "nats-route://{dataIp}:6222", node: 2,
			want: "nats-route://10.0.1.1:6222, nats-route://fd00::2:6222, nats-route://10.0.1.3:6222"},
		{name: "each peer's own variables", peer: "{myid}={node}@{dataDir}:{serverPort}/{cluster}/{zkServers}", node: 4,
			want: "1=broker-1@/data/b1:4222/c1/10.0.0.1:2181, 2=broker-2@/data/b2:4222/c1/10.0.0.1:2181, 3=broker-3@/data/b3:4222/c1/10.0.0.1:2181"},
		{name: "literal braces", peer: "{{{dataIp}}}", node: 0,
			want: "{10.0.1.1}, {fd00::2}, {10.0.1.3}"},
		{name: "a coordinator's peers are the coordinators", node: 1, want: "10.0.0.1:2181"},
		{name: "recursion refused", peer: "{dataIp} {peers}", node: 0, err: "a peer may not use {peers}"},
		{name: "bad template", peer: "{dataIp", node: 0, err: `unclosed "{"`},
		{name: "unknown variable", peer: "{nosuch}", node: 0, err: "unknown variable {nosuch}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := cluster.VarsFor(c, all[tc.node], all, tc.peer)
			if tc.err != "" {
				if !errors.Is(err, cluster.ErrRender) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("VarsFor = %v, %v; want ErrRender with %q", v, err, tc.err)
				}
				return
			}
			if err != nil || v["peers"] != tc.want {
				t.Fatalf("{peers} = %q, %v; want %q", v["peers"], err, tc.want)
			}
			if v["node"] != all[tc.node].NodeDir || v["myid"] != fmt.Sprint(all[tc.node].Ordinal) {
				t.Fatalf("the node's own variables changed: %v", v)
			}
		})
	}
}

// TestPeersRoutesRendered: "{peers}" in a package's raw file survives the
// brace escaping of import, and renders as every broker's route.
func TestPeersRoutesRendered(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const conf = "listen: {dataIp}:{serverPort}\ncluster {\n  name: {cluster}\n  routes: [{peers}]\n}\n"
	nats := f.upload(t, "natsr-V2.10.0-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", `{"name": "natsr", "version": "2.10.0", "mqType": 3, "components": {"broker": {
  "start": ["{programDir}/nats-server", "-c", "{programDir}/nats.conf"],
  "configFiles": [{"name": "nats.conf", "path": "nats.conf", "format": "raw"}],
  "serverPort": 4222, "peer": "nats-route://{dataIp}:6222",
  "health": {"tcp": "{dataIp}:{serverPort}"}}}}`),
		at.File("nats-server", "bin"),
		at.File("nats.conf", conf),
	))
	c, brokers, err := f.svc.Create(ctx, cluster.NewCluster{Name: "r1", PackageID: nats.ID, Brokers: zkSpecs("10.0.0.1", "10.0.0.2", "10.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	peer := nats.Manifest.Components[cluster.Broker].Peer
	for _, b := range brokers {
		files, err := f.svc.ConfigFiles(ctx, b.ID)
		if err != nil || len(files) != 1 {
			t.Fatalf("files %+v %v", files, err)
		}
		items, _ := f.svc.AllConfigItems(ctx, files[0].ID)
		if len(items) != 1 || !strings.Contains(items[0].Value, "routes: [{peers}]\n") || !strings.Contains(items[0].Value, "cluster {{\n") {
			t.Fatalf("imported %+v", items)
		}
		vars, err := cluster.VarsFor(c, b, brokers, peer)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cluster.Render(files[0], items, vars)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("listen: 192.168.0.%d:4222\ncluster {\n  name: r1\n"+
			"  routes: [nats-route://192.168.0.1:6222, nats-route://192.168.0.2:6222, nats-route://192.168.0.3:6222]\n}\n", b.Ordinal)
		if string(out) != want {
			t.Fatalf("%s nats.conf:\n%s\nwant\n%s", b.NodeDir, out, want)
		}
	}
}
