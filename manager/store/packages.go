package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
)

var _ pkg.Store = (*DB)(nil)

// CreatePackage inserts p; the caller sets its ID and times. FilePath is
// not stored. A duplicate SHA256, or a duplicate Name, Version and Arch, is
// pkg.ErrPackageExists.
func (db *DB) CreatePackage(ctx context.Context, p *pkg.Package) error {
	m, err := json.Marshal(p.Manifest)
	if err != nil {
		return fmt.Errorf("store: create package: encode manifest: %w", err)
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO packages (
			id, name, version, arch, ext, file_name, sha256, size, mq_type, effective, manifest, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(p.ID), p.Name, p.Version, p.Arch, p.Ext, p.FileName, p.SHA256, p.Size, p.MqType, p.Effective,
		string(m), millis(p.CreatedAt), millis(p.UpdatedAt))
	switch {
	case isUnique(err, "packages.sha256"):
		return fmt.Errorf("%w: a package with sha256 %s is already stored", pkg.ErrPackageExists, p.SHA256)
	case isUnique(err, "packages.name"):
		return fmt.Errorf("%w: %s version %s for %s is already stored", pkg.ErrPackageExists, p.Name, p.Version, p.Arch)
	case err != nil:
		return fmt.Errorf("store: create package: %w", err)
	}
	return nil
}

const packageCols = `id, name, version, arch, ext, file_name, sha256, size, mq_type, effective, manifest, created_at, updated_at`

func scanPackage(sc scanner) (pkg.Package, error) {
	var (
		p                pkg.Package
		id               int64
		manifest         string
		created, updated sql.NullInt64
	)
	err := sc.Scan(&id, &p.Name, &p.Version, &p.Arch, &p.Ext, &p.FileName, &p.SHA256, &p.Size, &p.MqType,
		&p.Effective, &manifest, &created, &updated)
	if err != nil {
		return pkg.Package{}, err
	}
	// Decoded as stored, not validated again: a manifest accepted once
	// stays readable if the rules tighten later.
	if err := json.Unmarshal([]byte(manifest), &p.Manifest); err != nil {
		return pkg.Package{}, fmt.Errorf("decode manifest of package %d: %w", id, err)
	}
	p.ID = ids.ID(id)
	p.CreatedAt = fromMillis(created)
	p.UpdatedAt = fromMillis(updated)
	return p, nil
}

// Package returns the package with id, or pkg.ErrPackageNotFound.
func (db *DB) Package(ctx context.Context, id ids.ID) (pkg.Package, error) {
	return getOne(ctx, db, pkg.ErrPackageNotFound, "get package", scanPackage,
		`SELECT `+packageCols+` FROM packages WHERE id = ?`, int64(id))
}

// PackageBySHA256 returns the package whose file has the hex digest sum, or
// pkg.ErrPackageNotFound.
func (db *DB) PackageBySHA256(ctx context.Context, sum string) (pkg.Package, error) {
	return getOne(ctx, db, pkg.ErrPackageNotFound, "get package by sha256", scanPackage,
		`SELECT `+packageCols+` FROM packages WHERE sha256 = ?`, sum)
}

// PackageByName returns the package with the name, version and arch, or
// pkg.ErrPackageNotFound.
func (db *DB) PackageByName(ctx context.Context, name, version, arch string) (pkg.Package, error) {
	return getOne(ctx, db, pkg.ErrPackageNotFound, "get package by name", scanPackage,
		`SELECT `+packageCols+` FROM packages WHERE name = ? AND version = ? AND arch = ?`, name, version, arch)
}

// Packages returns one page of packages, newest first, and the total.
func (db *DB) Packages(ctx context.Context, p paging.Page) ([]pkg.Package, int, error) {
	return listPage(ctx, db, "list packages", `SELECT COUNT(*) FROM packages`,
		`SELECT `+packageCols+` FROM packages ORDER BY id DESC`, nil, p, scanPackage)
}

// SetPackageEffective enables or disables the package with id and sets its
// update time to now, or returns pkg.ErrPackageNotFound.
func (db *DB) SetPackageEffective(ctx context.Context, id ids.ID, effective bool, now time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE packages SET effective = ?, updated_at = ? WHERE id = ?`,
		effective, millis(now), int64(id))
	if err == nil {
		err = mustAffect(res, pkg.ErrPackageNotFound)
	}
	if errors.Is(err, pkg.ErrPackageNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: set package effective: %w", err)
	}
	return nil
}

// DeletePackage removes the package with id, or returns
// pkg.ErrPackageNotFound.
func (db *DB) DeletePackage(ctx context.Context, id ids.ID) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM packages WHERE id = ?`, int64(id))
	if isForeignKey(err) {
		return pkg.ErrPackageInUse
	}
	if err == nil {
		err = mustAffect(res, pkg.ErrPackageNotFound)
	}
	if errors.Is(err, pkg.ErrPackageNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: delete package: %w", err)
	}
	return nil
}
