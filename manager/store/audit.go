package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/audit"
	"github.com/admq/admq-manager/manager/paging"
)

// AppendAudit records e; the caller sets its ID and time.
func (db *DB) AppendAudit(ctx context.Context, e *audit.Entry) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO audit_log (
			id, at, username, role, consumer, method, path, remote_ip, status, code, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(e.ID), millis(e.At), e.Username, e.Role, e.Consumer, e.Method, e.Path, e.RemoteIP, e.Status, e.Code, e.Detail)
	if err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
}

// Audit returns one page of the audit log, newest first, and the total
// number of entries.
func (db *DB) Audit(ctx context.Context, p paging.Page) ([]audit.Entry, int, error) {
	return listPage(ctx, db, "list audit log", `SELECT COUNT(*) FROM audit_log`, `SELECT `+auditCols+` FROM audit_log ORDER BY id DESC`, nil, p, scanAudit)
}

const auditCols = `id, at, username, role, consumer, method, path, remote_ip, status, code, detail`

func scanAudit(sc scanner) (audit.Entry, error) {
	var (
		e  audit.Entry
		id int64
		at sql.NullInt64
	)
	if err := sc.Scan(&id, &at, &e.Username, &e.Role, &e.Consumer, &e.Method, &e.Path, &e.RemoteIP, &e.Status, &e.Code, &e.Detail); err != nil {
		return audit.Entry{}, err
	}
	e.ID = ids.ID(id)
	e.At = fromMillis(at)
	return e, nil
}
