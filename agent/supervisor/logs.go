package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// rotateLogs rotates every node log above the size limit.
//
// Rotation is copytruncate: the live file is copied to <name>.log.1 (older
// copies shift to .2 … up to MaxLogFiles) and then truncated in place. The
// child keeps its fd and, having opened the file with O_APPEND, goes on
// writing at the new end, so no signal or reopen is needed, and it works for
// adopted processes whose fds an earlier agent run opened. The cost: lines
// the child writes between the end of the copy and the truncation are lost
// (a window of one read syscall on a quiet log, more on a busy one).
func (s *Supervisor) rotateLogs() {
	s.mu.Lock()
	var specs []Spec
	for _, n := range s.nodes {
		specs = append(specs, n.spec)
	}
	s.mu.Unlock()
	for _, spec := range specs {
		if err := rotate(logPath(spec), s.maxLogSize, s.maxLogFiles); err != nil {
			s.log.Error("rotate node log", "node", spec.Name, "err", err)
		}
	}
}

// rotate copytruncates path into path.1 if it is larger than limit, keeping
// keep rotated files.
func rotate(path string, limit int64, keep int) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Size() <= limit {
		return nil
	}
	name := func(i int) string { return path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(name(1), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", path, err)
	}
	return os.Truncate(path, 0)
}
