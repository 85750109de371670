package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
)

// LockNamespace gives the namespace lock of (clusterID, clusterName,
// namespace) to user unless someone holds it, and returns who holds it
// now. One statement: two editors racing get one owner.
func (db *DB) LockNamespace(ctx context.Context, clusterID ids.ID, clusterName, namespace, user string, now time.Time) (string, error) {
	_, err := db.w.ExecContext(ctx, `INSERT INTO namespace_locks (cluster_id, cluster_name, namespace, locked_by, locked_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, int64(clusterID), clusterName, namespace, user, millis(now))
	if err != nil {
		return "", fmt.Errorf("store: lock namespace: %w", err)
	}
	owner, _, err := db.NamespaceLock(ctx, clusterID, clusterName, namespace)
	return owner, err
}

// NamespaceLock returns who holds the namespace lock, if anyone.
func (db *DB) NamespaceLock(ctx context.Context, clusterID ids.ID, clusterName, namespace string) (string, bool, error) {
	var owner string
	err := db.w.QueryRowContext(ctx, `SELECT locked_by FROM namespace_locks
		WHERE cluster_id = ? AND cluster_name = ? AND namespace = ?`, int64(clusterID), clusterName, namespace).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: namespace lock: %w", err)
	}
	return owner, true, nil
}

// UnlockNamespace clears the namespace lock, if any.
func (db *DB) UnlockNamespace(ctx context.Context, clusterID ids.ID, clusterName, namespace string) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM namespace_locks WHERE cluster_id = ? AND cluster_name = ? AND namespace = ?`,
		int64(clusterID), clusterName, namespace)
	if err != nil {
		return fmt.Errorf("store: unlock namespace: %w", err)
	}
	return nil
}
