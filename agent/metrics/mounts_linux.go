package metrics

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// mountWatch holds the mount table open: poll on it reports POLLPRI once
// the table changed since the previous poll (or since it was opened).
type mountWatch struct{ f *os.File }

// watchMounts opens the mount table at path, or returns nil when it cannot
// be watched.
//
// The file must stay out of the Go runtime's network poller, where os.Open
// would put it (the mount table is pollable): the poller's epoll_wait polls
// it too, and each poll clears the change, so ours would miss it.
// unix.Open makes a blocking descriptor, which os.NewFile leaves alone.
func watchMounts(path string) *mountWatch {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), path)
	w := &mountWatch{f: f}
	if _, err := w.poll(); err != nil {
		f.Close()
		return nil
	}
	return w
}

// changed reports whether the mount table changed since the last call;
// when that cannot be told, it says it did.
func (w *mountWatch) changed() bool {
	ch, err := w.poll()
	return ch || err != nil
}

func (w *mountWatch) poll() (bool, error) {
	fds := []unix.PollFd{{Fd: int32(w.f.Fd()), Events: unix.POLLPRI}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 && fds[0].Revents&unix.POLLNVAL != 0 {
			return false, errors.New("mount table: poll: invalid descriptor")
		}
		return n > 0 && fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0, nil
	}
}
