package metrics

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
)

// mountsMaxAge is how long the filesystems to report are kept without
// looking at the mount table again, when a change to it would be noticed
// (mountWatch); without that they are looked up at every sample.
const mountsMaxAge = time.Minute

// mountCache keeps which filesystems a report covers. Finding them parses
// the mount table, twice: that was half of the cost of a sample (more than
// the usage figures themselves), and mounts rarely change. The kernel tells
// a reader of the mount table that it changed (poll on /proc/…/mountinfo
// says POLLPRI), so a mount or unmount is seen at the next sample.
type mountCache struct {
	mu     sync.Mutex
	watch  *mountWatch // nil: the mount table's changes cannot be seen
	list   []disk.PartitionStat
	readAt time.Time // zero: nothing kept
}

func newMountCache() *mountCache {
	return &mountCache{watch: watchMounts(mountTablePath())}
}

// get returns the kept filesystems, or read's when the mount table changed,
// the list is older than mountsMaxAge, or changes cannot be seen.
func (m *mountCache) get(ctx context.Context, now time.Time, read func(context.Context) ([]disk.PartitionStat, error)) ([]disk.PartitionStat, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Asked every time, so that a change seen now is not reported again.
	changed := m.watch == nil || m.watch.changed()
	if !changed && !m.readAt.IsZero() && now.Sub(m.readAt) < mountsMaxAge && now.After(m.readAt) {
		return m.list, nil
	}
	list, err := read(ctx)
	if err != nil {
		m.list, m.readAt = nil, time.Time{}
		return nil, err
	}
	m.list, m.readAt = list, now
	return list, nil
}

// mountTablePath is the mount table gopsutil's disk.Partitions reads:
// HOST_PROC_MOUNTINFO, else pid 1's under HOST_PROC (default /proc), else
// this process's.
func mountTablePath() string {
	if p := os.Getenv("HOST_PROC_MOUNTINFO"); p != "" {
		return p
	}
	proc := os.Getenv("HOST_PROC")
	if proc == "" {
		proc = "/proc"
	}
	if p := filepath.Join(proc, "1", "mountinfo"); canRead(p) {
		return p
	}
	return filepath.Join(proc, "self", "mountinfo")
}

func canRead(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
