package config_test

import (
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/cluster/clustertest"
	"github.com/admq/admq-manager/manager/config"
)

// TestItemAuthors: every edit records who made it; a node's copy of a
// layer key names the author of its latest change, the node's or the
// layer's; keys from a package imported with no user recorded have none.
func TestItemAuthors(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	// A clock one second on at each reading, so that each edit is later
	// than the one before.
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc := config.NewService(f.db, f.pkgs, f.env.IDs, func() time.Time { at = at.Add(time.Second); return at })
	nf0, _ := f.zooCfgOf(t, nodes[0])
	nf1, _ := f.zooCfgOf(t, nodes[1])
	nodeItem := func(nf config.NodeFile, key string) config.NodeItem {
		t.Helper()
		items, err := svc.AllNodeItems(ctx, nf.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Key == key {
				return it
			}
		}
		t.Fatalf("%s has no %s", nf.ID, key)
		return config.NodeItem{}
	}
	want := func(what string, createdBy, updatedBy, wantCreated, wantUpdated string) {
		t.Helper()
		if createdBy != wantCreated || updatedBy != wantUpdated {
			t.Errorf("%s: created by %q, updated by %q; want %q, %q", what, createdBy, updatedBy, wantCreated, wantUpdated)
		}
	}
	s := func(v string) *string { return &v }

	if it := nodeItem(nf0, "tickTime"); it.CreatedBy != "" || it.UpdatedBy != "" {
		t.Errorf("tickTime from the package: %+v", it)
	}
	added, err := svc.AddItem(ctx, nf0.FileID, config.NewItem{Key: "authors.k", Value: "1", By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want("added", added.CreatedBy, added.UpdatedBy, "alice", "alice")
	it0 := nodeItem(nf0, "authors.k")
	want("node 0's copy", it0.CreatedBy, it0.UpdatedBy, "alice", "alice")

	if _, err := svc.UpdateNodeItem(ctx, nodeItem(nf1, "authors.k").ID, config.Change{Value: s("7"), By: "bob"}); err != nil {
		t.Fatal(err)
	}
	it1 := nodeItem(nf1, "authors.k")
	want("node 1's override", it1.CreatedBy, it1.UpdatedBy, "alice", "bob")
	it0 = nodeItem(nf0, "authors.k")
	want("node 0 after node 1's override", it0.CreatedBy, it0.UpdatedBy, "alice", "alice")

	// A later change of the layer is the latest change of every copy.
	upd, err := svc.UpdateItem(ctx, added.ID, config.Change{Value: s("2"), By: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	want("layer update", upd.CreatedBy, upd.UpdatedBy, "alice", "carol")
	it1 = nodeItem(nf1, "authors.k")
	want("node 1 after the layer's update", it1.CreatedBy, it1.UpdatedBy, "alice", "carol")
	if !it1.UpdatedAt.Equal(upd.UpdatedAt) {
		t.Errorf("node 1's copy updated at %s, the layer at %s", it1.UpdatedAt, upd.UpdatedAt)
	}

	if err := svc.SetNodeItemsEffective(ctx, []ids.ID{it0.ID}, false, "dave"); err != nil {
		t.Fatal(err)
	}
	it0 = nodeItem(nf0, "authors.k")
	want("node 0 switched off", it0.CreatedBy, it0.UpdatedBy, "alice", "dave")
	if err := svc.ResetNodeItem(ctx, it0.ID, "erin"); err != nil {
		t.Fatal(err)
	}
	it0 = nodeItem(nf0, "authors.k")
	want("node 0 reset", it0.CreatedBy, it0.UpdatedBy, "alice", "erin")
	if err := svc.SetItemsEffective(ctx, []ids.ID{added.ID}, false, "frank"); err != nil {
		t.Fatal(err)
	}
	l, err := svc.Item(ctx, added.ID)
	if err != nil {
		t.Fatal(err)
	}
	want("layer switched off", l.CreatedBy, l.UpdatedBy, "alice", "frank")

	own, err := svc.AddNodeItem(ctx, []ids.ID{nf0.ID}, config.NewItem{Key: "authors.own", Value: "x", By: "gina"})
	if err != nil {
		t.Fatal(err)
	}
	o := nodeItem(nf0, own[0].Key)
	want("node 0's own key", o.CreatedBy, o.UpdatedBy, "gina", "gina")

	// Deleting the layer's key leaves node 1's override as its own key,
	// changed by whoever deleted it.
	if err := svc.DeleteItem(ctx, added.ID, "hank"); err != nil {
		t.Fatal(err)
	}
	it1 = nodeItem(nf1, "authors.k")
	want("node 1's key after the layer's delete", it1.CreatedBy, it1.UpdatedBy, "alice", "hank")
}

// TestRollbackAuthors: a rollback is the last change of the items it sets
// back, on the layer and on the nodes; the others keep theirs.
func TestRollbackAuthors(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	layers, _ := f.svc.Files(ctx, c.ID)
	zoo := layers[0]
	r1, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollout, By: "alice", All: true})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := f.svc.AllItems(ctx, zoo.ID)
	byKey := map[string]config.Item{}
	for _, it := range items {
		byKey[it.Key] = it
	}
	v := "4000"
	if _, err := f.svc.UpdateItem(ctx, byKey["tickTime"].ID, config.Change{Value: &v, By: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.NewRelease(ctx, config.NewRelease{FileID: zoo.ID, Kind: config.KindRollback, RollbackTo: r1.ID, By: "carol"}); err != nil {
		t.Fatal(err)
	}
	items, _ = f.svc.AllItems(ctx, zoo.ID)
	for _, it := range items {
		want := ""
		if it.Key == "tickTime" {
			want = "carol"
		}
		if it.UpdatedBy != want {
			t.Errorf("layer %s after the rollback: updated by %q, want %q", it.Key, it.UpdatedBy, want)
		}
	}
	nf, _ := f.zooCfgOf(t, nodes[0])
	nodeItems, _ := f.svc.AllNodeItems(ctx, nf.ID)
	for _, it := range nodeItems {
		want := ""
		if it.Key == "tickTime" {
			want = "carol"
		}
		if it.UpdatedBy != want {
			t.Errorf("node 1's %s after the rollback: updated by %q, want %q", it.Key, it.UpdatedBy, want)
		}
	}
}

// TestImportAuthors: keys imported from the package name the console user
// whose request imported them; nodes added later mirror the layer as it
// is, with its authors. Without a recorded author, Author answers
// ImportAuthor.
func TestImportAuthors(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes, err := f.clusters.Create(ctx, cluster.NewCluster{Name: "c1", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.1", "10.0.0.2"), By: "ivy"})
	if err != nil {
		t.Fatal(err)
	}
	more, err := f.clusters.AddNodes(ctx, c.ID, cluster.Coordinator, f.zk.ID, clustertest.Specs("10.0.0.3"), "judy")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := f.svc.Files(ctx, c.ID)
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers %+v %v", layers, err)
	}
	items, err := f.svc.AllItems(ctx, layers[0].ID)
	if err != nil || len(items) == 0 {
		t.Fatalf("items %+v %v", items, err)
	}
	for _, it := range items {
		if it.CreatedBy != "ivy" || it.UpdatedBy != "ivy" {
			t.Errorf("layer %s: created by %q, updated by %q; want ivy (who created the cluster)", it.Key, it.CreatedBy, it.UpdatedBy)
		}
	}
	for _, n := range append(nodes, more...) {
		nf, _ := f.zooCfgOf(t, n)
		nitems, err := f.svc.AllNodeItems(ctx, nf.ID)
		if err != nil || len(nitems) != len(items) {
			t.Fatalf("%s items %+v %v", n.NodeDir, nitems, err)
		}
		for _, it := range nitems {
			if it.CreatedBy != "ivy" || it.UpdatedBy != "ivy" {
				t.Errorf("%s %s: created by %q, updated by %q; want the layer's ivy", n.NodeDir, it.Key, it.CreatedBy, it.UpdatedBy)
			}
		}
	}

	// A cluster created with no user recorded (as older managers did).
	c2, _, err := f.clusters.Create(ctx, cluster.NewCluster{Name: "c2", PackageID: f.zk.ID, Coordinators: clustertest.Specs("10.0.0.4")})
	if err != nil {
		t.Fatal(err)
	}
	layers2, _ := f.svc.Files(ctx, c2.ID)
	items2, _ := f.svc.AllItems(ctx, layers2[0].ID)
	if len(items2) == 0 || items2[0].CreatedBy != "" || config.Author(items2[0].CreatedBy) != config.ImportAuthor || config.ImportAuthor != "admq-import" {
		t.Errorf("unrecorded author: %+v answers %q", items2, config.Author(""))
	}
	if config.Author("ivy") != "ivy" {
		t.Errorf("Author(ivy) = %q", config.Author("ivy"))
	}
}
