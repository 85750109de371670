package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

func newTestNode(c cluster.Cluster, srv fleet.Server, p pkg.Package, ordinal int, dir string) cluster.NewNode {
	n := cluster.Node{
		ID: nextID(), ClusterID: c.ID, ServerID: srv.ID, PackageID: p.ID, Component: cluster.Coordinator,
		ComponentType: cluster.TypeCoordinator, ManagerIP: srv.ManagerIP, ProgramDir: "/opt/" + dir, DataDir: "/data/" + dir,
		NodeDir: dir, ServerPort: 2181, Ordinal: ordinal, DeployState: cluster.DeployUndeployed, RunState: cluster.RunUnknown,
		CreatedAt: base, UpdatedAt: base,
	}
	zoo := config.Imported{File: config.File{Name: "zoo.cfg", Path: "conf/zoo.cfg", Format: "properties", Target: "conf/zoo.cfg"},
		Entries: []config.Entry{{Key: "tickTime", Value: "2000", Comment: "tick", Effective: true}, {Key: "dataDir", Value: "{dataDir}", Effective: true}}}
	return cluster.NewNode{Node: n, Config: []config.Imported{zoo}}
}

func clusterCounts(t *testing.T, db *store.DB) [3]int {
	t.Helper()
	c, n, i, err := db.ClusterCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return [3]int{c, n, i}
}

func TestClusters(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "a1")
	s1 := mustServer(t, db, area.ID, "10.2.0.1", "")
	s2 := mustServer(t, db, area.ID, "10.2.0.2", "")
	p := mustPackage(t, db, "admq-zookeeper", "3.8.4", "x86")

	ref, err := db.ServerByManagerIP(ctx, "10.2.0.2")
	if err != nil || ref.ID != s2.ID {
		t.Fatalf("by ip: %+v %v", ref, err)
	}
	if _, err := db.ServerByManagerIP(ctx, "10.2.0.9"); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("unknown ip: %v", err)
	}

	c := cluster.Cluster{ID: nextID(), Name: "c1", CreatedAt: base, UpdatedAt: base}
	if err := db.CreateCluster(ctx, &c, []cluster.NewNode{newTestNode(c, s1, p, 1, "a"), newTestNode(c, s2, p, 2, "b")}, nextID); err != nil {
		t.Fatal(err)
	}
	// Two node items each, mirroring the one layer of zoo.cfg.
	if got := clusterCounts(t, db); got != [3]int{1, 2, 4} {
		t.Fatalf("counts %v", got)
	}
	got, err := db.Cluster(ctx, c.ID)
	if err != nil || got.NodeCount != 2 || len(got.Components) != 1 || got.Name != "c1" {
		t.Fatalf("cluster %+v %v", got, err)
	}

	// A duplicate name, a repeated server or ordinal, a missing server:
	// nothing is written.
	before := clusterCounts(t, db)
	dup := cluster.Cluster{ID: nextID(), Name: "c1"}
	if err := db.CreateCluster(ctx, &dup, []cluster.NewNode{newTestNode(dup, s1, p, 1, "x")}, nextID); !errors.Is(err, cluster.ErrClusterExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	c2 := cluster.Cluster{ID: nextID(), Name: "c2"}
	if err := db.CreateCluster(ctx, &c2, []cluster.NewNode{newTestNode(c2, s1, p, 1, "x"), newTestNode(c2, s1, p, 2, "y")}, nextID); !errors.Is(err, cluster.ErrServerRepeated) {
		t.Fatalf("repeated server: %v", err)
	}
	gone := fleet.Server{ID: nextID(), ManagerIP: "10.2.0.3"}
	if err := db.CreateCluster(ctx, &c2, []cluster.NewNode{newTestNode(c2, s1, p, 1, "x"), newTestNode(c2, gone, p, 2, "y")}, nextID); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("missing server: %v", err)
	}
	if err := db.AddNodes(ctx, nextID(), []cluster.NewNode{newTestNode(c2, s1, p, 1, "x")}, base, nextID); !errors.Is(err, cluster.ErrClusterNotFound) {
		t.Fatalf("missing cluster: %v", err)
	}
	if got := clusterCounts(t, db); got != before {
		t.Fatalf("counts %v, before %v", got, before)
	}

	nodes, err := db.AllNodes(ctx, c.ID)
	if err != nil || len(nodes) != 2 || nodes[0].Ordinal != 1 {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
	ords, _ := db.Ordinals(ctx, c.ID, cluster.Coordinator)
	if ords[s1.ID] != 1 || ords[s2.ID] != 2 {
		t.Fatalf("ordinals %v", ords)
	}

	// Servers and packages in use stay.
	if err := db.DeleteServer(ctx, s1.ID, base); err == nil {
		t.Fatal("server in use deleted")
	}
	if err := db.DeletePackage(ctx, p.ID); err == nil {
		t.Fatal("package in use deleted")
	}

	if err := db.DeleteCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if got := clusterCounts(t, db); got != [3]int{} {
		t.Fatalf("after delete %v", got)
	}
	if ords, _ := db.Ordinals(ctx, c.ID, cluster.Coordinator); len(ords) != 0 {
		t.Fatalf("ordinals left: %v", ords)
	}
	if err := db.DeleteCluster(ctx, c.ID); !errors.Is(err, cluster.ErrClusterNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := db.DeleteServer(ctx, s1.ID, base); err != nil {
		t.Fatal(err)
	}
}
