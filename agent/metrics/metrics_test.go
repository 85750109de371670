package metrics_test

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/admq/admq-manager/agent/metrics"
)

type procs []metrics.Proc

func (p procs) Processes() []metrics.Proc { return p }

func TestCollectOnThisHost(t *testing.T) {
	dir := t.TempDir()
	c := metrics.NewCollector(dir, procs{
		{Name: "self", PID: int32(os.Getpid())},
		{Name: "stopped", PID: 0},
	})
	r, err := c.Collect(t.Context())
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	t.Logf("report: %+v", r)
	switch {
	case r.CPUCount != runtime.NumCPU():
		t.Errorf("cpu count %d, want %d", r.CPUCount, runtime.NumCPU())
	case r.MemoryTotal == 0 || r.MemoryAvailable == 0 || r.MemoryAvailable > r.MemoryTotal || r.MemoryUsed > r.MemoryTotal:
		t.Errorf("memory total %d available %d used %d", r.MemoryTotal, r.MemoryAvailable, r.MemoryUsed)
	case r.SwapUsed > r.SwapTotal:
		t.Errorf("swap used %d > total %d", r.SwapUsed, r.SwapTotal)
	case r.Hostname == "":
		t.Error("no hostname")
	case r.Load1 < 0 || r.Load5 < 0 || r.Load15 < 0:
		t.Errorf("load %v %v %v", r.Load1, r.Load5, r.Load15)
	}
	// Later samples measure CPU usage since the one before.
	for i := 0; i < 2; i++ {
		r2, err := c.Collect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if r2.CPUUsage < 0 || r2.CPUUsage > 1 {
			t.Errorf("cpu usage %v outside [0,1]", r2.CPUUsage)
		}
	}
	if r.CPUUsage < 0 || r.CPUUsage > 1 {
		t.Errorf("cpu usage %v outside [0,1]", r.CPUUsage)
	}
	if len(r.Filesystems) == 0 || len(r.Filesystems) > metrics.MaxFilesystems {
		t.Fatalf("%d filesystems", len(r.Filesystems))
	}
	holdsDir := false
	for _, f := range r.Filesystems {
		if f.Total == 0 || f.Free > f.Total || f.Used > f.Total || f.Path == "" {
			t.Errorf("filesystem %+v", f)
		}
		if f.Path == "/" || len(f.Path) <= len(dir) && dir[:len(f.Path)] == f.Path {
			holdsDir = true
		}
	}
	if !holdsDir {
		t.Errorf("no reported filesystem holds the state dir %s: %+v", dir, r.Filesystems)
	}
	for _, n := range r.Network {
		if n.Device == "lo" {
			t.Error("loopback reported")
		}
	}
	if len(r.Processes) != 2 {
		t.Fatalf("processes %+v", r.Processes)
	}
	self, stopped := r.Processes[0], r.Processes[1]
	if self.Name != "self" || !self.Running || self.RSS == 0 || self.PID != int32(os.Getpid()) || self.CPUSeconds < 0 {
		t.Errorf("own process: %+v", self)
	}
	if stopped.Running || stopped.RSS != 0 {
		t.Errorf("process without a pid: %+v", stopped)
	}
}

func TestGoneProcessIsNotRunning(t *testing.T) {
	// Pid numbers wrap well below this on Linux (pid_max is at most 2^22).
	c := metrics.NewCollector("", procs{{Name: "gone", PID: 1 << 30}})
	r, err := c.Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Processes) != 1 || r.Processes[0].Running {
		t.Fatalf("processes %+v", r.Processes)
	}
}

func TestNoProcessSource(t *testing.T) {
	r, err := metrics.NewCollector(t.TempDir(), nil).Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Processes) != 0 {
		t.Fatalf("processes %+v", r.Processes)
	}
}

// TestMountSeenAtOnce mounts a filesystem over the state dir's parent
// between two samples: the next report names it at once (and no longer
// after it is unmounted), though which filesystems to report is kept
// between samples.
func TestMountSeenAtOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	// gopsutil reads pid 1's mount table, which may be another mount
	// namespace than this test's (a sandbox); read this process's.
	t.Setenv("HOST_PROC_MOUNTINFO", "/proc/self/mountinfo")
	mnt := t.TempDir()
	state := filepath.Join(mnt, "state")
	c := metrics.NewCollector(state, nil)
	reports := func() map[string]string {
		t.Helper()
		r, err := c.Collect(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range r.Filesystems {
			out[f.Path] = f.FSType
		}
		return out
	}
	if fs := reports(); fs[mnt] != "" {
		t.Fatalf("%s reported before it is mounted: %v", mnt, fs)
	}
	reports() // kept
	if err := syscall.Mount("admq-metrics-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount a tmpfs: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if fs := reports(); fs[mnt] != "tmpfs" {
		t.Fatalf("the tmpfs mounted on %s is not reported: %v", mnt, fs)
	}
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if fs := reports(); fs[mnt] != "" {
		t.Fatalf("%s still reported after it was unmounted: %v", mnt, fs)
	}
}
