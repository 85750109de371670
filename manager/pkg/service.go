package pkg

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"

	"github.com/admq/admq-manager/internal/archive"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/internal/pkgname"
	"github.com/admq/admq-manager/manager/paging"
)

// DefaultMaxSize is the usual cap on a package file: 2 GiB.
const DefaultMaxSize = 2 << 30

// copyBufferSize is the buffer uploads are copied through.
const copyBufferSize = 256 << 10

// Service manages packages. Files live under its directory:
//
//	<dir>/sha256/<hex digest>   the packages, content-addressed
//	<dir>/tmp/upload-*          uploads in progress
type Service struct {
	store   Store
	dir     string
	maxSize int64
	gen     *ids.Generator
	now     func() time.Time
	limits  archive.Limits

	// commit serialises the steps that tie files to rows (rename+insert,
	// delete+remove), so that a failing upload never removes a file a
	// concurrent upload of the same content has just committed.
	commit sync.Mutex
}

// NewService returns a service keeping packages under dir. maxSize caps a
// package file in bytes (DefaultMaxSize when <= 0).
func NewService(store Store, dir string, maxSize int64, gen *ids.Generator, now func() time.Time) *Service {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Service{store: store, dir: dir, maxSize: maxSize, gen: gen, now: now}
}

// MaxSize is the largest package file Upload accepts, in bytes.
func (s *Service) MaxSize() int64 { return s.maxSize }

// Path returns where the file of p is stored ("" if p has no valid digest).
func (s *Service) Path(p Package) string {
	if !isDigest(p.SHA256) {
		return ""
	}
	return filepath.Join(s.dir, "sha256", p.SHA256)
}

// RemoveStaleUploads removes uploads a previous run left unfinished (a
// crash mid-upload). Call it at start, before serving.
func (s *Service) RemoveStaleUploads() error {
	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove stale uploads: %w", err)
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(tmp, e.Name())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove stale uploads: %w", err)
	}
	return nil
}

// Upload receives a package file named fileName from r and keeps it. It
// checks the name before reading a byte, reads at most MaxSize bytes (to a
// temporary file, hashing as it goes), then checks every archive entry and
// the manifest, and refuses a package whose content or whose name, version
// and arch are already known. On any error nothing is left behind: no file
// and no row.
func (s *Service) Upload(ctx context.Context, fileName string, r io.Reader) (Package, error) {
	if fileName == "" {
		return Package{}, fmt.Errorf("%w: the upload carries no file name", ErrPackageNeeded)
	}
	n, err := pkgname.Parse(fileName)
	if err != nil {
		return Package{}, wrap(ErrNameIllegal, err)
	}
	if err := s.checkNameFree(ctx, n); err != nil {
		return Package{}, err
	}

	tmpDir, shaDir := filepath.Join(s.dir, "tmp"), filepath.Join(s.dir, "sha256")
	for _, d := range []string{tmpDir, shaDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return Package{}, fmt.Errorf("package dir: %w", err)
		}
	}
	f, err := os.CreateTemp(tmpDir, "upload-*")
	if err != nil {
		return Package{}, fmt.Errorf("package temp file: %w", err)
	}
	tmpName, kept := f.Name(), false
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if !kept {
			_ = os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	size, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(r, s.maxSize+1), make([]byte, copyBufferSize))
	switch {
	case err != nil:
		return Package{}, fmt.Errorf("%w: receiving %s: %w", ErrUploadInterrupted, fileName, err)
	case size > s.maxSize:
		return Package{}, fmt.Errorf("%w: %s is larger than the limit of %d bytes", ErrTooLarge, fileName, s.maxSize)
	case size == 0:
		return Package{}, fmt.Errorf("%w: the uploaded file %s is empty", ErrPackageNeeded, fileName)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := s.checkContentFree(ctx, sum); err != nil {
		return Package{}, err
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Package{}, fmt.Errorf("package temp file: %w", err)
	}
	ins, err := archive.Inspect(bufio.NewReaderSize(f, copyBufferSize), n.Format(), s.limits)
	switch {
	case errors.Is(err, archive.ErrUnsafe), errors.Is(err, archive.ErrLimit):
		return Package{}, wrap(ErrArchiveUnsafe, err)
	case errors.Is(err, archive.ErrFormat):
		return Package{}, wrap(ErrArchiveInvalid, fmt.Errorf("%s is not a %s archive: %w", fileName, n.Format(), err))
	case err != nil:
		return Package{}, fmt.Errorf("read package temp file: %w", err)
	}
	m, err := checkManifest(n, ins)
	if err != nil {
		return Package{}, err
	}
	if err := f.Sync(); err != nil {
		return Package{}, fmt.Errorf("package temp file: %w", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return Package{}, fmt.Errorf("package temp file: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Package{}, err
	}

	now := s.now()
	p := Package{
		ID: s.gen.Next(), Name: n.Name, Version: n.Version, Arch: n.Arch, Ext: n.Ext,
		FileName: fileName, SHA256: sum, Size: size, MqType: m.MqType, Effective: true,
		Manifest: m, CreatedAt: now, UpdatedAt: now,
	}
	final := s.Path(p)

	s.commit.Lock()
	defer s.commit.Unlock()
	// Checked again under the lock: another upload may have won meanwhile.
	// Under the lock no row refers to final, so it is ours to replace and,
	// on failure, to remove.
	if err := s.checkNameFree(ctx, n); err != nil {
		return Package{}, err
	}
	if err := s.checkContentFree(ctx, sum); err != nil {
		return Package{}, err
	}
	if err := os.Rename(tmpName, final); err != nil {
		return Package{}, fmt.Errorf("store package file: %w", err)
	}
	kept = true
	if err := atomicfile.SyncDir(shaDir); err != nil {
		_ = os.Remove(final)
		return Package{}, fmt.Errorf("store package file: %w", err)
	}
	if err := s.store.CreatePackage(ctx, &p); err != nil {
		_ = os.Remove(final)
		return Package{}, err
	}
	p.FilePath = final
	return p, nil
}

func (s *Service) checkNameFree(ctx context.Context, n pkgname.Name) error {
	old, err := s.store.PackageByName(ctx, n.Name, n.Version, n.Arch)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s version %s for %s was uploaded as %s (id %s); delete it first to replace it",
			ErrPackageExists, n.Name, n.Version, n.Arch, old.FileName, old.ID)
	case !errors.Is(err, ErrPackageNotFound):
		return err
	}
	return nil
}

