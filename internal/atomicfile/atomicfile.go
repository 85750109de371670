// Package atomicfile replaces files so that a crash leaves either the old
// content or the new, never a mix: write a temporary file beside the target,
// fsync it, rename it over the target, fsync the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteFile atomically replaces path with data, with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := WriteTemp(dir, filepath.Base(path), data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// tempPrefix is how the temporary files (and directories) made for base
// begin; os.CreateTemp and os.MkdirTemp end them with decimal digits.
func tempPrefix(base string) string { return "." + base + ".tmp-" }

// RemoveStale removes the temporary files and directories that writers of
// base in dir (WriteTemp, or a caller of os.MkdirTemp with the same
// pattern) left when their process was killed before renaming them into
// place. Only a caller that knows no such write is under way may call it,
// for it cannot tell a crashed writer's temp from a live one's.
func RemoveStale(dir, base string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), tempPrefix(base))
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteTemp writes data to a new hidden temporary file in dir, named after
// base, with mode perm, fsyncs and closes it, and returns its path; the
// caller renames it into place. On error nothing is left behind.
func WriteTemp(dir, base string, data []byte, perm os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(perm.Perm())
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// SyncDir fsyncs a directory so that renames in it survive a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
