package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/consumer"
	"github.com/admq/admq-manager/manager/paging"
)

var _ consumer.Store = (*DB)(nil)

// CreateConsumer inserts c as given by the caller; an unrevoked consumer
// with the same app id is consumer.ErrAppIDExists.
func (db *DB) CreateConsumer(ctx context.Context, c *consumer.Consumer) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO consumers (
			id, app_id, name, org_id, org_name, owner_name, owner_email, token_hash,
			expires_at, revoked_at, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(c.ID), c.AppID, c.Name, c.OrgID, c.OrgName, c.OwnerName, c.OwnerEmail, nonNilBytes(c.TokenHash),
		millis(c.ExpiresAt), millis(c.RevokedAt), c.CreatedBy, millis(c.CreatedAt))
	if isUnique(err, "consumers.app_id") {
		return consumer.ErrAppIDExists
	}
	if err != nil {
		return fmt.Errorf("store: create consumer: %w", err)
	}
	return nil
}

const consumerCols = `id, app_id, name, org_id, org_name, owner_name, owner_email, token_hash,
	expires_at, revoked_at, created_by, created_at`

func scanConsumer(sc scanner) (consumer.Consumer, error) {
	var (
		c                         consumer.Consumer
		id                        int64
		expires, revoked, created sql.NullInt64
	)
	err := sc.Scan(&id, &c.AppID, &c.Name, &c.OrgID, &c.OrgName, &c.OwnerName, &c.OwnerEmail, &c.TokenHash,
		&expires, &revoked, &c.CreatedBy, &created)
	if err != nil {
		return consumer.Consumer{}, err
	}
	c.ID = ids.ID(id)
	c.ExpiresAt = fromMillis(expires)
	c.RevokedAt = fromMillis(revoked)
	c.CreatedAt = fromMillis(created)
	return c, nil
}

// Consumer returns the consumer with id, or consumer.ErrNotFound.
func (db *DB) Consumer(ctx context.Context, id ids.ID) (consumer.Consumer, error) {
	return getOne(ctx, db, consumer.ErrNotFound, "get consumer", scanConsumer,
		`SELECT `+consumerCols+` FROM consumers WHERE id = ?`, int64(id))
}

// ConsumerByTokenHash returns the consumer whose token hashes to h, or
// consumer.ErrNotFound.
func (db *DB) ConsumerByTokenHash(ctx context.Context, h []byte) (consumer.Consumer, error) {
	return getOne(ctx, db, consumer.ErrNotFound, "get consumer by token", scanConsumer,
		`SELECT `+consumerCols+` FROM consumers WHERE token_hash = ?`, h)
}

// Consumers returns one page of consumers, newest first, and the total.
func (db *DB) Consumers(ctx context.Context, p paging.Page) ([]consumer.Consumer, int, error) {
	return listPage(ctx, db, "list consumers", `SELECT COUNT(*) FROM consumers`,
		`SELECT `+consumerCols+` FROM consumers ORDER BY id DESC`, nil, p, scanConsumer)
}

// RevokeConsumer marks the consumer revoked at now, keeping an earlier
// revocation time, or returns consumer.ErrNotFound.
func (db *DB) RevokeConsumer(ctx context.Context, id ids.ID, now time.Time) error {
	res, err := db.w.ExecContext(ctx,
		`UPDATE consumers SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, millis(now), int64(id))
	if err == nil {
		err = mustAffect(res, consumer.ErrNotFound)
	}
	if errors.Is(err, consumer.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: revoke consumer: %w", err)
	}
	return nil
}

// CreateGrant inserts g: consumer.ErrNotFound for an unknown consumer,
// consumer.ErrGrantExists for a second grant on the same scope.
func (db *DB) CreateGrant(ctx context.Context, g *consumer.Grant) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO consumer_grants (
			id, consumer_id, app_id, cluster_name, namespace_name, can_modify, can_release, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(g.ID), int64(g.ConsumerID), g.AppID, g.ClusterName, g.NamespaceName, g.Modify, g.Release,
		g.CreatedBy, millis(g.CreatedAt))
	switch {
	case isUnique(err, "consumer_grants.consumer_id"):
		return consumer.ErrGrantExists
	case isForeignKey(err):
		return consumer.ErrNotFound
	case err != nil:
		return fmt.Errorf("store: create grant: %w", err)
	}
	return nil
}

// Grants returns the consumer's grants, oldest first.
func (db *DB) Grants(ctx context.Context, consumerID ids.ID) ([]consumer.Grant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, consumer_id, app_id, cluster_name, namespace_name,
			can_modify, can_release, created_by, created_at
		FROM consumer_grants WHERE consumer_id = ? ORDER BY id`, int64(consumerID))
	if err != nil {
		return nil, fmt.Errorf("store: list grants: %w", err)
	}
	defer rows.Close()
	var out []consumer.Grant
	for rows.Next() {
		var (
			g         consumer.Grant
			id, cid   int64
			createdAt sql.NullInt64
			mod, rel  bool
		)
		if err := rows.Scan(&id, &cid, &g.AppID, &g.ClusterName, &g.NamespaceName, &mod, &rel, &g.CreatedBy, &createdAt); err != nil {
			return nil, fmt.Errorf("store: list grants: %w", err)
		}
		g.ID, g.ConsumerID, g.Modify, g.Release, g.CreatedAt = ids.ID(id), ids.ID(cid), mod, rel, fromMillis(createdAt)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list grants: %w", err)
	}
	return out, nil
}

// DeleteGrant removes the grant with id, or returns consumer.ErrGrantNotFound.
func (db *DB) DeleteGrant(ctx context.Context, id ids.ID) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM consumer_grants WHERE id = ?`, int64(id))
	if err == nil {
		err = mustAffect(res, consumer.ErrGrantNotFound)
	}
	if errors.Is(err, consumer.ErrGrantNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete grant: %w", err)
	}
	return nil
}