func (s *Service) checkContentFree(ctx context.Context, sum string) error {
	old, err := s.store.PackageBySHA256(ctx, sum)
	switch {
	case err == nil:
		return fmt.Errorf("%w: the same file (sha256 %s) was uploaded as %s (id %s)", ErrPackageExists, sum[:12], old.FileName, old.ID)
	case !errors.Is(err, ErrPackageNotFound):
		return err
	}
	return nil
}

// checkManifest parses the package's manifest and checks it against the
// file name and the archive's files.
func checkManifest(n pkgname.Name, ins archive.Inspection) (manifest.Manifest, error) {
	if ins.Manifest == nil {
		hint := ""
		if ins.ManifestElsewhere != "" {
			hint = fmt.Sprintf(" (there is one at %s: pack the contents of its directory, e.g. tar -C dir -czf %s .)", ins.ManifestElsewhere, n.String())
		}
		return manifest.Manifest{}, fmt.Errorf("%w: %s is missing at the root of the package%s", ErrManifest, manifest.FileName, hint)
	}
	m, err := manifest.Parse(ins.Manifest)
	if err != nil {
		return manifest.Manifest{}, fmt.Errorf("%w: %s: %w", ErrManifest, manifest.FileName, err)
	}
	var problems []string
	if m.Version != n.Version {
		problems = append(problems, fmt.Sprintf("version: is %s but the file name says %s", m.Version, n.Version))
	}
	inPackage := func(p string) bool {
		_, file := ins.Files[p]
		_, link := ins.Symlinks[p]
		return file || link
	}
	for _, name := range m.ComponentNames() {
		c := m.Components[name]
		for i, cf := range c.ConfigFiles {
			if _, ok := ins.Files[cf.Path]; !ok {
				problems = append(problems, fmt.Sprintf("components.%s.configFiles[%d].path: %s is not a regular file in the package", name, i, cf.Path))
			}
		}
		// A program named inside the package must be there.
		for _, prog := range []struct {
			field string
			argv  []string
		}{{"start", c.Start}, {"health.command", c.Health.Command}} {
			if len(prog.argv) == 0 {
				continue
			}
			rest, ok := strings.CutPrefix(prog.argv[0], "{programDir}/")
			if ok && !strings.ContainsAny(rest, "{}") && !inPackage(rest) {
				problems = append(problems, fmt.Sprintf("components.%s.%s[0]: %s is not in the package", name, prog.field, rest))
			}
		}
	}
	if len(problems) > 0 {
		return manifest.Manifest{}, fmt.Errorf("%w: %s: %s", ErrManifest, manifest.FileName, strings.Join(problems, "; "))
	}
	return m, nil
}

// Packages returns one page of packages, newest first, and the total.
func (s *Service) Packages(ctx context.Context, p paging.Page) ([]Package, int, error) {
	list, total, err := s.store.Packages(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	for i := range list {
		list[i].FilePath = s.Path(list[i])
	}
	return list, total, nil
}

// Package returns the package with id, or ErrPackageNotFound.
func (s *Service) Package(ctx context.Context, id ids.ID) (Package, error) {
	p, err := s.store.Package(ctx, id)
	if err != nil {
		return Package{}, err
	}
	p.FilePath = s.Path(p)
	return p, nil
}

// SetEffective enables (true) or disables (false) the package with id and
// returns it as it is now.
func (s *Service) SetEffective(ctx context.Context, id ids.ID, effective bool) (Package, error) {
	if err := s.store.SetPackageEffective(ctx, id, effective, s.now()); err != nil {
		return Package{}, err
	}
	return s.Package(ctx, id)
}

// Delete removes the package with id, its row first and then its file, and
// returns what it was.
func (s *Service) Delete(ctx context.Context, id ids.ID) (Package, error) {
	p, err := s.Package(ctx, id)
	if err != nil {
		return Package{}, err
	}
	// Clusters will refer to packages (a later issue): deleting one in use
	// must then be refused here, with an ErrPackageInUse, and in the store's
	// DeletePackage transaction as the backstop.
	s.commit.Lock()
	defer s.commit.Unlock()
	if err := s.store.DeletePackage(ctx, id); err != nil {
		return Package{}, err
	}
	if p.FilePath != "" {
		if err := os.Remove(p.FilePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("package %s was deleted but its file was not: %w", id, err)
		}
	}
	return p, nil
}

// kindError is an error of a kind callers branch on whose message is its
// cause's alone.
type kindError struct {
	kind, err error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

func wrap(kind, err error) error { return &kindError{kind: kind, err: err} }

func isDigest(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
