// Package storetest opens real stores for tests: a SQLite file in the
// test's temp dir, migrated, closed when the test ends. Only tests import
// it.
package storetest

import (
	"path/filepath"
	"testing"

	"github.com/admq/admq-manager/manager/store"
)

// Open opens a store on a new admq.db in a temp dir of tb and closes it
// in tb.Cleanup.
func Open(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(tb.Context(), filepath.Join(tb.TempDir(), "admq.db"))
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return db
}
