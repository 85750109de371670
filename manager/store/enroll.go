package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/enroll"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// CreateJoinToken inserts t as given by the caller (ID, hash, times, uses).
// An AreaID that names no area is fleet.ErrAreaNotFound and a ServerID that
// names no server is fleet.ErrServerNotFound.
func (db *DB) CreateJoinToken(ctx context.Context, t *enroll.JoinToken) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO join_tokens (
				id, secret_hash, description, area_id, server_id, max_uses, uses,
				expires_at, revoked_at, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, nonNilBytes(t.SecretHash), t.Description, nullID(t.AreaID), nullID(t.ServerID), t.MaxUses, t.Uses,
			millis(t.ExpiresAt), millis(t.RevokedAt), t.CreatedBy, millis(t.CreatedAt))
		if !isForeignKey(err) {
			return err
		}
		// SQLite does not say which reference failed; look.
		if !t.AreaID.IsZero() {
			var ok bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM areas WHERE id = ?)`, int64(t.AreaID)).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return fleet.ErrAreaNotFound
			}
		}
		return fleet.ErrServerNotFound
	})
	if errors.Is(err, fleet.ErrAreaNotFound) || errors.Is(err, fleet.ErrServerNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: create join token: %w", err)
	}
	return nil
}

const tokenCols = `id, secret_hash, description, area_id, server_id, max_uses, uses,
	expires_at, revoked_at, created_by, created_at`

func scanToken(sc scanner) (enroll.JoinToken, error) {
	var (
		t                         enroll.JoinToken
		areaID, serverID          sql.NullInt64
		expires, revoked, created sql.NullInt64
	)
	err := sc.Scan(&t.ID, &t.SecretHash, &t.Description, &areaID, &serverID, &t.MaxUses, &t.Uses,
		&expires, &revoked, &t.CreatedBy, &created)
	if err != nil {
		return enroll.JoinToken{}, err
	}
	t.AreaID = fromNullID(areaID)
	t.ServerID = fromNullID(serverID)
	t.ExpiresAt = fromMillis(expires)
	t.RevokedAt = fromMillis(revoked)
	t.CreatedAt = fromMillis(created)
	return t, nil
}

// JoinToken returns the token with id, whatever its state, or
// enroll.ErrTokenNotFound.
func (db *DB) JoinToken(ctx context.Context, id string) (enroll.JoinToken, error) {
	return getOne(ctx, db, enroll.ErrTokenNotFound, "get join token", scanToken, `SELECT `+tokenCols+` FROM join_tokens WHERE id = ?`, id)
}

// JoinTokens returns one page of join tokens, newest first, and the total
// number of tokens. Token ids are random, so "newest" is by creation time,
// then by insertion order.
func (db *DB) JoinTokens(ctx context.Context, p paging.Page) ([]enroll.JoinToken, int, error) {
	return listPage(ctx, db, "list join tokens", `SELECT COUNT(*) FROM join_tokens`, `SELECT `+tokenCols+` FROM join_tokens ORDER BY created_at DESC, rowid DESC`, nil, p, scanToken)
}

// RevokeJoinToken marks the token with id revoked at now, or returns
// enroll.ErrTokenNotFound. Revoking a revoked token keeps the first time.
func (db *DB) RevokeJoinToken(ctx context.Context, id string, now time.Time) error {
	res, err := db.w.ExecContext(ctx,
		`UPDATE join_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, millis(now), id)
	if err == nil {
		err = mustAffect(res, enroll.ErrTokenNotFound)
	}
	if errors.Is(err, enroll.ErrTokenNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: revoke join token: %w", err)
	}
	return nil
}

// PendingServerByIP returns the id of the server with this manager IP if no
// agent has enrolled for it yet (it has no certificate serial), else 0.
func (db *DB) PendingServerByIP(ctx context.Context, ip string) (ids.ID, error) {
	var id int64
	err := db.queryRow(ctx,
		`SELECT id FROM servers WHERE manager_ip = ? AND cert_serial = ''`, ip).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: pending server by ip: %w", err)
	}
	return ids.ID(id), nil
}

