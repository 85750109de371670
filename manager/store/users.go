package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/auth"
	"github.com/admq/admq-manager/manager/paging"
)

// CreateUser inserts u; the caller sets its ID and times. A duplicate
// username is auth.ErrUserExists; a role other than admin, operator or
// viewer violates the schema and fails.
func (db *DB) CreateUser(ctx context.Context, u *auth.User) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO users (id, username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		int64(u.ID), u.Username, nonNilBytes(u.PasswordHash), string(u.Role), millis(u.CreatedAt), millis(u.UpdatedAt))
	if isUnique(err, "users.username") {
		return auth.ErrUserExists
	}
	if err != nil {
		return fmt.Errorf("store: create user: %w", err)
	}
	return nil
}

// nonNilBytes keeps a nil hash from being stored as NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

const userCols = `id, username, password_hash, role, created_at, updated_at, token_gen`

func scanUser(sc scanner) (auth.User, error) {
	var (
		u                auth.User
		id               int64
		role             string
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&id, &u.Username, &u.PasswordHash, &role, &created, &updated, &u.TokenGen); err != nil {
		return auth.User{}, err
	}
	u.ID = ids.ID(id)
	u.Role = auth.Role(role)
	u.CreatedAt = fromMillis(created)
	u.UpdatedAt = fromMillis(updated)
	return u, nil
}

// UserByName returns the user with this username, or auth.ErrUserNotFound.
func (db *DB) UserByName(ctx context.Context, username string) (auth.User, error) {
	return getOne(ctx, db, auth.ErrUserNotFound, "get user", scanUser, `SELECT `+userCols+` FROM users WHERE username = ?`, username)
}

// User returns the user with id, or auth.ErrUserNotFound.
func (db *DB) User(ctx context.Context, id ids.ID) (auth.User, error) {
	return getOne(ctx, db, auth.ErrUserNotFound, "get user", scanUser, `SELECT `+userCols+` FROM users WHERE id = ?`, int64(id))
}

// Users returns one page of users, oldest first, and the total number of
// users.
func (db *DB) Users(ctx context.Context, p paging.Page) ([]auth.User, int, error) {
	return listPage(ctx, db, "list users", `SELECT COUNT(*) FROM users`, `SELECT `+userCols+` FROM users ORDER BY id ASC`, nil, p, scanUser)
}

// DeleteUser removes the user with id: auth.ErrUserNotFound if there is
// none, auth.ErrLastAdmin if it is the only admin. The check and the delete
// share one write transaction, so two concurrent deletes cannot remove the
// last two admins.
func (db *DB) DeleteUser(ctx context.Context, id ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var role string
		err := tx.QueryRowContext(ctx, `SELECT role FROM users WHERE id = ?`, int64(id)).Scan(&role)
		if errors.Is(err, sql.ErrNoRows) {
			return auth.ErrUserNotFound
		}
		if err != nil {
			return err
		}
		if auth.Role(role) == auth.RoleAdmin {
			var admins int
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = ?`, string(auth.RoleAdmin)).Scan(&admins)
			if err != nil {
				return err
			}
			if admins <= 1 {
				return auth.ErrLastAdmin
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, int64(id))
		return err
	})
	if errors.Is(err, auth.ErrUserNotFound) || errors.Is(err, auth.ErrLastAdmin) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete user: %w", err)
	}
	return nil
}

// SetPassword replaces the password hash of the user with id, moves it to
// its next token generation and sets its UpdatedAt to now, or returns
// auth.ErrUserNotFound.
func (db *DB) SetPassword(ctx context.Context, id ids.ID, hash []byte, now time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ?, token_gen = token_gen + 1 WHERE id = ?`,
		nonNilBytes(hash), millis(now), int64(id))
	if err == nil {
		err = mustAffect(res, auth.ErrUserNotFound)
	}
	if errors.Is(err, auth.ErrUserNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: set password: %w", err)
	}
	return nil
}

// CountUsers returns the number of users.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count users: %w", err)
	}
	return n, nil
}
