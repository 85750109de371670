package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

func newCleanup(server ids.ID, node string) deploy.Cleanup {
	return deploy.Cleanup{
		ID: nextID(), ServerID: server, Node: node, ClusterName: "c1", OperationID: "teardown:1:" + node,
		ProgramDir: "/opt/admq/c1/broker-1", DataDir: "/data/admq/c1/broker-1",
		AllowedRoots: []string{"/opt/admq/c1", "/data/admq/c1"}, Reason: deploy.ReasonQueuedOffline, CreatedAt: base,
	}
}

func TestCleanups(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "a1")
	s1 := mustServer(t, db, area.ID, "10.6.0.1", "")
	s2 := mustServer(t, db, area.ID, "10.6.0.2", "")

	c1, c2, c3 := newCleanup(s1.ID, "101"), newCleanup(s1.ID, "102"), newCleanup(s2.ID, "201")
	for _, c := range []deploy.Cleanup{c1, c2, c3} {
		if err := db.QueueCleanup(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("read back", func(t *testing.T) {
		got, err := db.ServerCleanups(ctx, s1.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := c1
		want.ManagerIP = "10.6.0.1"
		if len(got) != 2 || got[1].Node != "102" {
			t.Fatalf("server cleanups %+v", got)
		}
		g := got[0]
		if g.ID != want.ID || g.ServerID != want.ServerID || g.ManagerIP != want.ManagerIP || g.Node != want.Node ||
			g.ClusterName != want.ClusterName || g.OperationID != want.OperationID || g.ProgramDir != want.ProgramDir ||
			g.DataDir != want.DataDir || !slices.Equal(g.AllowedRoots, want.AllowedRoots) || g.Reason != want.Reason ||
			!g.CreatedAt.Equal(base) || g.Attempts != 0 || g.LastError != "" || !g.LastAttemptAt.IsZero() {
			t.Fatalf("cleanup\n got %+v\nwant %+v", g, want)
		}
		if r := g.Request(); r.Name != "101" || r.OperationID != want.OperationID || !r.RemoveDirs || !slices.Equal(r.AllowedRoots, want.AllowedRoots) {
			t.Fatalf("request %+v", g.Request())
		}
	})

	t.Run("servers and pages", func(t *testing.T) {
		servers, err := db.CleanupServers(ctx)
		if err != nil || !slices.Equal(servers, []ids.ID{s1.ID, s2.ID}) {
			t.Fatalf("cleanup servers %v %v", servers, err)
		}
		list, total, err := db.Cleanups(ctx, 0, paging.Page{Num: 2, Size: 2})
		if err != nil || total != 3 || len(list) != 1 || list[0].ID != c3.ID || list[0].ManagerIP != "10.6.0.2" {
			t.Fatalf("page 2 of all: %d %+v %v", total, list, err)
		}
		list, total, err = db.Cleanups(ctx, s1.ID, all())
		if err != nil || total != 2 || len(list) != 2 || list[0].ID != c1.ID {
			t.Fatalf("server 1: %d %+v %v", total, list, err)
		}
		list, total, err = db.Cleanups(ctx, nextID(), all())
		if err != nil || total != 0 || len(list) != 0 {
			t.Fatalf("unknown server: %d %+v %v", total, list, err)
		}
	})

	t.Run("failed attempts", func(t *testing.T) {
		at := base.Add(time.Minute)
		for range 2 {
			if err := db.CleanupFailed(ctx, c2.ID, "agent busy", at); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := db.ServerCleanups(ctx, s1.ID)
		if got[1].Attempts != 2 || got[1].LastError != "agent busy" || !got[1].LastAttemptAt.Equal(at) {
			t.Fatalf("after two failures %+v", got[1])
		}
		if err := db.CleanupFailed(ctx, nextID(), "gone", at); err != nil {
			t.Fatalf("failure of a missing cleanup: %v", err)
		}
	})

	t.Run("queued again replaces", func(t *testing.T) {
		again := newCleanup(s1.ID, "102")
		again.ClusterName, again.Reason, again.CreatedAt = "c1-again", "later", base.Add(time.Hour)
		if err := db.QueueCleanup(ctx, again); err != nil {
			t.Fatal(err)
		}
		got, _ := db.ServerCleanups(ctx, s1.ID)
		if len(got) != 2 || got[1].ID != c2.ID || got[1].ClusterName != "c1-again" || got[1].Attempts != 0 || got[1].LastError != "" ||
			!got[1].LastAttemptAt.IsZero() || !got[1].CreatedAt.Equal(again.CreatedAt) {
			t.Fatalf("queued again %+v", got)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := db.DeleteCleanup(ctx, c1.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteCleanup(ctx, c1.ID); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		got, _ := db.ServerCleanups(ctx, s1.ID)
		if len(got) != 1 || got[0].ID != c2.ID {
			t.Fatalf("after delete %+v", got)
		}
	})

	t.Run("unknown server", func(t *testing.T) {
		if err := db.QueueCleanup(ctx, newCleanup(nextID(), "9")); err == nil {
			t.Fatal("cleanup of an unknown server stored")
		}
	})

	t.Run("deleted with its server", func(t *testing.T) {
		if err := db.DeleteServer(ctx, s1.ID, base); err != nil {
			t.Fatalf("delete a server with queued cleanups: %v", err)
		}
		if got, err := db.ServerCleanups(ctx, s1.ID); err != nil || len(got) != 0 {
			t.Fatalf("cleanups of the deleted server %+v %v", got, err)
		}
		if servers, _ := db.CleanupServers(ctx); !slices.Equal(servers, []ids.ID{s2.ID}) {
			t.Fatalf("cleanup servers %v", servers)
		}
		if _, err := db.Server(ctx, s1.ID); !errors.Is(err, fleet.ErrServerNotFound) {
			t.Fatalf("server: %v", err)
		}
	})
}
