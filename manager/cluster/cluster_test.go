package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/cluster/clustertest"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

const natsManifest = `{"name": "nats", "version": "2.10.0", "mqType": 2, "components": {"broker": {
  "start": ["{programDir}/nats-server", "-c", "{programDir}/nats.conf"],
  "configFiles": [{"name": "nats.conf", "path": "nats.conf", "format": "raw"}],
  "serverPort": 4222,
  "health": {"tcp": "{managerIp}:{serverPort}"}}}}`

type fixture struct {
	db   *store.DB
	pkgs *pkg.Service
	svc  *cluster.Service
	zk   pkg.Package
	nats pkg.Package
	env  *clustertest.Env
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := clustertest.New(t, 3)
	f := &fixture{db: e.DB, pkgs: e.Packages, svc: e.Clusters, env: e}
	f.zk = f.upload(t, "zookeeper-V3.8.4-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", clustertest.ZooKeeperManifest("3.8.4")),
		at.Dir("conf/"),
		at.File("conf/zoo.cfg", clustertest.ZooCfg),
		at.File("conf/myid.tpl", "{myid}\n"),
		at.File("bin/zkServer.sh", "#!/bin/sh\n"),
	))
	f.nats = f.upload(t, "nats-V2.10.0-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", natsManifest),
		at.File("nats-server", "bin"),
		at.File("nats.conf", "port: {serverPort}\ncluster { name: {cluster} }\nzk: \"{zkServers}\"\n"),
	))
	e.AddServers(t, 4, true)
	return f
}

func (f *fixture) upload(t *testing.T, name string, data []byte) pkg.Package {
	t.Helper()
	return f.env.Upload(t, name, data)
}

type counts struct{ clusters, nodes, items int }

func (f *fixture) counts(t *testing.T) counts {
	t.Helper()
	c, n, i, err := f.db.ClusterCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return counts{c, n, i}
}

