// Package store is the SQLite persistence adapter of the manager: it
// implements fleet.Store, auth.Store, enroll.Store and audit.Store on one
// database file.
//
// The file is opened through two connection pools: a writer limited to one
// connection whose transactions begin IMMEDIATE, so that writers queue in the
// process instead of failing with SQLITE_BUSY, and a small pool of read-only
// connections that, thanks to WAL mode, read concurrently with the writer.
// The schema is created and upgraded by versioned migrations embedded in the
// binary and applied by Open.
//
// Times are stored as unix milliseconds; the zero time.Time is stored as NULL
// and read back as the zero time. Times read from the store are in
// time.Local.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"github.com/admq/admq-manager/manager/paging"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
)

// Compile-time checks that DB implements every store interface.
var (
	_ fleet.Store  = (*DB)(nil)
	_ auth.Store   = (*DB)(nil)
	_ enroll.Store = (*DB)(nil)
	_ audit.Store  = (*DB)(nil)
)

//go:embed migrations/*.sql
var migrations embed.FS

// Connection settings shared by the writer and the readers.
const commonParams = "_pragma=busy_timeout(10000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(NORMAL)" +
	// A page cache of up to 32 MiB per connection (SQLite's default is
	// 2 MiB): 10,000 servers with their facts are about 8 MiB, and a list
	// that does not fit reads its pages from the file at every request
	// (BenchmarkServerList100 in manager/api).
	"&_pragma=cache_size(-32768)"

const (
	writerParams = commonParams + "&_txlock=immediate"
	// Readers read the database file through one shared memory map (up to
	// 256 MiB of it) instead of copying its pages into a page cache of
	// their own: four readers that had each read the servers of 10,000
	// agents held four private copies, 36 MB outside the Go heap, where
	// the map holds the file's pages once, in the kernel's page cache,
	// which can drop them again (no slower: BenchmarkServerList100). Pages
	// that only the write-ahead log holds are still read into the cache,
	// and the writer, which changes pages, keeps its cache.
	readerParams = commonParams + "&_pragma=query_only(1)&_pragma=mmap_size(268435456)"
	readerConns  = 4
)

// DB is the manager's database. It is safe for concurrent use.
type DB struct {
	w     writer  // writer: one connection, BEGIN IMMEDIATE
	r     *sql.DB // readers: query_only connections
	reads *stmtCache
	// writes caches the writer's hot statements (enrollment's).
	writes *stmtCache
	// serverCounts are the totals of server list filters, each valid while
	// server_list_gen has the generation it was counted at.
	serverCounts *lru.Cache[serverCountKey, serverCount]
	// clusterNames are the clusters on each server for server lists.
	clusterNames atomic.Pointer[deployClusters]
	// stampPages are pages of server stamps, each valid while
	// server_list_gen has the generations it was read at.
	stampPages *lru.Cache[stampPageKey, *stampPage]
}

// writer is the writer pool. Its errors, and those of write, wrap
// syscall.ENOSPC when SQLite found the disk full, so that callers tell a
// full disk from other failures without knowing SQLite.
type writer struct{ *sql.DB }

// ExecContext is sql.DB's, with a full disk said as ENOSPC.
func (w writer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := w.DB.ExecContext(ctx, query, args...)
	return res, diskFull(err)
}

// diskFull wraps syscall.ENOSPC into err when it is SQLite's "database or
// disk is full".
func diskFull(err error) error {
	if err != nil && sqliteCode(err)&0xff == sqlite3.SQLITE_FULL && !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (%w)", err, syscall.ENOSPC)
	}
	return err
}

// Open opens, creating it if needed, the database file at path, applies any
// pending schema migrations and returns the store. The parent directory is
// created with mode 0700 if missing and the file is given mode 0600. path
// must name a file: ":memory:" and URIs are refused because the writer and
// readers must share one database.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store: open: %q is not a database file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open: create directory: %w", err)
	}
	// Create the file ourselves so that it never exists with a wider mode
	// than 0600, and tighten the mode of a file that already existed.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}

	w, err := sql.Open("sqlite", path+"?"+writerParams)
	if err != nil {
		return nil, fmt.Errorf("store: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open writer: %w", err)
	}
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", path+"?"+readerParams)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("store: open readers: %w", err)
	}
	r.SetMaxOpenConns(readerConns)
	r.SetMaxIdleConns(readerConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("store: open readers: %w", err)
	}
	counts, err := lru.New[serverCountKey, serverCount](serverCountsKept)
	if err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	pages, err := lru.New[stampPageKey, *stampPage](stampPagesKept)
	if err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	return &DB{w: writer{w}, r: r, reads: newStmtCache(r), writes: newStmtCache(w), serverCounts: counts, stampPages: pages}, nil
}

