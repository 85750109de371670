package deploy

import (
	"cmp"
	"slices"
	"testing"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/pkg"
)

func TestDeployRequestFreeAddrs(t *testing.T) {
	cases := []struct {
		name              string
		managerIP, dataIP string
		component         string // "": broker
		port              int
		want              []string
	}{
		{name: "coordinator: client, quorum and election ports", managerIP: "10.0.0.2", component: cluster.Coordinator, port: 2281,
			want: []string{"10.0.0.2:2281", "10.0.0.2:2988", "10.0.0.2:3988"}},
		{name: "data ip", managerIP: "10.0.0.2", dataIP: "198.18.0.2", port: 2181, want: []string{"198.18.0.2:2181"}},
		{name: "manager ip when no data ip", managerIP: "10.0.0.2", port: 4222, want: []string{"10.0.0.2:4222"}},
		{name: "ipv6", managerIP: "10.0.0.2", dataIP: "fd00::2", port: 4222, want: []string{"[fd00::2]:4222"}},
		{name: "no port", managerIP: "10.0.0.2", dataIP: "198.18.0.2"},
	}
	comp := manifest.Component{Start: []string{"serve", "{dataIp}:{serverPort}"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := cluster.Node{ID: 7, ClusterID: 1, Component: cmp.Or(tc.component, "broker"), ManagerIP: tc.managerIP, DataIP: tc.dataIP,
				ProgramDir: "/opt/admq/b1", DataDir: "/data/admq/b1", NodeDir: "broker-1", ServerPort: tc.port, Ordinal: 1}
			m := config.Member{ID: n.ID, Component: n.Component, ManagerIP: n.ManagerIP, DataIP: n.DataIP, ProgramDir: n.ProgramDir,
				DataDir: n.DataDir, NodeDir: n.NodeDir, ServerPort: n.ServerPort, Ordinal: n.Ordinal}
			vars, err := config.VarsFor(config.Topology{ClusterID: 1, Cluster: "c1", Members: []config.Member{m}}, m, "")
			if err != nil {
				t.Fatal(err)
			}
			r, err := deployRequest(n, pkg.Package{Ext: "tar.gz"}, comp, vars)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.FreeAddrs, tc.want) {
				t.Errorf("FreeAddrs = %q, want %q", r.FreeAddrs, tc.want)
			}
		})
	}
}
