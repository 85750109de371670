package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

func TestAreas(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	def := mustArea(t, db, "default")
	second := mustArea(t, db, "b")
	third := mustArea(t, db, "c")

	t.Run("get", func(t *testing.T) {
		got, err := db.Area(ctx, second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != second.ID || got.Code != "b" || got.Name != second.Name ||
			!got.CreatedAt.Equal(base) || !got.UpdatedAt.Equal(base) {
			t.Errorf("Area = %+v, want %+v", got, second)
		}
	})

	t.Run("by code and name", func(t *testing.T) {
		same := fleet.Area{ID: nextID(), Code: "b2", Name: second.Name}
		if err := db.CreateArea(ctx, &same); err != nil {
			t.Fatal(err)
		}
		defer db.DeleteArea(ctx, same.ID)
		for name, get := range map[string]func() (fleet.Area, error){
			"code": func() (fleet.Area, error) { return db.AreaByCode(ctx, "b") },
			"name": func() (fleet.Area, error) { return db.AreaByName(ctx, second.Name) }, // oldest of two
		} {
			got, err := get()
			if err != nil || got.ID != second.ID {
				t.Errorf("by %s = %+v, %v; want area %d", name, got, err, second.ID)
			}
		}
	})

	errCases := []struct {
		name string
		run  func() error
		want error
	}{
		{"by code missing", func() error { _, err := db.AreaByCode(ctx, "nope"); return err }, fleet.ErrAreaNotFound},
		{"by name missing", func() error { _, err := db.AreaByName(ctx, "nope"); return err }, fleet.ErrAreaNotFound},
		{"duplicate code", func() error {
			return db.CreateArea(ctx, &fleet.Area{ID: nextID(), Code: "b", Name: "other"})
		}, fleet.ErrAreaExists},
		{"get missing", func() error { _, err := db.Area(ctx, nextID()); return err }, fleet.ErrAreaNotFound},
		{"serial of missing", func() error { _, err := db.CertSerial(ctx, nextID()); return err }, fleet.ErrServerNotFound},
		{"delete missing", func() error { return db.DeleteArea(ctx, nextID()) }, fleet.ErrAreaNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("list oldest first", func(t *testing.T) {
		pages := []struct {
			page paging.Page
			want []ids.ID
		}{
			{paging.Page{Num: 1, Size: 2}, []ids.ID{def.ID, second.ID}},
			{paging.Page{Num: 2, Size: 2}, []ids.ID{third.ID}},
			{paging.Page{Num: 3, Size: 2}, nil},
		}
		for _, p := range pages {
			list, total, err := db.Areas(ctx, p.page)
			if err != nil {
				t.Fatal(err)
			}
			if total != 3 {
				t.Errorf("page %d: total = %d, want 3", p.page.Num, total)
			}
			if got := areaIDs(list); fmt.Sprint(got) != fmt.Sprint(p.want) {
				t.Errorf("page %d: ids = %v, want %v", p.page.Num, got, p.want)
			}
		}
	})

	t.Run("delete in use", func(t *testing.T) {
		byServer := mustArea(t, db, "used-by-server")
		s := mustServer(t, db, byServer.ID, "10.9.0.1", "")
		byToken := mustArea(t, db, "used-by-token")
		mustToken(t, db, enroll.JoinToken{ID: "inuse1", AreaID: byToken.ID})

		for _, a := range []fleet.Area{byServer, byToken} {
			if err := db.DeleteArea(ctx, a.ID); !errors.Is(err, fleet.ErrAreaInUse) {
				t.Errorf("DeleteArea(%s) = %v, want ErrAreaInUse", a.Code, err)
			}
			if _, err := db.Area(ctx, a.ID); err != nil {
				t.Errorf("area %s gone after refused delete: %v", a.Code, err)
			}
		}
		if err := db.DeleteServer(ctx, s.ID, base); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteArea(ctx, byServer.ID); err != nil {
			t.Errorf("DeleteArea after its server is gone: %v", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if err := db.DeleteArea(ctx, third.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Area(ctx, third.ID); !errors.Is(err, fleet.ErrAreaNotFound) {
			t.Errorf("Area after delete: %v, want ErrAreaNotFound", err)
		}
	})
}

func areaIDs(list []fleet.Area) []ids.ID {
	var out []ids.ID
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

func serverIDs(list []fleet.Server) []ids.ID {
	var out []ids.ID
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

func TestCreateServer(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")

	full := fleet.Server{
		ID: nextID(), AreaID: area.ID, ManagerIP: "10.0.0.1", DataIP: "192.168.0.1", SSHPort: 2222,
		Account: "admq", ProgramDir: "/opt/admq", DataDir: "/data/admq", CPUInfo: "8 x Xeon", CPUType: 2,
		AgentStatus: fleet.StatusOnline, AgentVersion: "1.2.3", LastSeen: base.Add(time.Minute),
		Facts:      fleet.Facts{Hostname: "db1", OS: "linux", CPUs: 8, MemoryTotal: 1 << 34, AgentVersion: "1.2.3", BootTime: 42},
		CertSerial: "0a1b", CreatedAt: base, UpdatedAt: base.Add(time.Second),
	}
	if err := db.CreateServer(ctx, &full); err != nil {
		t.Fatalf("CreateServer: %v", err)
	}

	t.Run("round trip", func(t *testing.T) {
		got, err := db.Server(ctx, full.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := full
		want.AreaName, want.Version = area.Name, 1 // a new record's version
		if !got.LastSeen.Equal(want.LastSeen) || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Errorf("times = %v %v %v, want %v %v %v", got.LastSeen, got.CreatedAt, got.UpdatedAt,
				want.LastSeen, want.CreatedAt, want.UpdatedAt)
		}
		got.LastSeen, got.CreatedAt, got.UpdatedAt = want.LastSeen, want.CreatedAt, want.UpdatedAt
		if got != want {
			t.Errorf("Server =\n%+v\nwant\n%+v", got, want)
		}
	})

	t.Run("certificate serial", func(t *testing.T) {
		got, err := db.CertSerial(ctx, full.ID)
		if err != nil || got != full.CertSerial {
			t.Errorf("CertSerial = %q, %v; want %q", got, err, full.CertSerial)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		s := fleet.Server{ID: nextID(), ManagerIP: "10.0.0.2"}
		if err := db.CreateServer(ctx, &s); err != nil {
			t.Fatal(err)
		}
		got, err := db.Server(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentStatus != fleet.StatusPending || got.AreaID != 0 || got.AreaName != "" ||
			!got.LastSeen.IsZero() || !got.CreatedAt.IsZero() || got.Facts != (fleet.Facts{}) {
			t.Errorf("Server = %+v, want pending, no area, zero times and facts", got)
		}
		if serial, err := db.CertSerial(ctx, s.ID); err != nil || serial != "" {
			t.Errorf("CertSerial before enrollment = %q, %v; want none", serial, err)
		}
	})

	errCases := []struct {
		name string
		run  func() error
		want error
	}{
		{"duplicate manager ip", func() error {
			return db.CreateServer(ctx, &fleet.Server{ID: nextID(), AreaID: area.ID, ManagerIP: "10.0.0.1"})
		}, fleet.ErrServerExists},
		{"unknown area", func() error {
			return db.CreateServer(ctx, &fleet.Server{ID: nextID(), AreaID: nextID(), ManagerIP: "10.0.0.3"})
		}, fleet.ErrAreaNotFound},
		{"get missing", func() error { _, err := db.Server(ctx, nextID()); return err }, fleet.ErrServerNotFound},
		{"serial of missing", func() error { _, err := db.CertSerial(ctx, nextID()); return err }, fleet.ErrServerNotFound},
		{"delete missing", func() error { return db.DeleteServer(ctx, nextID(), base) }, fleet.ErrServerNotFound},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("duplicate id is an error", func(t *testing.T) {
		err := db.CreateServer(ctx, &fleet.Server{ID: full.ID, ManagerIP: "10.0.0.4"})
		if err == nil || errors.Is(err, fleet.ErrServerExists) {
			t.Errorf("err = %v, want a wrapped constraint error", err)
		}
	})
}

func TestServersList(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	a := mustArea(t, db, "a")
	b := mustArea(t, db, "b")

	// 5 servers in a (ids increasing), 3 in b, 1 without an area.
	var inA, inB []ids.ID
	for i := range 5 {
		inA = append(inA, mustServer(t, db, a.ID, fmt.Sprintf("10.1.0.%d", i), fmt.Sprintf("serial%d", i)).ID)
	}
	for i := range 3 {
		inB = append(inB, mustServer(t, db, b.ID, fmt.Sprintf("10.2.0.%d", i), "").ID)
	}
	none := mustServer(t, db, 0, "10.3.0.1", "").ID
	// Two servers of a have live sessions; the stored column says otherwise
	// (it lags), and the filter must follow the live set.
	live := []ids.ID{inA[1], inA[3]}
	err := db.SavePresence(ctx, []fleet.Presence{
		{ServerID: inA[0], Status: fleet.StatusOnline, LastSeen: base},
		{ServerID: inA[3], Status: fleet.StatusOffline, LastSeen: base},
		{ServerID: inA[2], Status: fleet.StatusOffline, LastSeen: base, Facts: &fleet.Facts{Hostname: "web-02"}},
		{ServerID: inA[4], Status: fleet.StatusOffline, LastSeen: base, Facts: &fleet.Facts{Hostname: "web-04"}},
		{ServerID: inB[0], Status: fleet.StatusOffline, LastSeen: base, Facts: &fleet.Facts{Hostname: "db-01"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name      string
		filter    fleet.ServerFilter
		page      paging.Page
		wantTotal int
		wantIDs   []ids.ID
	}{
		{"all first page", fleet.ServerFilter{}, paging.Page{Num: 1, Size: 4}, 9, []ids.ID{none, inB[2], inB[1], inB[0]}},
		{"all last page", fleet.ServerFilter{}, paging.Page{Num: 3, Size: 4}, 9, []ids.ID{inA[0]}},
		{"past the end", fleet.ServerFilter{}, paging.Page{Num: 4, Size: 4}, 9, nil},
		{"area a", fleet.ServerFilter{AreaID: a.ID}, paging.Page{Num: 1, Size: 3}, 5, []ids.ID{inA[4], inA[3], inA[2]}},
		{"area a page 2", fleet.ServerFilter{AreaID: a.ID}, paging.Page{Num: 2, Size: 3}, 5, []ids.ID{inA[1], inA[0]}},
		{"online", fleet.ServerFilter{Status: fleet.StatusOnline, Live: live}, paging.Page{Num: 1, Size: 10}, 2, []ids.ID{inA[3], inA[1]}},
		{"offline", fleet.ServerFilter{Status: fleet.StatusOffline, Live: live}, paging.Page{Num: 1, Size: 10}, 3, []ids.ID{inA[4], inA[2], inA[0]}},
		{"online, none live", fleet.ServerFilter{Status: fleet.StatusOnline}, paging.Page{Num: 1, Size: 10}, 0, nil},
		{"area b online", fleet.ServerFilter{AreaID: b.ID, Status: fleet.StatusOnline, Live: live}, paging.Page{Num: 1, Size: 10}, 0, nil},
		{"area b pending", fleet.ServerFilter{AreaID: b.ID, Status: fleet.StatusPending}, paging.Page{Num: 1, Size: 10}, 3, []ids.ID{inB[2], inB[1], inB[0]}},
		{"unknown area", fleet.ServerFilter{AreaID: nextID()}, paging.Page{Num: 1, Size: 10}, 0, nil},
		{"hostname prefix", fleet.ServerFilter{HostnamePrefix: "web-"}, paging.Page{Num: 1, Size: 10}, 2, []ids.ID{inA[4], inA[2]}},
		{"hostname whole", fleet.ServerFilter{HostnamePrefix: "db-01"}, paging.Page{Num: 1, Size: 10}, 1, []ids.ID{inB[0]}},
		{"hostname is case-sensitive", fleet.ServerFilter{HostnamePrefix: "WEB"}, paging.Page{Num: 1, Size: 10}, 0, nil},
		{"hostname and area", fleet.ServerFilter{HostnamePrefix: "web", AreaID: b.ID}, paging.Page{Num: 1, Size: 10}, 0, nil},
		{"hostname and status", fleet.ServerFilter{HostnamePrefix: "web", Status: fleet.StatusOffline, Live: live}, paging.Page{Num: 1, Size: 10}, 2, []ids.ID{inA[4], inA[2]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, total, err := db.Servers(ctx, tc.filter, tc.page)
			if err != nil {
				t.Fatal(err)
			}
			if total != tc.wantTotal {
				t.Errorf("total = %d, want %d", total, tc.wantTotal)
			}
			if got := serverIDs(list); fmt.Sprint(got) != fmt.Sprint(tc.wantIDs) {
				t.Errorf("ids = %v, want %v", got, tc.wantIDs)
			}
			for _, s := range list {
				want := map[ids.ID]string{a.ID: a.Name, b.ID: b.Name, 0: ""}[s.AreaID]
				if s.AreaName != want {
					t.Errorf("server %d: AreaName = %q, want %q", s.ID, s.AreaName, want)
				}
			}
		})
	}
}

func TestDeleteServer(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	enrolled := mustServer(t, db, area.ID, "10.0.0.1", "beef01")
	pending := mustServer(t, db, area.ID, "10.0.0.2", "")
	other := mustServer(t, db, area.ID, "10.0.0.3", "beef03")
	mustToken(t, db, enroll.JoinToken{ID: "bound1", ServerID: enrolled.ID})
	mustToken(t, db, enroll.JoinToken{ID: "bound2", ServerID: other.ID})
	mustToken(t, db, enroll.JoinToken{ID: "free01", AreaID: area.ID})

	if err := db.DeleteServer(ctx, enrolled.ID, base); err != nil {
		t.Fatalf("DeleteServer: %v", err)
	}
	if err := db.DeleteServer(ctx, pending.ID, base); err != nil {
		t.Fatalf("DeleteServer(pending): %v", err)
	}

	checks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"row gone", func(t *testing.T) {
			if _, err := db.Server(ctx, enrolled.ID); !errors.Is(err, fleet.ErrServerNotFound) {
				t.Errorf("Server = %v, want ErrServerNotFound", err)
			}
		}},
		{"serial revoked", func(t *testing.T) {
			revoked, err := db.CertRevoked(ctx, "beef01")
			if err != nil || !revoked {
				t.Errorf("CertRevoked(beef01) = %v, %v; want true", revoked, err)
			}
		}},
		{"other serial not revoked", func(t *testing.T) {
			revoked, err := db.CertRevoked(ctx, "beef03")
			if err != nil || revoked {
				t.Errorf("CertRevoked(beef03) = %v, %v; want false", revoked, err)
			}
		}},
		{"empty serial not recorded", func(t *testing.T) {
			revoked, err := db.CertRevoked(ctx, "")
			if err != nil || revoked {
				t.Errorf("CertRevoked(\"\") = %v, %v; want false", revoked, err)
			}
		}},
		{"bound token cascaded", func(t *testing.T) {
			if _, err := db.JoinToken(ctx, "bound1"); !errors.Is(err, enroll.ErrTokenNotFound) {
				t.Errorf("JoinToken(bound1) = %v, want ErrTokenNotFound", err)
			}
		}},
		{"other tokens kept", func(t *testing.T) {
			for _, id := range []string{"bound2", "free01"} {
				if _, err := db.JoinToken(ctx, id); err != nil {
					t.Errorf("JoinToken(%s) = %v", id, err)
				}
			}
		}},
		{"delete twice", func(t *testing.T) {
			if err := db.DeleteServer(ctx, enrolled.ID, base); !errors.Is(err, fleet.ErrServerNotFound) {
				t.Errorf("second DeleteServer = %v, want ErrServerNotFound", err)
			}
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.run)
	}
}

func TestSavePresence(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	s1 := mustServer(t, db, area.ID, "10.0.0.1", "01")
	s2 := mustServer(t, db, area.ID, "10.0.0.2", "02")
	facts := fleet.Facts{Hostname: "web1", OS: "linux", AgentVersion: "2.0.0", CPUs: 4}

	err := db.SavePresence(ctx, []fleet.Presence{
		{ServerID: s1.ID, Status: fleet.StatusOnline, LastSeen: base, Facts: &facts},
		{ServerID: nextID(), Status: fleet.StatusOnline, LastSeen: base, Facts: &facts}, // unknown: skipped
		{ServerID: s2.ID, Status: fleet.StatusOnline, LastSeen: base.Add(time.Second)},
		{ServerID: nextID(), Status: fleet.StatusOffline}, // unknown: skipped
	})
	if err != nil {
		t.Fatalf("SavePresence: %v", err)
	}
	if err := db.SavePresence(ctx, nil); err != nil {
		t.Fatalf("SavePresence(nil): %v", err)
	}
	// Facts nil and LastSeen zero leave the stored values alone.
	if err := db.SavePresence(ctx, []fleet.Presence{{ServerID: s1.ID, Status: fleet.StatusOffline}}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		id          ids.ID
		wantStatus  fleet.AgentStatus
		wantSeen    time.Time
		wantFacts   fleet.Facts
		wantVersion string
	}{
		{s1.ID, fleet.StatusOffline, base, facts, "2.0.0"},
		{s2.ID, fleet.StatusOnline, base.Add(time.Second), fleet.Facts{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.id.String(), func(t *testing.T) {
			got, err := db.Server(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got.AgentStatus != tc.wantStatus || !got.LastSeen.Equal(tc.wantSeen) ||
				got.Facts != tc.wantFacts || got.AgentVersion != tc.wantVersion {
				t.Errorf("got status %s seen %v facts %+v version %q; want %s %v %+v %q",
					got.AgentStatus, got.LastSeen, got.Facts, got.AgentVersion,
					tc.wantStatus, tc.wantSeen, tc.wantFacts, tc.wantVersion)
			}
			if !got.UpdatedAt.Equal(base) {
				t.Errorf("UpdatedAt = %v, want unchanged %v", got.UpdatedAt, base)
			}
		})
	}
	if n := countServers(t, db); n != 2 {
		t.Errorf("servers = %d, want 2 (unknown ids must not be inserted)", n)
	}
}

func TestMarkAllOffline(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	online := mustServer(t, db, area.ID, "10.0.0.1", "01")
	pending := mustServer(t, db, area.ID, "10.0.0.2", "")
	if err := db.SavePresence(ctx, []fleet.Presence{{ServerID: online.ID, Status: fleet.StatusOnline, LastSeen: base}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkAllOffline(ctx, base); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[ids.ID]fleet.AgentStatus{online.ID: fleet.StatusOffline, pending.ID: fleet.StatusPending} {
		got, err := db.Server(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.AgentStatus != want {
			t.Errorf("server %d: status %s, want %s", id, got.AgentStatus, want)
		}
	}
}
