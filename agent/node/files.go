package node

import (
	"errors"
	"fmt"
	"os"

	"github.com/admq/admq-manager/agent/configfile"
	"github.com/admq/admq-manager/internal/invalid"
)

// ConfigFile is one config file a deploy or an apply writes.
type ConfigFile struct {
	// Path is relative to the program dir, or absolute inside the program
	// dir or the data dir.
	Path    string
	Content []byte
	Mode    os.FileMode // 0: 0640
}

// checkFiles validates the files of a request: their number, size, mode
// and that each path stays in the node's dirs as written.
func (d Dirs) checkFiles(files []ConfigFile) error {
	if len(files) > MaxConfigFiles {
		return invalid.Field("config_files", "%d files: at most %d", len(files), MaxConfigFiles)
	}
	seen := map[string]bool{}
	for _, f := range files {
		p, err := d.configPath(f.Path)
		if err != nil {
			return err
		}
		if seen[p] {
			return invalid.Field("config_files", "%s is given twice", f.Path)
		}
		seen[p] = true
		if len(f.Content) > MaxConfigSize {
			return invalid.Field("config_files", "%s: %d bytes: at most %d", f.Path, len(f.Content), MaxConfigSize)
		}
		if f.Mode&^os.ModePerm != 0 {
			return invalid.Field("config_files", "%s: mode %o: permission bits only", f.Path, f.Mode)
		}
	}
	return nil
}

// fileWrite is a config file that differs from what the node has.
type fileWrite struct {
	path string
	f    ConfigFile
}

// plan returns the files of node name whose content or mode differs from
// what is on disk, at the paths writePath gives: only those are written,
// since rewriting the others would shift their history (configfile.Write
// skips them too), and a changed one means a running node must be
// restarted.
func (d Dirs) plan(name string, files []ConfigFile) ([]fileWrite, error) {
	var out []fileWrite
	for _, f := range files {
		p, err := d.writePath(f.Path)
		if err != nil {
			return nil, err
		}
		if f.Mode == 0 {
			f.Mode = 0o640
		}
		same, err := configfile.Same(p, f.Content, f.Mode)
		if err != nil {
			return nil, fmt.Errorf("config of %s: %w", name, err)
		}
		if !same {
			out = append(out, fileWrite{p, f})
		}
	}
	return out, nil
}

// written is a config file an apply replaced, and whether it had a
// previous version to go back to (else it did not exist).
type written struct {
	Path     string `json:"path"`
	Previous bool   `json:"previous"`
}

// writeFiles writes node name's planned files, keeping each one's
// previous version. It returns what it wrote, also when it fails part way.
func writeFiles(name string, writes []fileWrite) ([]written, error) {
	var out []written
	for _, w := range writes {
		v, err := configfile.Write(w.path, w.f.Content, w.f.Mode, configKeep)
		if err != nil {
			return out, fmt.Errorf("config of %s: %w", name, err)
		}
		if !v.Unchanged {
			out = append(out, written{Path: w.path, Previous: v.Previous})
		}
	}
	return out, nil
}

// restore puts back the previous version of every file in ws, newest
// write first; a file that did not exist before is removed.
func restore(ws []written) error {
	var errs []error
	for i := len(ws) - 1; i >= 0; i-- {
		w := ws[i]
		if !w.Previous {
			if err := os.Remove(w.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := configfile.Restore(w.Path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
