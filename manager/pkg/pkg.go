// Package pkg owns software packages: the archives an operator uploads once
// and the manager later streams to agents. A package is checked in full
// before it is kept (its file name, its archive's entries, its manifest),
// stored content-addressed by sha256 under the package directory, and can
// be disabled, enabled and deleted.
package pkg

import (
	"context"
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on; transports map them to their own codes. The
// service wraps them with the details of what is wrong.
var (
	ErrPackageNeeded   = errors.New("choose a package file to upload")
	ErrNameIllegal     = errors.New("illegal package file name")
	ErrPackageExists   = errors.New("package already exists")
	ErrPackageNotFound = errors.New("package does not exist")
	ErrPackageInUse    = errors.New("package is used by cluster nodes; delete those first")
	ErrManifest        = errors.New("invalid package manifest")
	ErrArchiveUnsafe   = errors.New("unsafe package archive")
	ErrArchiveInvalid  = errors.New("package is not a readable archive")
	ErrTooLarge        = errors.New("package too large")
	// ErrUploadInterrupted: reading the upload failed, as when the client
	// goes away; the error also wraps the reader's own error.
	ErrUploadInterrupted = errors.New("the upload was interrupted")
)

// Package is an uploaded software package.
type Package struct {
	ID ids.ID
	// Name, Version, Arch ("x86", "arm" or "all") and Ext ("tar.gz", "tgz"
	// or "tar") come from the file name.
	Name    string
	Version string
	Arch    string
	Ext     string
	// FileName is the name the package was uploaded under.
	FileName string
	// SHA256 is the hex digest of the file; the file is stored under it.
	SHA256 string
	// Size is the file's size in bytes.
	Size int64
	// MqType is the console's package type, from the manifest.
	MqType int
	// Effective is true while the package is enabled.
	Effective bool
	// Manifest is the package's admq-package.json.
	Manifest manifest.Manifest
	// FilePath is where the file is stored; filled by the Service on every
	// read, never stored.
	FilePath  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is what pkg needs from persistence.
type Store interface {
	// CreatePackage inserts p; the caller sets its ID and times. A package
	// with the same SHA256, or the same Name, Version and Arch, is
	// ErrPackageExists.
	CreatePackage(ctx context.Context, p *Package) error
	// Package returns the package with id, or ErrPackageNotFound.
	Package(ctx context.Context, id ids.ID) (Package, error)
	// PackageBySHA256 returns the package whose file has the hex digest
	// sum, or ErrPackageNotFound.
	PackageBySHA256(ctx context.Context, sum string) (Package, error)
	// PackageByName returns the package with the name, version and arch,
	// or ErrPackageNotFound.
	PackageByName(ctx context.Context, name, version, arch string) (Package, error)
	// Packages returns one page of packages, newest first, and the total.
	Packages(ctx context.Context, p paging.Page) ([]Package, int, error)
	// SetPackageEffective enables or disables the package with id, or
	// returns ErrPackageNotFound.
	SetPackageEffective(ctx context.Context, id ids.ID, effective bool, now time.Time) error
	// DeletePackage removes the package with id, or returns
	// ErrPackageNotFound.
	DeletePackage(ctx context.Context, id ids.ID) error
}
