package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/store"
)

// MustOpen opens a store on a fresh SQLite file in a temporary directory and
// closes it when the test ends.
func MustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), filepath.Join(tb.TempDir(), "manager.db"))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// base is a fixed instant; stored times have millisecond precision.
var base = time.UnixMilli(1_750_000_000_000)

var lastID atomic.Int64

// nextID returns a fresh, increasing id.
func nextID() ids.ID { return ids.ID(lastID.Add(1) + 1_000_000) }

func all() paging.Page { return paging.Page{Num: 1, Size: paging.MaxSize} }

func mustArea(tb testing.TB, db *store.DB, code string) fleet.Area {
	tb.Helper()
	a := fleet.Area{ID: nextID(), Code: code, Name: "Area " + code, CreatedAt: base, UpdatedAt: base}
	if err := db.CreateArea(context.Background(), &a); err != nil {
		tb.Fatalf("CreateArea(%q): %v", code, err)
	}
	return a
}

func mustServer(tb testing.TB, db *store.DB, areaID ids.ID, ip, serial string) fleet.Server {
	tb.Helper()
	s := fleet.Server{
		ID: nextID(), AreaID: areaID, ManagerIP: ip, CertSerial: serial,
		AgentStatus: fleet.StatusPending, CreatedAt: base, UpdatedAt: base,
	}
	if err := db.CreateServer(context.Background(), &s); err != nil {
		tb.Fatalf("CreateServer(%q): %v", ip, err)
	}
	return s
}

func countServers(tb testing.TB, db *store.DB) int {
	tb.Helper()
	_, n, err := db.Servers(context.Background(), fleet.ServerFilter{}, paging.Page{Num: 1, Size: 1})
	if err != nil {
		tb.Fatalf("Servers: %v", err)
	}
	return n
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state", "nested")
	path := filepath.Join(dir, "manager.db")

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a := mustArea(t, db, "default")

	t.Run("file mode 0600", func(t *testing.T) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("file mode = %o, want 600", got)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("WAL file mode = %o, want no group/other bits", fi.Mode().Perm())
		}
	})
	t.Run("parent dir 0700", func(t *testing.T) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o700 {
			t.Errorf("dir mode = %o, want 700", got)
		}
	})
	t.Run("migrations applied", func(t *testing.T) {
		raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var version int64
		if err := raw.QueryRow(`SELECT MAX(version_id) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil {
			t.Fatalf("read goose version: %v", err)
		}
		if version < 1 {
			t.Errorf("schema version = %d, want >= 1", version)
		}
		for _, table := range []string{"users", "areas", "servers", "join_tokens", "revoked_certs", "audit_log"} {
			var n int
			err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table).Scan(&n)
			if err != nil || n != 1 {
				t.Errorf("table %s: count %d, err %v", table, n, err)
			}
		}
		var mode string
		if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
	})
	t.Run("second store on the same file", func(t *testing.T) {
		db2, err := store.Open(ctx, path)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer db2.Close()
		if _, err := db2.Area(ctx, a.ID); err != nil {
			t.Errorf("Area via second store: %v", err)
		}
	})

	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Run("reopen keeps data", func(t *testing.T) {
		db, err := store.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer db.Close()
		got, err := db.Area(ctx, a.ID)
		if err != nil {
			t.Fatalf("Area after reopen: %v", err)
		}
		if got.Code != a.Code || !got.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("Area after reopen = %+v, want %+v", got, a)
		}
	})
	t.Run("tightens mode of an existing file", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := store.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer db.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("file mode = %o, want 600", got)
		}
	})
}

func TestOpenRefusesNonFiles(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		t.Run(path, func(t *testing.T) {
			db, err := store.Open(context.Background(), path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded, want error", path)
			}
		})
	}
}
