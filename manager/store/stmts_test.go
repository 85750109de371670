package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStmtCache: reads through the cache answer as unprepared ones do,
// from many goroutines at once and inside read transactions; queries
// beyond maxCachedStmts are still answered, only not kept.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "stmts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				var got int
				if err := db.queryRow(ctx, `SELECT ? + 1`, g*100+i).Scan(&got); err != nil {
					errs <- err
					return
				}
				if got != g*100+i+1 {
					errs <- fmt.Errorf("SELECT ? + 1 with %d = %d", g*100+i, got)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for i := range maxCachedStmts + 20 {
		q := fmt.Sprintf(`SELECT ? * %d`, i+2)
		var got, inTx int
		if err := db.queryRow(ctx, q, 3).Scan(&got); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		err := db.read(ctx, func(tx *sql.Tx) error {
			return db.txQueryRow(ctx, tx, q, 5).Scan(&inTx)
		})
		if err != nil {
			t.Fatalf("query %d in a transaction: %v", i, err)
		}
		if got != 3*(i+2) || inTx != 5*(i+2) {
			t.Fatalf("query %d = %d, %d in a transaction; want %d, %d", i, got, inTx, 3*(i+2), 5*(i+2))
		}
	}
	if n := db.reads.n.Load(); n != maxCachedStmts {
		t.Fatalf("%d statements kept after %d distinct queries, want the bound %d", n, maxCachedStmts+21, maxCachedStmts)
	}
}

// TestStmtCacheInEveryReader runs a new query in as many read
// transactions at once as the pool has connections: each holds a
// connection, so preparing the query on the pool for the cache would wait
// for a free one that never comes. The queries must answer (the console
// hung on its first page load that way, each request holding a reader).
func TestStmtCacheInEveryReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "readers.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var inside sync.WaitGroup
	inside.Add(readerConns)
	errs := make(chan error, readerConns)
	for g := range readerConns {
		go func() {
			errs <- db.read(ctx, func(tx *sql.Tx) error {
				inside.Done()
				inside.Wait() // every reader is held by a transaction now
				var got int
				if err := db.txQueryRow(ctx, tx, `SELECT ? + 40`, g).Scan(&got); err != nil {
					return err
				}
				rows, err := db.txQuery(ctx, tx, `SELECT ? + 41`, g)
				if err != nil {
					return err
				}
				defer rows.Close()
				if got != g+40 {
					return fmt.Errorf("SELECT ? + 40 with %d = %d", g, got)
				}
				return rows.Err()
			})
		}()
	}
	for range readerConns {
		if err := <-errs; err != nil {
			t.Fatalf("a new query in a read transaction while every reader is in one: %v", err)
		}
	}
}
