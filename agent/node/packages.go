package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/admq/admq-manager/internal/atomicfile"

	"golang.org/x/sys/unix"

	"github.com/admq/admq-manager/internal/invalid"
)

// PackageInfo says what the cache holds of one package.
type PackageInfo struct {
	Present bool
	Size    int64 // when Present
	Partial int64 // bytes kept of an interrupted transfer
}

// PushHeader opens a package transfer.
type PushHeader struct {
	SHA256 string
	Size   int64
	Offset int64
}

// PushResult is what a transfer did.
type PushResult struct {
	Received       int64
	AlreadyPresent bool
}

// PackagePath is where the complete package sha lives in the cache.
func (m *Manager) PackagePath(sha string) string { return filepath.Join(m.pkgDir, sha+".pkg") }

func (m *Manager) partPath(sha string) string { return filepath.Join(m.pkgDir, sha+".part") }

// HasPackage reports what the cache holds of package sha.
func (m *Manager) HasPackage(sha string) (PackageInfo, error) {
	if err := checkSHA("sha256", sha); err != nil {
		return PackageInfo{}, err
	}
	if fi, err := os.Stat(m.PackagePath(sha)); err == nil {
		return PackageInfo{Present: true, Size: fi.Size()}, nil
	}
	var info PackageInfo
	if fi, err := os.Stat(m.partPath(sha)); err == nil {
		info.Partial = fi.Size()
	}
	return info, nil
}

// PushPackage receives one package: first is the data the opening message
// carried, next returns the following pieces and io.EOF at the end. An
// interrupted transfer keeps what it wrote for a later one to resume.
func (m *Manager) PushPackage(ctx context.Context, h PushHeader, first []byte, next func() ([]byte, error)) (PushResult, error) {
	if err := checkSHA("sha256", h.SHA256); err != nil {
		return PushResult{}, err
	}
	if h.Size <= 0 || h.Size > MaxPackageSize {
		return PushResult{}, invalid.Field("size", "%d: want 1 to %d bytes", h.Size, int64(MaxPackageSize))
	}
	if h.Offset < 0 || h.Offset > h.Size {
		return PushResult{}, invalid.Field("offset", "%d: want 0 to size (%d)", h.Offset, h.Size)
	}
	if fi, err := os.Stat(m.PackagePath(h.SHA256)); err == nil {
		if fi.Size() != h.Size {
			return PushResult{}, invalid.Field("size", "%d, but the cached package %s has %d bytes", h.Size, h.SHA256, fi.Size())
		}
		return PushResult{AlreadyPresent: true}, nil
	}
	m.pushMu.Lock()
	if m.pushing[h.SHA256] {
		m.pushMu.Unlock()
		return PushResult{}, fmt.Errorf("%w: a transfer of package %s is already running", ErrBusy, h.SHA256)
	}
	m.pushing[h.SHA256] = true
	m.pushMu.Unlock()
	defer func() {
		m.pushMu.Lock()
		delete(m.pushing, h.SHA256)
		m.pushMu.Unlock()
	}()

	partPath := m.partPath(h.SHA256)
	part, err := os.OpenFile(partPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return PushResult{}, fmt.Errorf("package %s: %w", h.SHA256, err)
	}
	defer part.Close()
	fi, err := part.Stat()
	if err != nil {
		return PushResult{}, err
	}
	if h.Offset != fi.Size() {
		if h.Offset != 0 {
			return PushResult{}, fmt.Errorf("%w: transfer of %s resumes at %d but the agent holds %d bytes", ErrConflict, h.SHA256, h.Offset, fi.Size())
		}
		if err := part.Truncate(0); err != nil {
			return PushResult{}, err
		}
	}
	free, err := m.freeSpace(m.pkgDir)
	if err != nil {
		return PushResult{}, fmt.Errorf("free space: %w", err)
	}
	if need := uint64(h.Size - h.Offset); free < need {
		return PushResult{}, fmt.Errorf("%w: package %s needs %d more bytes, %s has %d free", ErrNoSpace, h.SHA256, need, m.pkgDir, free)
	}

	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(part, 0, h.Offset)); err != nil {
		return PushResult{}, fmt.Errorf("package %s: %w", h.SHA256, err)
	}
	if _, err := part.Seek(h.Offset, io.SeekStart); err != nil {
		return PushResult{}, err
	}
	total := h.Offset
	var res PushResult
	data := first
	for {
		if len(data) > MaxChunk {
			return res, invalid.Field("data", "chunk of %d bytes: at most %d", len(data), MaxChunk)
		}
		if total+int64(len(data)) > h.Size {
			part.Close()
			os.Remove(partPath)
			return res, invalid.Field("size", "package %s: more than the announced %d bytes", h.SHA256, h.Size)
		}
		if len(data) > 0 {
			if _, err := part.Write(data); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					return res, fmt.Errorf("%w: %v", ErrNoSpace, err)
				}
				return res, fmt.Errorf("package %s: %w", h.SHA256, err)
			}
			sum.Write(data)
			total += int64(len(data))
			res.Received += int64(len(data))
		}
		var err error
		data, err = next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err // keep the part for a resume
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	if total != h.Size {
		return res, invalid.Field("size", "package %s: stream ended after %d of %d bytes", h.SHA256, total, h.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.SHA256 {
		part.Close()
		os.Remove(partPath)
		return res, fmt.Errorf("%w: received bytes hash to %s, not %s", ErrCorrupt, got, h.SHA256)
	}
	if err := part.Sync(); err != nil {
		return res, err
	}
	if err := part.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(partPath, m.PackagePath(h.SHA256)); err != nil {
		return res, err
	}
	return res, atomicfile.SyncDir(m.pkgDir)
}

func diskFree(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
