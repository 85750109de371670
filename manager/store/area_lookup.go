package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/admq/admq-manager/manager/fleet"
)

// AreaByCode returns the area with code, or fleet.ErrAreaNotFound.
func (db *DB) AreaByCode(ctx context.Context, code string) (fleet.Area, error) {
	return db.areaWhere(ctx, `code = ?`, code)
}

// AreaByName returns the oldest area called name, or fleet.ErrAreaNotFound.
func (db *DB) AreaByName(ctx context.Context, name string) (fleet.Area, error) {
	return db.areaWhere(ctx, `name = ?`, name)
}

func (db *DB) areaWhere(ctx context.Context, cond string, arg any) (fleet.Area, error) {
	a, err := scanArea(db.r.QueryRowContext(ctx, `SELECT `+areaCols+` FROM areas WHERE `+cond+` ORDER BY id LIMIT 1`, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Area{}, fleet.ErrAreaNotFound
	}
	if err != nil {
		return fleet.Area{}, fmt.Errorf("store: find area: %w", err)
	}
	return a, nil
}
