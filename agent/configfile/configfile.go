// Package configfile writes node config files so that a reader never sees a
// half-written file and the previous versions stay at hand for a rollback.
//
// Versions live next to the file:
//
//	zoo.cfg          the current version
//	zoo.cfg.prev     the version before it (what Restore puts back)
//	zoo.cfg.prev.1   the one before that
//	...
//	zoo.cfg.prev.N   the oldest kept, N = keep-1
//
// Write shifts the history one step older (dropping the oldest) before it
// replaces the file; Restore moves .prev back over the file and shifts the
// history one step newer, so the version that failed is discarded. Writing
// what the file holds already (see Same) changes nothing, so that a
// redeploy with the same config does not push the real previous version
// out of the history.
package configfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/admq/admq-manager/internal/atomicfile"
)

// PrevSuffix is appended to a file's path to name its previous version.
const PrevSuffix = ".prev"

// ErrNoPrevious is returned by Restore and Previous when no previous version
// is kept.
var ErrNoPrevious = errors.New("no previous version")

// Version describes what Write put in place.
type Version struct {
	Path   string
	SHA256 string // hex
	Size   int64
	// Previous says whether the content that was replaced is kept as
	// Path+PrevSuffix (false when the file did not exist before, or was
	// left as it was).
	Previous bool
	// Unchanged says that path held data with that mode already: Write
	// left it and its history alone.
	Unchanged bool
}

// beforeCommit is called after the new content is durable in its temp file
// and just before it is renamed over the file. Tests use it to simulate a
// crash at the worst moment.
var beforeCommit = func(tmp string) error { return nil }

// histName names the n-th older version: 0 is path.prev, n ≥ 1 is path.prev.n.
func histName(path string, n int) string {
	if n == 0 {
		return path + PrevSuffix
	}
	return path + PrevSuffix + "." + strconv.Itoa(n)
}

// Write atomically replaces the file at path with data and the given mode
// (applied exactly, not masked by the umask), keeping up to keep previous
// versions (keep < 1 counts as 1). It creates missing parent directories
// with mode 0755.
//
// The new content goes to a temp file in the same directory, is fsynced,
// and is renamed over path; then the directory is fsynced. At every moment
// path holds either the complete old or the complete new content. A crash
// after the history was shifted but before the rename leaves .prev equal to
// the current file, which makes a later Restore a harmless no-op.
// path must be a regular file or absent; a symlink at path is replaced, not
// followed. Writes of one path must not run concurrently: each removes the
// temp files an interrupted one left (a killed agent's).
//
// When path holds data with mode already (Same), Write touches nothing and
// reports Unchanged: rewriting it would only shift the history and push the
// real previous version towards the end of it.
func Write(path string, data []byte, mode os.FileMode, keep int) (Version, error) {
	if keep < 1 {
		keep = 1
	}
	v := Version{Path: path, Size: int64(len(data))}
	sum := sha256.Sum256(data)
	v.SHA256 = hex.EncodeToString(sum[:])
	// An agent killed in the middle of a write left its temp file; the
	// file's writes are serialized, so any temp of it is garbage now.
	dir := filepath.Dir(path)
	if err := atomicfile.RemoveStale(dir, filepath.Base(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Version{}, fmt.Errorf("write %s: remove what an interrupted write left: %w", path, err)
	}
	// An error here (say, a file the agent may not read) is left to the
	// write below, which reports it or replaces the file as before.
	if same, err := Same(path, data, mode); err == nil && same {
		v.Unchanged = true
		return v, nil
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := atomicfile.WriteTemp(dir, filepath.Base(path), data, mode)
	if err != nil {
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	}
	committed := false
	defer func() {
		if !committed {
			os.Remove(tmp)
		}
	}()

	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return Version{}, fmt.Errorf("write %s: not a regular file", path)
	default:
		if err := shiftOlder(path, keep); err != nil {
			return Version{}, fmt.Errorf("write %s: keep previous version: %w", path, err)
		}
		if err := keepCopy(path, histName(path, 0)); err != nil {
			return Version{}, fmt.Errorf("write %s: keep previous version: %w", path, err)
		}
		v.Previous = true
	}

	if err := beforeCommit(tmp); err != nil {
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	}
	committed = true
	if err := atomicfile.SyncDir(dir); err != nil {
		return Version{}, fmt.Errorf("write %s: %w", path, err)
	}
	return v, nil
}

// Same reports whether path is a regular file (not a symlink) holding
// exactly data with the permission bits of mode: what Write would leave
// there. A missing file is not the same and not an error.
func Same(path string, data []byte, mode os.FileMode) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("compare %s: %w", path, err)
	}
	// Write applies the permission bits only (atomicfile.WriteTemp).
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode.Perm() || fi.Size() != int64(len(data)) {
		return false, nil
	}
	have, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("compare %s: %w", path, err)
	}
	return bytes.Equal(have, data), nil
}

// Restore puts the previous version back in place of path atomically and
// makes the one before it the new previous version. The content it replaces
// is discarded: Restore is the undo of a flush whose node failed its health
// check.
func Restore(path string) error {
	prev := histName(path, 0)
	if _, err := os.Lstat(prev); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore %s: %w", path, ErrNoPrevious)
	} else if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if err := os.Rename(prev, path); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	for n := 1; ; n++ {
		err := os.Rename(histName(path, n), histName(path, n-1))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("restore %s: shift history: %w", path, err)
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	return nil
}

// Previous returns the content of the previous version of path.
func Previous(path string) ([]byte, error) {
	b, err := os.ReadFile(histName(path, 0))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("previous of %s: %w", path, ErrNoPrevious)
	}
	if err != nil {
		return nil, fmt.Errorf("previous of %s: %w", path, err)
	}
	return b, nil
}

// shiftOlder renames path.prev.(n) to path.prev.(n+1), oldest first, so that
// path.prev is free, dropping what would be beyond keep versions.
func shiftOlder(path string, keep int) error {
	if err := os.Remove(histName(path, keep-1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for n := keep - 2; n >= 0; n-- {
		if err := os.Rename(histName(path, n), histName(path, n+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// keepCopy makes dst a copy of src: a hard link when the file system allows
// it (atomic and free, and safe because Write then replaces src by rename,
// never in place), else a durable copy through a temp file.
func keepCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	tmp, err := atomicfile.WriteTemp(filepath.Dir(dst), filepath.Base(dst), data, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
