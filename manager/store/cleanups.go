package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

var _ deploy.CleanupStore = (*DB)(nil)

// QueueCleanup stores c; the caller sets its ID and CreatedAt. ManagerIP
// is ignored. A cleanup of the same server and node replaces the one
// queued before, keeping its id, and starts its attempts again.
func (db *DB) QueueCleanup(ctx context.Context, c deploy.Cleanup) error {
	roots := c.AllowedRoots
	if roots == nil {
		roots = []string{}
	}
	rootsJSON, err := json.Marshal(roots)
	if err != nil {
		return fmt.Errorf("store: queue cleanup: encode allowed roots: %w", err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO node_cleanups (
			id, server_id, node_name, cluster_name, operation_id, program_dir, data_dir,
			allowed_roots, reason, created_at, attempts, last_error, last_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', NULL)
		ON CONFLICT (server_id, node_name) DO UPDATE SET
			cluster_name = excluded.cluster_name, operation_id = excluded.operation_id,
			program_dir = excluded.program_dir, data_dir = excluded.data_dir,
			allowed_roots = excluded.allowed_roots, reason = excluded.reason,
			created_at = excluded.created_at, attempts = 0, last_error = '', last_attempt_at = NULL`,
		int64(c.ID), int64(c.ServerID), c.Node, c.ClusterName, c.OperationID, c.ProgramDir, c.DataDir,
		string(rootsJSON), c.Reason, millis(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: queue cleanup: %w", err)
	}
	return nil
}

const cleanupCols = `c.id, c.server_id, s.manager_ip, c.node_name, c.cluster_name, c.operation_id,
	c.program_dir, c.data_dir, c.allowed_roots, c.reason, c.created_at, c.attempts, c.last_error, c.last_attempt_at`

const cleanupFrom = ` FROM node_cleanups c JOIN servers s ON s.id = c.server_id`

func scanCleanup(sc scanner) (deploy.Cleanup, error) {
	var (
		c                      deploy.Cleanup
		id, server             int64
		roots                  string
		created, lastAttempted sql.NullInt64
	)
	err := sc.Scan(&id, &server, &c.ManagerIP, &c.Node, &c.ClusterName, &c.OperationID,
		&c.ProgramDir, &c.DataDir, &roots, &c.Reason, &created, &c.Attempts, &c.LastError, &lastAttempted)
	if err != nil {
		return deploy.Cleanup{}, err
	}
	if err := json.Unmarshal([]byte(roots), &c.AllowedRoots); err != nil {
		return deploy.Cleanup{}, fmt.Errorf("decode allowed roots of cleanup %d: %w", id, err)
	}
	c.ID, c.ServerID = ids.ID(id), ids.ID(server)
	c.CreatedAt, c.LastAttemptAt = fromMillis(created), fromMillis(lastAttempted)
	return c, nil
}

// ServerCleanups returns the server's cleanups, oldest first.
func (db *DB) ServerCleanups(ctx context.Context, serverID ids.ID) ([]deploy.Cleanup, error) {
	return queryAll(ctx, db, "list server cleanups", scanCleanup,
		`SELECT `+cleanupCols+cleanupFrom+` WHERE c.server_id = ? ORDER BY c.id`, int64(serverID))
}

// CleanupServers returns the servers that have cleanups, in id order.
func (db *DB) CleanupServers(ctx context.Context) ([]ids.ID, error) {
	return queryAll(ctx, db, "list cleanup servers", func(sc scanner) (ids.ID, error) {
		var id int64
		err := sc.Scan(&id)
		return ids.ID(id), err
	}, `SELECT DISTINCT server_id FROM node_cleanups ORDER BY server_id`)
}

// Cleanups returns one page of cleanups, oldest first, of one server (all
// when serverID is zero), and the total.
func (db *DB) Cleanups(ctx context.Context, serverID ids.ID, p paging.Page) ([]deploy.Cleanup, int, error) {
	if serverID.IsZero() {
		return listPage(ctx, db, "list cleanups", `SELECT COUNT(*) FROM node_cleanups`,
			`SELECT `+cleanupCols+cleanupFrom+` ORDER BY c.id`, nil, p, scanCleanup)
	}
	return listPage(ctx, db, "list cleanups", `SELECT COUNT(*) FROM node_cleanups WHERE server_id = ?`,
		`SELECT `+cleanupCols+cleanupFrom+` WHERE c.server_id = ? ORDER BY c.id`, []any{int64(serverID)}, p, scanCleanup)
}

// DeleteCleanup removes the cleanup with id; one already gone (with its
// server) is no error.
func (db *DB) DeleteCleanup(ctx context.Context, id ids.ID) error {
	if _, err := db.w.ExecContext(ctx, `DELETE FROM node_cleanups WHERE id = ?`, int64(id)); err != nil {
		return fmt.Errorf("store: delete cleanup: %w", err)
	}
	return nil
}

// CleanupFailed counts a failed attempt of the cleanup with id, at at, and
// keeps lastError; a cleanup already gone is no error.
func (db *DB) CleanupFailed(ctx context.Context, id ids.ID, lastError string, at time.Time) error {
	_, err := db.w.ExecContext(ctx, `UPDATE node_cleanups SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? WHERE id = ?`,
		lastError, millis(at), int64(id))
	if err != nil {
		return fmt.Errorf("store: record cleanup attempt: %w", err)
	}
	return nil
}
