package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

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

// Audit returns one page of the audit log entries f selects, newest
// first, and how many it selects.
func (db *DB) Audit(ctx context.Context, f audit.Filter, p paging.Page) ([]audit.Entry, int, error) {
	var (
		where []string
		args  []any
	)
	if f.Username != "" {
		where, args = append(where, "username = ?"), append(args, f.Username)
	}
	if f.Method != "" {
		where, args = append(where, "method = ?"), append(args, f.Method)
	}
	if f.Path != "" {
		where, args = append(where, "instr(path, ?) > 0"), append(args, f.Path)
	}
	if !f.From.IsZero() {
		where, args = append(where, "at >= ?"), append(args, millis(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "at <= ?"), append(args, millis(f.To))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	return listPage(ctx, db, "list audit log", `SELECT COUNT(*) FROM audit_log`+cond,
		`SELECT `+auditCols+` FROM audit_log`+cond+` ORDER BY id DESC`, args, p, scanAudit)
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
