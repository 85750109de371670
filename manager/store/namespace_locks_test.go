package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/admq/admq-manager/manager/cluster"
)

func TestNamespaceLocks(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	c := cluster.Cluster{ID: 7, Name: "mq1", CreatedAt: base, UpdatedAt: base}
	if err := db.CreateCluster(ctx, &c, nil, nextID); err != nil {
		t.Fatal(err)
	}
	if owner, held, err := db.NamespaceLock(ctx, c.ID, "default", "coordinator.zoo.cfg"); err != nil || held || owner != "" {
		t.Fatalf("unlocked namespace: %q %t %v", owner, held, err)
	}
	// Racing editors: exactly one owner, and everyone is told who.
	var wg sync.WaitGroup
	owners := make([]string, 8)
	for i := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if owners[i], err = db.LockNamespace(ctx, c.ID, "default", "coordinator.zoo.cfg", []string{"alice", "bob"}[i%2], base); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, o := range owners {
		if o != owners[0] || (o != "alice" && o != "bob") {
			t.Fatalf("owners %v: want one", owners)
		}
	}
	// Another cluster of the same app is another namespace.
	if owner, _ := db.LockNamespace(ctx, c.ID, "coordinator-1", "coordinator.zoo.cfg", "carol", base); owner != "carol" {
		t.Fatalf("node namespace owner %q", owner)
	}
	if err := db.UnlockNamespace(ctx, c.ID, "default", "coordinator.zoo.cfg"); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := db.NamespaceLock(ctx, c.ID, "default", "coordinator.zoo.cfg"); held {
		t.Fatal("still locked after unlock")
	}
	// Locks go with their cluster.
	if err := db.DeleteCluster(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := db.NamespaceLock(ctx, c.ID, "coordinator-1", "coordinator.zoo.cfg"); held {
		t.Fatal("lock outlived its cluster")
	}
}
