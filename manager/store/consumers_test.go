package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/paging"
)

func TestConsumersAndGrants(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	mk := func(id ids.ID, appID, hash string) consumer.Consumer {
		t.Helper()
		c := consumer.Consumer{ID: id, AppID: appID, Name: "n", OrgID: "o", OrgName: "O", OwnerName: "x",
			OwnerEmail: "x@example.com", TokenHash: []byte(hash), CreatedBy: "admin", CreatedAt: base}
		if err := db.CreateConsumer(ctx, &c); err != nil {
			t.Fatalf("CreateConsumer(%s): %v", appID, err)
		}
		return c
	}
	a := mk(1, "ci", "hash-a")
	if err := db.CreateConsumer(ctx, &consumer.Consumer{ID: 2, AppID: "ci", Name: "n", TokenHash: []byte("hash-b")}); !errors.Is(err, consumer.ErrAppIDExists) {
		t.Fatalf("second consumer ci: %v, want ErrAppIDExists", err)
	}
	got, err := db.ConsumerByTokenHash(ctx, []byte("hash-a"))
	if err != nil || got.ID != a.ID || got.OwnerEmail != "x@example.com" || !got.CreatedAt.Equal(base) {
		t.Fatalf("ConsumerByTokenHash = %+v, %v", got, err)
	}
	if _, err := db.ConsumerByTokenHash(ctx, []byte("nope")); !errors.Is(err, consumer.ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}

	// Revoked: the app id is free again, the revocation time sticks.
	if err := db.RevokeConsumer(ctx, a.ID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeConsumer(ctx, a.ID, base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Consumer(ctx, a.ID); !got.RevokedAt.Equal(base.Add(time.Hour)) {
		t.Fatalf("revoked at %v", got.RevokedAt)
	}
	if err := db.RevokeConsumer(ctx, 99, base); !errors.Is(err, consumer.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	b := mk(3, "ci", "hash-c")
	list, total, err := db.Consumers(ctx, paging.Page{Num: 1, Size: 10})
	if err != nil || total != 2 || len(list) != 2 || list[0].ID != b.ID {
		t.Fatalf("Consumers = %v %d %v", list, total, err)
	}

	g := consumer.Grant{ID: 10, ConsumerID: b.ID, AppID: "mq1", NamespaceName: "coordinator.zoo.cfg", Modify: true, CreatedBy: "admin", CreatedAt: base}
	if err := db.CreateGrant(ctx, &g); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateGrant(ctx, &consumer.Grant{ID: 11, ConsumerID: b.ID, AppID: "mq1", NamespaceName: "coordinator.zoo.cfg", Release: true}); !errors.Is(err, consumer.ErrGrantExists) {
		t.Fatalf("same scope twice: %v", err)
	}
	if err := db.CreateGrant(ctx, &consumer.Grant{ID: 12, ConsumerID: 404, AppID: "mq1"}); !errors.Is(err, consumer.ErrNotFound) {
		t.Fatalf("grant to unknown consumer: %v", err)
	}
	if err := db.CreateGrant(ctx, &consumer.Grant{ID: 13, ConsumerID: b.ID, AppID: "mq1", ClusterName: "default", Release: true}); err != nil {
		t.Fatal(err)
	}
	grants, err := db.Grants(ctx, b.ID)
	if err != nil || len(grants) != 2 || grants[0] != g || !grants[1].Release || grants[1].Modify || grants[1].ClusterName != "default" {
		t.Fatalf("Grants = %+v, %v", grants, err)
	}
	if err := db.DeleteGrant(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteGrant(ctx, 10); !errors.Is(err, consumer.ErrGrantNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if grants, _ := db.Grants(ctx, b.ID); len(grants) != 1 || grants[0].ID != 13 {
		t.Fatalf("after delete: %+v", grants)
	}
}