// RetryServer returns the id of the server that token tokenID enrolled with
// the public key whose SHA-256 is keySum, provided its agent has not been
// seen since that enrollment (last_seen before enrolled_at), else 0.
func (db *DB) RetryServer(ctx context.Context, tokenID string, keySum []byte) (ids.ID, error) {
	var id int64
	err := db.queryRow(ctx, retryServerSQL, tokenID, nonNilBytes(keySum)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: retry server: %w", err)
	}
	return ids.ID(id), nil
}

// retryServerSQL finds the server a token enrolled with a key (index
// servers_enroll_retry: every enrollment runs it).
const retryServerSQL = `SELECT id FROM servers
	WHERE enroll_token = ? AND enroll_spki = ? AND ` + awaitingRetry + ` ORDER BY id LIMIT 1`

// awaitingRetry holds for a server whose agent has not connected since it
// enrolled: it may not have received its certificate.
const awaitingRetry = `enrolled_at IS NOT NULL AND (last_seen IS NULL OR last_seen < enrolled_at)`

// CompleteEnrollment consumes one use of the token e.TokenID, provided it is
// unrevoked, unexpired at e.Now and not used up (else enroll.ErrTokenRefused),
// and then, in the same transaction:
//
//   - with e.Create, inserts server e.ServerID, offline, with e's area (none
//     when zero), address, hostname and certificate serial; a server with
//     this manager IP already existing is enroll.ErrAlreadyEnrolled;
//   - without, binds the existing server e.ServerID to the new certificate
//     and sets it offline. That server must not have enrolled yet, unless the
//     token is bound to it: then it is re-enrolled and its previous serial is
//     recorded as revoked. A server that has enrolled already is
//     enroll.ErrAlreadyEnrolled.
//
// With e.Retry, no use is consumed (the token must still be unrevoked and
// unexpired) and server e.ServerID, which this token enrolled with the key
// e.KeySum and whose agent has not connected since, gets the new
// certificate; its previous serial is recorded as revoked. A server that
// no longer qualifies is enroll.ErrAlreadyEnrolled.
//
// On any error nothing is written.
func (db *DB) CompleteEnrollment(ctx context.Context, e enroll.Enrollment) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if e.Retry {
			return db.retryEnrolled(ctx, tx, e)
		}
		res, err := db.txExec(ctx, tx, `UPDATE join_tokens SET uses = uses + 1
			WHERE id = ? AND revoked_at IS NULL
			AND (expires_at IS NULL OR expires_at > ?)
			AND (max_uses = 0 OR uses < max_uses)`, e.TokenID, e.Now.UnixMilli())
		if err != nil {
			return err
		}
		if err := mustAffect(res, enroll.ErrTokenRefused); err != nil {
			return err
		}
		if e.Create {
			return db.createEnrolled(ctx, tx, e)
		}
		return db.bindEnrolled(ctx, tx, e)
	})
	switch {
	case errors.Is(err, enroll.ErrTokenRefused),
		errors.Is(err, enroll.ErrAlreadyEnrolled),
		errors.Is(err, fleet.ErrAreaNotFound),
		errors.Is(err, fleet.ErrServerNotFound):
		return err
	case err != nil:
		return fmt.Errorf("store: complete enrollment: %w", err)
	}
	return nil
}

