package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
)

// TestServerRowVersionColumns: every column of servers either bumps
// row_version when it changes (the servers_row_version trigger compares
// it) or is known not to be shown by a list of servers. A column added
// without a decision fails here: lists would show it stale.
func TestServerRowVersionColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manager.db")
	db, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var trigger string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'servers_row_version'`).Scan(&trigger); err != nil {
		t.Fatal(err)
	}
	notShown := map[string]bool{
		"id": true, "row_version": true, // the key and the version itself
		"agent_status": true, "last_seen": true, // live, read at every request
		"ssh_passphrase": true, "enroll_spki": true, "enroll_token": true, "enrolled_at": true,
	}
	rows, err := raw.Query(`SELECT name FROM pragma_table_info('servers')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			t.Fatal(err)
		}
		n++
		if !notShown[col] && !strings.Contains(trigger, "OLD."+col+" ") {
			t.Errorf("servers.%s neither bumps row_version nor is known not to be listed", col)
		}
	}
	if err := rows.Err(); err != nil || n < 20 {
		t.Fatalf("%d columns, %v", n, err)
	}
}

// TestServerStamps: a stamp's version moves with the record's listed
// columns and not with presence; totals and clusters kept between pages
// follow inserts, deletes and hostname changes.
func TestServerStamps(t *testing.T) {
	ctx := context.Background()
	db := MustOpen(t)
	area := mustArea(t, db, "default")
	a := mustServer(t, db, area.ID, "10.0.0.1", "")
	b := mustServer(t, db, area.ID, "10.0.0.2", "0b")
	page := paging.Page{Num: 1, Size: 10}
	stamp := func(f fleet.ServerFilter, id ids.ID) (fleet.ServerStamp, int) {
		t.Helper()
		list, total, err := db.ServerStamps(ctx, f, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range list {
			if st.ID == id {
				return st, total
			}
		}
		return fleet.ServerStamp{}, total
	}
	st, total := stamp(fleet.ServerFilter{}, a.ID)
	if total != 2 || st.Version != 1 || st.Enrolled {
		t.Fatalf("new server: %+v of %d", st, total)
	}
	if st, _ := stamp(fleet.ServerFilter{}, b.ID); !st.Enrolled {
		t.Fatalf("enrolled server: %+v", st)
	}
	save := func(p fleet.Presence) {
		t.Helper()
		if err := db.SavePresence(ctx, []fleet.Presence{p}); err != nil {
			t.Fatal(err)
		}
	}
	save(fleet.Presence{ServerID: a.ID, Status: fleet.StatusOnline, LastSeen: base.Add(time.Hour)})
	if st, _ := stamp(fleet.ServerFilter{}, a.ID); st.Version != 1 || !st.LastSeen.Equal(base.Add(time.Hour)) {
		t.Fatalf("after presence: %+v", st)
	}
	facts := fleet.Facts{Hostname: "web-1", CPUs: 2}
	save(fleet.Presence{ServerID: a.ID, LastSeen: base, Facts: &facts})
	if st, _ := stamp(fleet.ServerFilter{}, a.ID); st.Version != 2 {
		t.Fatalf("after facts: %+v", st)
	}
	save(fleet.Presence{ServerID: a.ID, LastSeen: base, Facts: &facts})
	if st, _ := stamp(fleet.ServerFilter{}, a.ID); st.Version != 2 {
		t.Fatalf("after the same facts: %+v", st)
	}
	if err := db.SetServerSecrets(ctx, a.ID, fleet.SealedSecrets{Password: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if st, _ := stamp(fleet.ServerFilter{}, a.ID); st.Version != 3 {
		t.Fatalf("after secrets: %+v", st)
	}
	got, err := db.ServersByID(ctx, []ids.ID{a.ID, b.ID, 42})
	if err != nil || len(got) != 2 {
		t.Fatalf("ServersByID: %d, %v", len(got), err)
	}
	for _, s := range got {
		if s.ID == a.ID && (s.Version != 3 || !s.HasPassword || s.Facts.Hostname != "web-1") {
			t.Fatalf("ServersByID: %+v", s)
		}
	}

	// Totals, each counted once and then kept until servers change.
	web := fleet.ServerFilter{HostnamePrefix: "web-"}
	pending := fleet.ServerFilter{Status: fleet.StatusPending}
	for range 2 {
		if _, total := stamp(web, a.ID); total != 1 {
			t.Fatalf("web- total %d, want 1", total)
		}
		if _, total := stamp(pending, a.ID); total != 1 {
			t.Fatalf("pending total %d, want 1", total)
		}
	}
	facts.Hostname = "db-1"
	save(fleet.Presence{ServerID: a.ID, LastSeen: base, Facts: &facts})
	if _, total := stamp(web, a.ID); total != 0 {
		t.Fatalf("web- total after the rename %d, want 0", total)
	}
	c := mustServer(t, db, area.ID, "10.0.0.3", "")
	if _, total := stamp(pending, c.ID); total != 2 {
		t.Fatalf("pending total after an insert %d, want 2", total)
	}
	if _, total := stamp(fleet.ServerFilter{}, c.ID); total != 3 {
		t.Fatalf("total after an insert %d, want 3", total)
	}
	if err := db.DeleteServer(ctx, c.ID, base); err != nil {
		t.Fatal(err)
	}
	if _, total := stamp(pending, a.ID); total != 1 {
		t.Fatalf("pending total after a delete %d, want 1", total)
	}
	if _, total := stamp(fleet.ServerFilter{}, a.ID); total != 2 {
		t.Fatalf("total after a delete %d, want 2", total)
	}
}