// migrate applies the embedded migrations that db has not seen yet.
func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(goMigrations()...))
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	// p.Close would close db, which the store keeps using.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// Close closes both connection pools.
func (db *DB) Close() error {
	db.reads.close()
	db.writes.close()
	errR := db.r.Close()
	errW := db.w.Close()
	if err := errors.Join(errR, errW); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// write runs fn in an immediate transaction on the writer and commits it
// when fn returns nil; otherwise everything fn did is rolled back. Inside
// Atomically, fn runs in Atomically's transaction instead, which commits
// or rolls back as a whole.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if tx, ok := ctx.Value(atomicTx{}).(*sql.Tx); ok {
		return fn(tx)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return diskFull(err)
	}
	defer func() { _ = tx.Rollback() }() // no-op once committed
	if err := fn(tx); err != nil {
		return diskFull(err)
	}
	return diskFull(tx.Commit())
}

// atomicTx is the context key of Atomically's transaction.
type atomicTx struct{}

// Atomically runs fn in one write transaction: every store write fn makes
// with the context it is given takes effect, or, when fn fails, none
// does. Reads inside fn see the database as it was before fn. fn must only
// call store methods that write through db.write (the config edits do):
// the writer has one connection, which fn's transaction holds.
func (db *DB) Atomically(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(atomicTx{}).(*sql.Tx); ok {
		return fn(ctx)
	}
	return db.write(ctx, func(tx *sql.Tx) error { return fn(context.WithValue(ctx, atomicTx{}, tx)) })
}

// read runs fn in a read transaction, so that several queries (a page and
// its total) see one snapshot.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports whether err is a UNIQUE constraint violation on column,
// given as "table.column".
func isUnique(err error, column string) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE &&
		strings.Contains(err.Error(), "UNIQUE constraint failed: "+column)
}

// isForeignKey reports whether err is a FOREIGN KEY constraint violation.
// SQLite does not say which key failed; callers know which keys a statement
// can violate. A parent row deleted under ON DELETE RESTRICT is reported
// with the trigger code, not the foreign-key one.
func isForeignKey(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return true
	case sqlite3.SQLITE_CONSTRAINT_TRIGGER:
		return strings.Contains(err.Error(), "FOREIGN KEY")
	}
	return false
}

// millis converts t to its stored form: unix milliseconds, NULL for zero.
func millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMillis converts a stored time back; NULL is the zero time.
func fromMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64)
}

// nullID converts an optional id reference to its stored form, NULL for zero.
func nullID(id ids.ID) sql.NullInt64 {
	if id.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(id), Valid: true}
}

// fromNullID converts a stored optional id reference back; NULL is zero.
func fromNullID(n sql.NullInt64) ids.ID {
	if !n.Valid {
		return 0
	}
	return ids.ID(n.Int64)
}

// mustAffect returns notFound when res reports no affected row.
func mustAffect(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// listPage counts the rows countSQL selects and reads one page of listSQL
// (which must not have LIMIT/OFFSET yet) in one read transaction, so the
// total and the page agree.
func listPage[T any](ctx context.Context, db *DB, what, countSQL, listSQL string, args []any, p paging.Page, scan func(scanner) (T, error)) ([]T, int, error) {
	var (
		list  []T
		total int
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := db.txQueryRow(ctx, tx, countSQL, args...).Scan(&total); err != nil {
			return err
		}
		// listSQL may place the page's LIMIT and OFFSET itself (in a
		// subquery, say); they take the last two arguments either way.
		if !strings.Contains(listSQL, `LIMIT ? OFFSET ?`) {
			listSQL += ` LIMIT ? OFFSET ?`
		}
		rows, err := db.txQuery(ctx, tx, listSQL, append(args[:len(args):len(args)], p.Size, p.Offset())...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			list = append(list, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: %s: %w", what, err)
	}
	return list, total, nil
}

// getOne reads the single row query selects, or returns notFound.
func getOne[T any](ctx context.Context, db *DB, notFound error, what string, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(db.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, notFound
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("store: %s: %w", what, err)
	}
	return v, nil
}