// createEnrolled inserts the server row of a new enrollment.
func (db *DB) createEnrolled(ctx context.Context, tx *sql.Tx, e enroll.Enrollment) error {
	_, err := db.txExec(ctx, tx, `INSERT INTO servers (
			id, area_id, manager_ip, data_ip, hostname, cert_serial, agent_status, created_at, updated_at,
			enroll_spki, enroll_token, enrolled_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(e.ServerID), nullID(e.AreaID), e.ManagerIP, e.ManagerIP, e.Hostname, e.CertSerial,
		string(fleet.StatusOffline), millis(e.Now), millis(e.Now), keySum(e), e.TokenID, millis(e.Now))
	switch {
	case isUnique(err, "servers.manager_ip"):
		return enroll.ErrAlreadyEnrolled
	case isForeignKey(err):
		return fleet.ErrAreaNotFound
	}
	return err
}

// bindEnrolled gives an existing server row its new certificate.
func (db *DB) bindEnrolled(ctx context.Context, tx *sql.Tx, e enroll.Enrollment) error {
	var bound sql.NullInt64
	err := db.txQueryRowW(ctx, tx, `SELECT server_id FROM join_tokens WHERE id = ?`, e.TokenID).Scan(&bound)
	if err != nil {
		return err
	}
	if fromNullID(bound) != e.ServerID || e.ServerID.IsZero() {
		// Any token may enroll a pending server, but only once.
		res, err := db.txExec(ctx, tx, `UPDATE servers
			SET cert_serial = ?, hostname = ?, agent_status = ?, updated_at = ?,
				enroll_spki = ?, enroll_token = ?, enrolled_at = ?
			WHERE id = ? AND cert_serial = ''`,
			e.CertSerial, e.Hostname, string(fleet.StatusOffline), millis(e.Now),
			keySum(e), e.TokenID, millis(e.Now), int64(e.ServerID))
		if err != nil {
			return err
		}
		return mustAffect(res, enroll.ErrAlreadyEnrolled)
	}

	// A token bound to this server may re-enroll it: the old certificate dies.
	var old string
	err = db.txQueryRowW(ctx, tx, `SELECT cert_serial FROM servers WHERE id = ?`, int64(e.ServerID)).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) { // cannot happen: the token would have been deleted with it
		return fleet.ErrServerNotFound
	}
	if err != nil {
		return err
	}
	if old != e.CertSerial {
		if err := db.revokeSerial(ctx, tx, old, e.ServerID, e.Now); err != nil {
			return err
		}
	}
	_, err = db.txExec(ctx, tx, `UPDATE servers
		SET cert_serial = ?, hostname = ?, agent_status = ?, updated_at = ?,
			enroll_spki = ?, enroll_token = ?, enrolled_at = ?
		WHERE id = ?`,
		e.CertSerial, e.Hostname, string(fleet.StatusOffline), millis(e.Now),
		keySum(e), e.TokenID, millis(e.Now), int64(e.ServerID))
	return err
}

// retryEnrolled gives a server its new certificate when its agent retries
// an enrollment whose answer it lost: same token, same key, not connected
// since. The token is checked but not consumed.
func (db *DB) retryEnrolled(ctx context.Context, tx *sql.Tx, e enroll.Enrollment) error {
	var usable bool
	err := db.txQueryRowW(ctx, tx, `SELECT EXISTS (SELECT 1 FROM join_tokens
		WHERE id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?))`,
		e.TokenID, e.Now.UnixMilli()).Scan(&usable)
	if err != nil {
		return err
	}
	if !usable {
		return enroll.ErrTokenRefused
	}
	if len(e.KeySum) == 0 {
		return enroll.ErrAlreadyEnrolled
	}
	var old string
	err = db.txQueryRowW(ctx, tx, `SELECT cert_serial FROM servers
		WHERE id = ? AND enroll_token = ? AND enroll_spki = ? AND `+awaitingRetry,
		int64(e.ServerID), e.TokenID, e.KeySum).Scan(&old)
	if errors.Is(err, sql.ErrNoRows) {
		return enroll.ErrAlreadyEnrolled
	}
	if err != nil {
		return err
	}
	if old != "" && old != e.CertSerial {
		if err := db.revokeSerial(ctx, tx, old, e.ServerID, e.Now); err != nil {
			return err
		}
	}
	_, err = db.txExec(ctx, tx, `UPDATE servers
		SET cert_serial = ?, hostname = ?, agent_status = ?, updated_at = ?, enrolled_at = ?
		WHERE id = ?`,
		e.CertSerial, e.Hostname, string(fleet.StatusOffline), millis(e.Now), millis(e.Now), int64(e.ServerID))
	return err
}

// keySum is the enrollment's key hash for the enroll_spki column: NULL
// when unknown, so that no retry can match it.
func keySum(e enroll.Enrollment) any {
	if len(e.KeySum) == 0 {
		return nil
	}
	return e.KeySum
}