func TestCreateZooKeeperEnsemble(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes, err := f.svc.Create(ctx, cluster.NewCluster{Name: "c1", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1", "10.0.0.2", "10.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "c1" || c.NodeCount != 3 || len(c.Components) != 1 || c.Components[0] != "coordinator" {
		t.Fatalf("cluster %+v", c)
	}
	if len(nodes) != 3 {
		t.Fatalf("%d nodes", len(nodes))
	}
	for i, n := range nodes {
		if n.Ordinal != i+1 || n.ComponentType != cluster.TypeCoordinator || n.ServerPort != 2181 {
			t.Errorf("node %d: %+v", i, n)
		}
		if want := fmt.Sprintf("/data/admq/c1/coordinator-%d", i+1); n.DataDir != want || n.ProgramDir != fmt.Sprintf("/opt/admq/c1/coordinator-%d", i+1) {
			t.Errorf("node %d dirs %s %s", i, n.ProgramDir, n.DataDir)
		}
		if n.DeployState != cluster.DeployUndeployed || n.RunState != cluster.RunUnknown {
			t.Errorf("node %d states %s %s", i, n.DeployState, n.RunState)
		}
	}
	// Each node mirrors the cluster layer of zoo.cfg (11 keys) and myid (1).
	if got := f.counts(t); got != (counts{1, 3, 3 * 12}) {
		t.Fatalf("counts %+v", got)
	}
}

func TestAddBrokersWithAnotherPackage(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, zk, err := f.svc.Create(ctx, cluster.NewCluster{Name: "mixed", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1", "10.0.0.2", "10.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := f.svc.AddNodes(ctx, c.ID, cluster.Broker, f.nats.ID, []cluster.NodeSpec{
		{ManagerIP: "10.0.0.1", ProgramDir: "/opt/admq/{cluster}/{nodeDir}", DataDir: "/data/admq/{cluster}/{nodeDir}"},
		{ManagerIP: "10.0.0.4", ProgramDir: "/opt/nats", DataDir: "/data/nats", ServerPort: 4333},
	}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 2 || brokers[0].Ordinal != 1 || brokers[1].Ordinal != 2 || brokers[0].NodeDir != "broker-1" ||
		brokers[0].ServerPort != 4222 || brokers[1].ServerPort != 4333 || brokers[0].PackageID != f.nats.ID || brokers[0].ComponentType != cluster.TypeBroker {
		t.Fatalf("brokers %+v", brokers)
	}
	all, _ := f.svc.AllNodes(ctx, c.ID)
	if len(all) != 5 || all[0].Component != cluster.Coordinator || all[4].Component != cluster.Broker {
		t.Fatalf("all nodes %+v", all)
	}
	c, _ = f.svc.Cluster(ctx, c.ID)
	if c.NodeCount != 5 || strings.Join(c.Components, ",") != "broker,coordinator" {
		t.Fatalf("cluster %+v", c)
	}
	// The same server twice for brokers, and again for a component it has.
	_, err = f.svc.AddNodes(ctx, c.ID, cluster.Broker, f.nats.ID, []cluster.NodeSpec{{ManagerIP: "10.0.0.1", ProgramDir: "/opt/x", DataDir: "/data/x"}}, "alice")
	if !errors.Is(err, cluster.ErrServerRepeated) {
		t.Fatalf("repeat: %v", err)
	}
	// The coordinator count goes on: 10.0.0.4 becomes myid 4.
	more, err := f.svc.AddNodes(ctx, c.ID, cluster.Coordinator, f.zk.ID, clustertest.Specs("10.0.0.4"), "")
	if err != nil || more[0].Ordinal != 4 || more[0].NodeDir != "coordinator-4" {
		t.Fatalf("4th coordinator %+v %v", more, err)
	}
	_ = zk
}

func TestValidationLeavesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, _, err := f.svc.Create(ctx, cluster.NewCluster{Name: "taken", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	disabled := f.upload(t, "zookeeper-V3.9.0-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", clustertest.ZooKeeperManifest("3.9.0")), at.File("conf/zoo.cfg", clustertest.ZooCfg), at.File("conf/myid.tpl", "{myid}"), at.File("bin/zkServer.sh", "x")))
	if _, err := f.pkgs.SetEffective(ctx, disabled.ID, false); err != nil {
		t.Fatal(err)
	}
	f.svc.ProtectDir("/srv/admq-manager", "the manager's data dir")
	gen, _ := ids.NewGenerator(4)
	if err := f.db.CreateServer(ctx, &fleet.Server{ID: gen.Next(), ManagerIP: "10.0.0.5", Facts: fleet.Facts{StateDir: "/srv/admq/agent-state"}}); err != nil {
		t.Fatal(err)
	}
	before := f.counts(t)
	refused := func(reason string) func(error) bool {
		return func(err error) bool {
			return errors.Is(err, cluster.ErrDirRefused) && strings.Contains(err.Error(), reason)
		}
	}
	// badNode checks for invalid input in a field of the i-th coordinator
	// spec, named in the domain's terms.
	badNode := func(i int, field string) func(error) bool {
		return func(err error) bool {
			var ne *cluster.NodeError
			_, isInvalid := invalid.As(err)
			return errors.As(err, &ne) && ne.Component == cluster.Coordinator && ne.Index == i && ne.Field == field && ne.Kind == nil && isInvalid
		}
	}
	spec := func(ip, prog, data string) []cluster.NodeSpec {
		return []cluster.NodeSpec{{ManagerIP: ip, ProgramDir: prog, DataDir: data}}
	}
	for _, tc := range []struct {
		name  string
		n     cluster.NewCluster
		check func(error) bool
	}{
		{"unknown server", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1", "10.9.9.9")},
			func(err error) bool { return errors.Is(err, fleet.ErrServerNotFound) }},
		{"duplicate name", cluster.NewCluster{Name: "taken", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.2")},
			func(err error) bool { return errors.Is(err, cluster.ErrClusterExists) }},
		{"nested dirs", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/{cluster}", "/opt/{cluster}/data")},
			func(err error) bool { return errors.Is(err, fleet.ErrDirsNested) }},
		{"dirs collide with another cluster's node", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.1", "/opt/admq/taken", "/data/x")},
			func(err error) bool { return errors.Is(err, fleet.ErrDirsNested) }},
		{"port taken on the server", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.1", "/opt/y", "/data/y")},
			func(err error) bool { e, ok := invalid.As(err); return ok && e.Field == "serverPort" }},
		{"component not in package", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.2"), Brokers: clustertest.Specs("10.0.0.3")},
			func(err error) bool { return errors.Is(err, cluster.ErrComponentNotInPackage) }},
		{"same server twice", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.2", "10.0.0.3", "10.0.0.2")},
			func(err error) bool { return errors.Is(err, cluster.ErrServerRepeated) }},
		{"disabled package", cluster.NewCluster{Name: "x", PackageID: disabled.ID, Coordinators: clustertest.Specs("10.0.0.2")},
			func(err error) bool { return errors.Is(err, cluster.ErrPackageDisabled) }},
		{"unknown package", cluster.NewCluster{Name: "x", PackageID: 12345, Coordinators: clustertest.Specs("10.0.0.2")},
			func(err error) bool { return errors.Is(err, pkg.ErrPackageNotFound) }},
		{"bad name", cluster.NewCluster{Name: "-x", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.2")},
			func(err error) bool { e, ok := invalid.As(err); return ok && e.Field == "name" }},
		{"no nodes", cluster.NewCluster{Name: "x", PackageID: f.zk.ID},
			func(err error) bool { _, ok := invalid.As(err); return ok }},
		{"relative dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "opt", "/data")},
			badNode(0, cluster.FieldProgramDir)},
		{"root dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt", "/")},
			badNode(0, cluster.FieldDataDir)},
		{"dotdot", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/../etc", "/data")},
			func(err error) bool { _, ok := invalid.As(err); return ok }},
		{"unknown placeholder", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/{myid}", "/data")},
			func(err error) bool { _, ok := invalid.As(err); return ok }},
		{"system dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/usr/lib", "/data/{cluster}")},
			refused("coordinator node 0 ProgramDir: /usr/lib is a system directory (/usr and everything under it)")},
		{"under /etc", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/etc/{cluster}", "/data/{cluster}")},
			refused("/etc/x is a system directory")},
		{"/var/lib itself", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/{cluster}", "/var/lib")},
			refused("coordinator node 0 DataDir: /var/lib is a system directory")},
		{"home dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/{cluster}", "/home/{cluster}")},
			refused("/home/x is a home directory")},
		{"manager's data dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.2", "/opt/{cluster}", "/srv/admq-manager/{cluster}")},
			refused("overlaps the manager's data dir /srv/admq-manager")},
		{"agent's state dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.5", "/opt/{cluster}", "/srv/admq/agent-state")},
			refused("DataDir: /srv/admq/agent-state overlaps the agent's state dir on 10.0.0.5 /srv/admq/agent-state")},
		{"dir holding the agent's state dir", cluster.NewCluster{Name: "x", PackageID: f.zk.ID, Coordinators: spec("10.0.0.5", "/srv/admq", "/data/{cluster}")},
			refused("ProgramDir: /srv/admq overlaps the agent's state dir")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.Create(ctx, tc.n)
			if err == nil || !tc.check(err) {
				t.Fatalf("got %v", err)
			}
			if after := f.counts(t); after != before {
				t.Fatalf("counts %+v, before %+v", after, before)
			}
		})
	}
}

