package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/admq/admq-manager/manager/config"
)

// brokers are three brokers given out of ordinal order, with a
// coordinator that {peers} leaves out.
func brokers() config.Topology {
	broker := func(ord int, ip string) config.Member {
		return config.Member{Component: "broker", ManagerIP: "10.0.0.9", DataIP: ip, ServerPort: 4222,
			Ordinal: ord, NodeDir: fmt.Sprintf("broker-%d", ord), ProgramDir: fmt.Sprintf("/opt/b%d", ord), DataDir: fmt.Sprintf("/data/b%d", ord)}
	}
	return config.Topology{ClusterID: 1, Cluster: "c1", Members: []config.Member{
		broker(3, "10.0.1.3"),
		{Component: config.Coordinator, ManagerIP: "10.0.0.1", ServerPort: 2181, Ordinal: 1, NodeDir: "coordinator-1"},
		broker(1, "10.0.1.1"),
		broker(2, "fd00::2"),
	}}
}

func TestVarsForPeers(t *testing.T) {
	top := brokers()
	cases := []struct {
		name, peer string
		node       int
		want, err  string
	}{
		{name: "default", node: 0,
			want: "10.0.1.1:4222, [fd00::2]:4222, 10.0.1.3:4222"},
		{name: "nats routes", peer: "nats-route://{dataIp}:6222", node: 2,
			want: "nats-route://10.0.1.1:6222, nats-route://fd00::2:6222, nats-route://10.0.1.3:6222"},
		{name: "each peer's own variables", peer: "{myid}={node}@{dataDir}:{serverPort}/{cluster}/{zkServers}", node: 3,
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
			n := top.Members[tc.node]
			v, err := config.VarsFor(top, n, tc.peer)
			if tc.err != "" {
				if !errors.Is(err, config.ErrRender) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("VarsFor = %v, %v; want ErrRender with %q", v, err, tc.err)
				}
				return
			}
			if err != nil || v["peers"] != tc.want {
				t.Fatalf("{peers} = %q, %v; want %q", v["peers"], err, tc.want)
			}
			if v["node"] != n.NodeDir || v["myid"] != fmt.Sprint(n.Ordinal) {
				t.Fatalf("the node's own variables changed: %v", v)
			}
		})
	}
}

func TestVarsForEnsemble(t *testing.T) {
	coord := func(ord int, ip string, port int) config.Member {
		return config.Member{Component: config.Coordinator, ManagerIP: ip, ServerPort: port, Ordinal: ord, NodeDir: fmt.Sprintf("coordinator-%d", ord)}
	}
	top := config.Topology{Cluster: "zk", Members: []config.Member{coord(2, "10.0.0.2", 2181), coord(1, "10.0.0.1", 2181), coord(3, "10.0.0.3", 2182)}}
	v, err := config.VarsFor(top, top.Members[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if v["zkServers"] != "10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2182" ||
		v["zkEnsemble"] != "server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2889:3889" || v["myid"] != "2" {
		t.Fatalf("vars %v", v)
	}
	top.Members[2].ServerPort = 65000
	if _, err := config.VarsFor(top, top.Members[0], ""); !errors.Is(err, config.ErrRender) || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("a client port too high for its quorum ports: %v", err)
	}
}
