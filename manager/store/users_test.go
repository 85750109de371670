package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
)

func mustUser(tb testing.TB, db *store.DB, name string, role auth.Role) auth.User {
	tb.Helper()
	u := auth.User{ID: nextID(), Username: name, PasswordHash: []byte("hash-" + name), Role: role, CreatedAt: base, UpdatedAt: base}
	if err := db.CreateUser(context.Background(), &u); err != nil {
		tb.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	if n, err := db.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on empty store = %d, %v", n, err)
	}
	root := mustUser(t, db, "root", auth.RoleAdmin)
	op := mustUser(t, db, "op", auth.RoleOperator)
	viewer := mustUser(t, db, "viewer", auth.RoleViewer)

	t.Run("get by id and name", func(t *testing.T) {
		byID, err := db.User(ctx, op.ID)
		if err != nil {
			t.Fatal(err)
		}
		byName, err := db.UserByName(ctx, "op")
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range []auth.User{byID, byName} {
			if got.ID != op.ID || got.Username != "op" || string(got.PasswordHash) != "hash-op" ||
				got.Role != auth.RoleOperator || !got.CreatedAt.Equal(base) || !got.UpdatedAt.Equal(base) {
				t.Errorf("User = %+v, want %+v", got, op)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		list, total, err := db.Users(ctx, paging.Page{Num: 1, Size: 2})
		if err != nil {
			t.Fatal(err)
		}
		var got []ids.ID
		for _, u := range list {
			got = append(got, u.ID)
		}
		if total != 3 || fmt.Sprint(got) != fmt.Sprint([]ids.ID{root.ID, op.ID}) {
			t.Errorf("Users = %v (total %d), want [%d %d] (total 3)", got, total, root.ID, op.ID)
		}
	})

	t.Run("set password", func(t *testing.T) {
		later := base.Add(time.Hour)
		if err := db.SetPassword(ctx, viewer.ID, []byte("new"), later); err != nil {
			t.Fatal(err)
		}
		got, err := db.User(ctx, viewer.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.PasswordHash) != "new" || !got.UpdatedAt.Equal(later) {
			t.Errorf("after SetPassword: hash %q updated %v", got.PasswordHash, got.UpdatedAt)
		}
	})

	errCases := []struct {
		name string
		run  func() error
		want error
	}{
		{"duplicate username", func() error {
			return db.CreateUser(ctx, &auth.User{ID: nextID(), Username: "op", PasswordHash: []byte{1}, Role: auth.RoleViewer})
		}, auth.ErrUserExists},
		{"get missing", func() error { _, err := db.User(ctx, nextID()); return err }, auth.ErrUserNotFound},
		{"get missing name", func() error { _, err := db.UserByName(ctx, "nobody"); return err }, auth.ErrUserNotFound},
		{"delete missing", func() error { return db.DeleteUser(ctx, nextID()) }, auth.ErrUserNotFound},
		{"set password missing", func() error { return db.SetPassword(ctx, nextID(), []byte{1}, base) }, auth.ErrUserNotFound},
		{"delete last admin", func() error { return db.DeleteUser(ctx, root.ID) }, auth.ErrLastAdmin},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("bad role rejected", func(t *testing.T) {
		err := db.CreateUser(ctx, &auth.User{ID: nextID(), Username: "x", PasswordHash: []byte{1}, Role: "root"})
		if err == nil {
			t.Error("CreateUser with role root succeeded")
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := db.DeleteUser(ctx, op.ID); err != nil {
			t.Fatal(err)
		}
		second := mustUser(t, db, "root2", auth.RoleAdmin)
		if err := db.DeleteUser(ctx, root.ID); err != nil {
			t.Fatalf("delete one of two admins: %v", err)
		}
		if err := db.DeleteUser(ctx, second.ID); !errors.Is(err, auth.ErrLastAdmin) {
			t.Errorf("delete the remaining admin: %v, want ErrLastAdmin", err)
		}
		if n, err := db.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers = %d, %v; want 2", n, err)
		}
	})
}