// failingStore fails the create transaction after the checks, as a crash
// mid-write would: nothing may be left.
type failingStore struct {
	*store.DB
}

func (failingStore) CreateCluster(context.Context, *cluster.Cluster, []cluster.NewNode, func() ids.ID) error {
	return errors.New("boom")
}

func TestDeleteFreesServerAndPackage(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes, err := f.svc.Create(ctx, cluster.NewCluster{Name: "c1", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1", "10.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	// A server or package in use cannot be deleted.
	if err := f.db.DeleteServer(ctx, nodes[0].ServerID, time.Now()); !errors.Is(err, fleet.ErrServerInUse) {
		t.Fatalf("delete a server with nodes: %v, want ErrServerInUse", err)
	}
	if err := f.db.DeletePackage(ctx, f.zk.ID); !errors.Is(err, pkg.ErrPackageInUse) {
		t.Fatalf("delete a package in use: %v, want ErrPackageInUse", err)
	}

	// A failing write leaves nothing.
	before := f.counts(t)
	gen, _ := ids.NewGenerator(9)
	bad := cluster.NewService(failingStore{f.db}, f.pkgs, gen, time.Now)
	if _, _, err := bad.Create(ctx, cluster.NewCluster{Name: "c2", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.3")}); err == nil {
		t.Fatal("no error")
	}
	if f.counts(t) != before {
		t.Fatal("failed create left rows")
	}

	if _, _, err := f.svc.Delete(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.counts(t); got != (counts{}) {
		t.Fatalf("after delete: %+v", got)
	}
	if _, _, err := f.svc.Delete(ctx, c.ID, nil); !errors.Is(err, cluster.ErrClusterNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := f.svc.Node(ctx, nodes[0].ID); !errors.Is(err, cluster.ErrNodeNotFound) {
		t.Fatalf("node after delete: %v", err)
	}
	// Now the server and the package are free.
	if err := f.db.DeleteServer(ctx, nodes[0].ServerID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pkgs.Delete(ctx, f.zk.ID); err != nil {
		t.Fatal(err)
	}
}

func TestOrdinalsAreKeptPerServer(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, _, err := f.svc.Create(ctx, cluster.NewCluster{Name: "c1", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.2", "10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ords, err := f.db.Ordinals(ctx, c.ID, cluster.Coordinator)
	if err != nil || len(ords) != 2 {
		t.Fatalf("%v %v", ords, err)
	}
	nodes, _ := f.svc.AllNodes(ctx, c.ID)
	if nodes[0].ManagerIP != "10.0.0.2" || nodes[0].Ordinal != 1 || nodes[1].ManagerIP != "10.0.0.1" || nodes[1].Ordinal != 2 {
		t.Fatalf("ordinals follow the order given: %+v", nodes)
	}
}
