package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
)

// mustToken creates t, filling a hash, creator and creation time if unset.
func mustToken(tb testing.TB, db *store.DB, t enroll.JoinToken) enroll.JoinToken {
	tb.Helper()
	if t.SecretHash == nil {
		t.SecretHash = []byte("0123456789abcdef0123456789abcdef")
	}
	if t.CreatedBy == "" {
		t.CreatedBy = "admin"
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = base
	}
	if err := db.CreateJoinToken(context.Background(), &t); err != nil {
		tb.Fatalf("CreateJoinToken(%s): %v", t.ID, err)
	}
	return t
}

func tokenUses(tb testing.TB, db *store.DB, id string) int {
	tb.Helper()
	t, err := db.JoinToken(context.Background(), id)
	if err != nil {
		tb.Fatalf("JoinToken(%s): %v", id, err)
	}
	return t.Uses
}

func TestJoinTokens(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	srv := mustServer(t, db, area.ID, "10.0.0.1", "")

	full := mustToken(t, db, enroll.JoinToken{
		ID: "tok001", SecretHash: []byte{1, 2, 3}, Description: "rack 4", AreaID: area.ID, ServerID: srv.ID,
		MaxUses: 3, Uses: 1, ExpiresAt: base.Add(time.Hour), CreatedBy: "alice", CreatedAt: base,
	})
	second := mustToken(t, db, enroll.JoinToken{ID: "abc002", CreatedAt: base.Add(time.Second)})
	third := mustToken(t, db, enroll.JoinToken{ID: "zzz003", CreatedAt: base.Add(time.Second)})

	t.Run("round trip", func(t *testing.T) {
		got, err := db.JoinToken(ctx, full.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.ExpiresAt.Equal(full.ExpiresAt) || !got.CreatedAt.Equal(full.CreatedAt) || !got.RevokedAt.IsZero() {
			t.Errorf("times = %v %v %v", got.ExpiresAt, got.CreatedAt, got.RevokedAt)
		}
		if got.ID != full.ID || string(got.SecretHash) != string(full.SecretHash) || got.Description != full.Description ||
			got.AreaID != full.AreaID || got.ServerID != full.ServerID || got.MaxUses != 3 || got.Uses != 1 ||
			got.CreatedBy != "alice" {
			t.Errorf("JoinToken = %+v, want %+v", got, full)
		}
	})

	t.Run("list newest first", func(t *testing.T) {
		list, total, err := db.JoinTokens(ctx, paging.Page{Num: 1, Size: 2})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tk := range list {
			got = append(got, tk.ID)
		}
		if total != 3 || fmt.Sprint(got) != fmt.Sprint([]string{third.ID, second.ID}) {
			t.Errorf("JoinTokens = %v (total %d), want [%s %s] (total 3)", got, total, third.ID, second.ID)
		}
		list, _, err = db.JoinTokens(ctx, paging.Page{Num: 2, Size: 2})
		if err != nil || len(list) != 1 || list[0].ID != full.ID {
			t.Errorf("page 2 = %+v, %v; want [%s]", list, err, full.ID)
		}
	})

	t.Run("revoke keeps first time", func(t *testing.T) {
		for i, at := range []time.Time{base.Add(time.Minute), base.Add(time.Hour)} {
			if err := db.RevokeJoinToken(ctx, second.ID, at); err != nil {
				t.Fatalf("revoke %d: %v", i, err)
			}
		}
		got, err := db.JoinToken(ctx, second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.RevokedAt.Equal(base.Add(time.Minute)) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, base.Add(time.Minute))
		}
	})

	errCases := []struct {
		name string
		run  func() error
		want error
	}{
		{"get missing", func() error { _, err := db.JoinToken(ctx, "nope00"); return err }, enroll.ErrTokenNotFound},
		{"revoke missing", func() error { return db.RevokeJoinToken(ctx, "nope00", base) }, enroll.ErrTokenNotFound},
		{"unknown area", func() error {
			return db.CreateJoinToken(ctx, &enroll.JoinToken{ID: "bad001", SecretHash: []byte{1}, AreaID: nextID()})
		}, fleet.ErrAreaNotFound},
		{"unknown server", func() error {
			return db.CreateJoinToken(ctx, &enroll.JoinToken{ID: "bad002", SecretHash: []byte{1}, AreaID: area.ID, ServerID: nextID()})
		}, fleet.ErrServerNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestPendingServerByIP(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	pending := mustServer(t, db, area.ID, "10.0.0.1", "")
	mustServer(t, db, area.ID, "10.0.0.2", "beef")

	cases := []struct {
		ip   string
		want ids.ID
	}{
		{"10.0.0.1", pending.ID},
		{"10.0.0.2", 0}, // enrolled
		{"10.0.0.3", 0}, // unknown
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			got, err := db.PendingServerByIP(ctx, tc.ip)
			if err != nil || got != tc.want {
				t.Errorf("PendingServerByIP = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestCompleteEnrollment(t *testing.T) {
	ctx := context.Background()
	now := base.Add(time.Hour)

	type fixture struct {
		db      *store.DB
		area    fleet.Area
		pending fleet.Server // manager_ip 10.0.0.1, not enrolled
		done    fleet.Server // manager_ip 10.0.0.2, enrolled with serial "old"
	}
	setup := func(t *testing.T) fixture {
		db := MustOpen(t)
		f := fixture{db: db, area: mustArea(t, db, "default")}
		f.pending = mustServer(t, db, f.area.ID, "10.0.0.1", "")
		f.done = mustServer(t, db, f.area.ID, "10.0.0.2", "old")
		mustToken(t, db, enroll.JoinToken{ID: "multi1", AreaID: f.area.ID})
		mustToken(t, db, enroll.JoinToken{ID: "single", AreaID: f.area.ID, MaxUses: 1})
		mustToken(t, db, enroll.JoinToken{ID: "usedup", AreaID: f.area.ID, MaxUses: 2, Uses: 2})
		mustToken(t, db, enroll.JoinToken{ID: "revokd", AreaID: f.area.ID, RevokedAt: base})
		mustToken(t, db, enroll.JoinToken{ID: "expird", AreaID: f.area.ID, ExpiresAt: now})
		mustToken(t, db, enroll.JoinToken{ID: "future", AreaID: f.area.ID, ExpiresAt: now.Add(time.Millisecond)})
		mustToken(t, db, enroll.JoinToken{ID: "bound1", ServerID: f.done.ID})
		return f
	}
	newServer := func(token, ip string) func(f fixture) enroll.Enrollment {
		return func(f fixture) enroll.Enrollment {
			return enroll.Enrollment{
				TokenID: token, Now: now, ServerID: nextID(), Create: true, AreaID: f.area.ID,
				ManagerIP: ip, Hostname: "new-host", CertSerial: "new",
			}
		}
	}
	bind := func(token string, server func(f fixture) ids.ID) func(f fixture) enroll.Enrollment {
		return func(f fixture) enroll.Enrollment {
			return enroll.Enrollment{
				TokenID: token, Now: now, ServerID: server(f), Hostname: "new-host", CertSerial: "new",
			}
		}
	}
	pendingID := func(f fixture) ids.ID { return f.pending.ID }
	doneID := func(f fixture) ids.ID { return f.done.ID }

	cases := []struct {
		name        string
		token       string
		enrollment  func(f fixture) enroll.Enrollment
		wantErr     error
		wantRevoked bool // "old" ends up revoked
	}{
		{"create", "multi1", newServer("multi1", "10.0.0.9"), nil, false},
		{"create single use", "single", newServer("single", "10.0.0.9"), nil, false},
		{"create before expiry", "future", newServer("future", "10.0.0.9"), nil, false},
		{"create without area", "multi1", func(f fixture) enroll.Enrollment {
			e := newServer("multi1", "10.0.0.9")(f)
			e.AreaID = 0
			return e
		}, nil, false},
		{"bind pending", "multi1", bind("multi1", pendingID), nil, false},
		{"rebind with bound token", "bound1", bind("bound1", doneID), nil, true},
		{"revoked", "revokd", newServer("revokd", "10.0.0.9"), enroll.ErrTokenRefused, false},
		{"expired", "expird", newServer("expird", "10.0.0.9"), enroll.ErrTokenRefused, false},
		{"used up", "usedup", newServer("usedup", "10.0.0.9"), enroll.ErrTokenRefused, false},
		{"unknown token", "", newServer("nope00", "10.0.0.9"), enroll.ErrTokenRefused, false},
		{"revoked bind", "revokd", bind("revokd", pendingID), enroll.ErrTokenRefused, false},
		{"duplicate ip", "multi1", newServer("multi1", "10.0.0.1"), enroll.ErrAlreadyEnrolled, false},
		{"bind enrolled", "multi1", bind("multi1", doneID), enroll.ErrAlreadyEnrolled, false},
		{"bind missing server", "multi1", bind("multi1", func(fixture) ids.ID { return nextID() }), enroll.ErrAlreadyEnrolled, false},
		{"unknown area", "multi1", func(f fixture) enroll.Enrollment {
			e := newServer("multi1", "10.0.0.9")(f)
			e.AreaID = nextID()
			return e
		}, fleet.ErrAreaNotFound, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			e := tc.enrollment(f)
			usesBefore := 0
			if tc.token != "" {
				usesBefore = tokenUses(t, f.db, tc.token)
			}
			serversBefore := countServers(t, f.db)

			err := f.db.CompleteEnrollment(ctx, e)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("CompleteEnrollment = %v, want %v", err, tc.wantErr)
			}

			wantUses, wantServers := usesBefore, serversBefore
			if err == nil {
				wantUses++
				if e.Create {
					wantServers++
				}
			}
			if tc.token != "" {
				if got := tokenUses(t, f.db, tc.token); got != wantUses {
					t.Errorf("uses = %d, want %d", got, wantUses)
				}
			}
			if got := countServers(t, f.db); got != wantServers {
				t.Errorf("servers = %d, want %d", got, wantServers)
			}
			if revoked, _ := f.db.CertRevoked(ctx, "old"); revoked != tc.wantRevoked {
				t.Errorf("old serial revoked = %v, want %v", revoked, tc.wantRevoked)
			}

			srv, getErr := f.db.Server(ctx, e.ServerID)
			if err != nil {
				// Nothing written: a bound server keeps its state.
				if getErr == nil && (srv.CertSerial == "new" || srv.UpdatedAt.Equal(now)) {
					t.Errorf("server %d changed by a failed enrollment: %+v", e.ServerID, srv)
				}
				return
			}
			if getErr != nil {
				t.Fatalf("Server after enrollment: %v", getErr)
			}
			if srv.CertSerial != "new" || srv.AgentStatus != fleet.StatusOffline ||
				srv.Facts.Hostname != "new-host" || !srv.UpdatedAt.Equal(now) {
				t.Errorf("server = %+v, want serial new, offline, hostname new-host, updated now", srv)
			}
			if e.Create {
				if srv.ManagerIP != e.ManagerIP || srv.AreaID != e.AreaID || !srv.CreatedAt.Equal(now) {
					t.Errorf("created server = %+v, want ip %s area %d created now", srv, e.ManagerIP, e.AreaID)
				}
				if pid, _ := f.db.PendingServerByIP(ctx, e.ManagerIP); pid != 0 {
					t.Errorf("enrolled server still pending")
				}
			}
		})
	}
}

func TestCompleteEnrollmentConcurrent(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	mustToken(t, db, enroll.JoinToken{ID: "once01", AreaID: area.ID, MaxUses: 1})

	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = db.CompleteEnrollment(ctx, enroll.Enrollment{
				TokenID: "once01", Now: base, ServerID: nextID(), Create: true, AreaID: area.ID,
				ManagerIP: fmt.Sprintf("10.0.1.%d", i), Hostname: "h", CertSerial: fmt.Sprintf("s%d", i),
			})
		})
	}
	wg.Wait()

	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, enroll.ErrTokenRefused):
			t.Errorf("goroutine %d: %v, want nil or ErrTokenRefused", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d enrollments succeeded, want exactly 1", ok)
	}
	if got := tokenUses(t, db, "once01"); got != 1 {
		t.Errorf("uses = %d, want 1", got)
	}
	if got := countServers(t, db); got != 1 {
		t.Errorf("servers = %d, want 1", got)
	}
}
