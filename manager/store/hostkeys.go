package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/admq/admq-manager/manager/bootstrap"
)

var _ bootstrap.HostKeyStore = (*DB)(nil)

const hostKeyCols = `address, key_type, public_key, fingerprint, created_at`

func scanHostKey(sc scanner) (bootstrap.HostKey, error) {
	var (
		k       bootstrap.HostKey
		created sql.NullInt64
	)
	if err := sc.Scan(&k.Address, &k.Type, &k.Key, &k.Fingerprint, &created); err != nil {
		return bootstrap.HostKey{}, err
	}
	k.CreatedAt = fromMillis(created)
	return k, nil
}

// HostKey returns the SSH host key recorded for address ("ip:port"), or
// bootstrap.ErrHostKeyNotFound.
func (db *DB) HostKey(ctx context.Context, address string) (bootstrap.HostKey, error) {
	return getOne(ctx, db, bootstrap.ErrHostKeyNotFound, "get host key", scanHostKey,
		`SELECT `+hostKeyCols+` FROM ssh_host_keys WHERE address = ?`, address)
}

// AddHostKey records k unless a key is recorded for k.Address already; it
// returns the key recorded now and whether that is k. Two concurrent first
// uses agree on one key: the first to commit.
func (db *DB) AddHostKey(ctx context.Context, k bootstrap.HostKey) (bootstrap.HostKey, bool, error) {
	var (
		stored bootstrap.HostKey
		added  bool
	)
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO ssh_host_keys (`+hostKeyCols+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (address) DO NOTHING`,
			k.Address, k.Type, nonNilBytes(k.Key), k.Fingerprint, millis(k.CreatedAt))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		added = n == 1
		stored, err = scanHostKey(tx.QueryRowContext(ctx, `SELECT `+hostKeyCols+` FROM ssh_host_keys WHERE address = ?`, k.Address))
		return err
	})
	if err != nil {
		return bootstrap.HostKey{}, false, fmt.Errorf("store: add host key: %w", err)
	}
	return stored, added, nil
}

// DeleteHostKey forgets the key recorded for address, or returns
// bootstrap.ErrHostKeyNotFound.
func (db *DB) DeleteHostKey(ctx context.Context, address string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM ssh_host_keys WHERE address = ?`, address)
	if err == nil {
		err = mustAffect(res, bootstrap.ErrHostKeyNotFound)
	}
	if errors.Is(err, bootstrap.ErrHostKeyNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete host key: %w", err)
	}
	return nil
}
