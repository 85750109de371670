package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
)

// TestDiskFullIsENOSPC: when SQLite finds no room (here a page limit on
// the writer, as a full disk would), writes made with ExecContext and
// through write fail with an error that is syscall.ENOSPC, which the API
// answers as "disk full"; the database stays usable once there is room.
func TestDiskFullIsENOSPC(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	if err := db.w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.DB.ExecContext(ctx, "PRAGMA max_page_count = "+itoa(pages+2)); err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_750_000_000_000)
	var full error
	for i := 1; i < 1000 && full == nil; i++ {
		full = db.CreateArea(ctx, &fleet.Area{ID: ids.ID(i), Code: "a" + itoa(i), Name: strings.Repeat("n", 3000), CreatedAt: now, UpdatedAt: now})
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("CreateArea on a full database: %v; want an error that is ENOSPC", full)
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO areas (id, code, name, created_at, updated_at) VALUES (5000, 'w', ?, 0, 0)`, strings.Repeat("n", 9000))
		return err
	})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full database: %v; want an error that is ENOSPC", err)
	}
	if _, err := db.w.DB.ExecContext(ctx, "PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateArea(ctx, &fleet.Area{ID: 9999, Code: "after", Name: "after", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatalf("CreateArea once there is room: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
