// Package dirlock gives one process at a time a directory: an exclusive
// flock(2) on a file in it, held as long as the process keeps the Lock
// (the kernel drops it when the process dies, so a crash leaves no stale
// lock to guess about), with the holder's pid written in the file so that
// the process refused can name it.
package dirlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// HeldError says that another process holds the lock.
type HeldError struct {
	Path string
	// PID is the holder's, as it wrote it; 0 when it could not be read
	// (the holder is still writing it).
	PID int
}

// Holder names the holder for a message: "pid 123", or "pid unknown".
func (e *HeldError) Holder() string {
	if e.PID == 0 {
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(e.PID)
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by another process (pid %d)", e.Path, e.PID)
}

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire takes the lock on the file path (created 0600 if missing), or
// returns a *HeldError at once if another process has it.
func Acquire(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, PID: readPID(f)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		f.Close() // drops the lock
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. The file stays (removing it would let a
// process that opened it meanwhile lock a file no longer in the dir).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

func readPID(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
