package store

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// stmtCache keeps the reads the store runs over and over prepared:
// database/sql prepares a Stmt on each connection the first time it runs
// there, so SQLite parses the query's text once per connection instead of
// at every call. Parsing was an eighth of the manager's CPU while agents
// connect (each handshake checks the agent's certificate serial) and a
// tenth of a GET /server.
//
// A statement is prepared on the pool, which takes a free connection. A
// caller inside a read transaction already holds one, so when every
// reader is held that way, preparing there would wait for ever: such
// callers only use a statement already cached, and have a missing one
// prepared in the background (prepareSoon) while they run theirs
// unprepared on their transaction.
type stmtCache struct {
	pool    *sql.DB
	m       sync.Map // query text to *sql.Stmt
	n       atomic.Int64
	pending sync.Map // query text being prepared in the background
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func newStmtCache(pool *sql.DB) *stmtCache {
	ctx, stop := context.WithCancel(context.Background())
	return &stmtCache{pool: pool, ctx: ctx, stop: stop}
}

// maxCachedStmts bounds the cache: queries whose text varies with their
// arguments (IN lists) would otherwise fill it; beyond the bound they are
// prepared for one use, as without the cache.
const maxCachedStmts = 256

// get returns query prepared on the pool, or nil when the cache is full.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.m.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	if c.n.Load() >= maxCachedStmts {
		return nil, nil
	}
	s, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if old, loaded := c.m.LoadOrStore(query, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	c.n.Add(1)
	return s, nil
}

// cached returns query's statement if it is prepared already, else nil
// after having it prepared in the background.
func (c *stmtCache) cached(query string) *sql.Stmt {
	if s, ok := c.m.Load(query); ok {
		return s.(*sql.Stmt)
	}
	if c.n.Load() >= maxCachedStmts || c.ctx.Err() != nil {
		return nil
	}
	if _, busy := c.pending.LoadOrStore(query, true); busy {
		return nil
	}
	c.wg.Go(func() {
		defer c.pending.Delete(query)
		_, _ = c.get(c.ctx, query) // a failure leaves the query unprepared
	})
	return nil
}

func (c *stmtCache) close() {
	c.stop()
	c.wg.Wait()
	c.m.Range(func(_, s any) bool {
		s.(*sql.Stmt).Close()
		return true
	})
}

// query is db.r.QueryContext through the cache.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.reads.get(ctx, query)
	if err != nil || s == nil {
		return db.r.QueryContext(ctx, query, args...)
	}
	return s.QueryContext(ctx, args...)
}

// queryRow is db.r.QueryRowContext through the cache.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := db.reads.get(ctx, query)
	if err != nil || s == nil {
		return db.r.QueryRowContext(ctx, query, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// forTx returns query's cached statement for use in tx, or nil (run query
// unprepared on tx) when it is not cached yet.
func (c *stmtCache) forTx(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s := c.cached(query); s != nil {
		return tx.StmtContext(ctx, s)
	}
	return nil
}

// txQuery is tx.QueryContext through the cache, for a read transaction.
func (db *DB) txQuery(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if s := db.reads.forTx(ctx, tx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, query, args...)
}

// txQueryRow is tx.QueryRowContext through the cache, for a read
// transaction.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s := db.reads.forTx(ctx, tx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// The writer's statements are cached the same way (db.writes): a write
// transaction holds the writer's only connection, so a statement missing
// from the cache is prepared in the background once the transaction is
// over, and meanwhile runs unprepared on it. The enrollment of one new
// agent parsed its statements at every call, a third of its store CPU
// (BenchmarkEnroll).

// txExec is tx.ExecContext through the writer's cache, for a write
// transaction.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s := db.writes.forTx(ctx, tx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRowW is tx.QueryRowContext through the writer's cache, for a
// write transaction.
func (db *DB) txQueryRowW(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s := db.writes.forTx(ctx, tx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// txStmt is query prepared for use in write transaction tx, from the
// writer's cache when it is there, else on tx; for a statement run many
// times in one transaction. tx closes it when it ends.
func (db *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s := db.writes.forTx(ctx, tx, query); s != nil {
		return s, nil
	}
	return tx.PrepareContext(ctx, query)
}
