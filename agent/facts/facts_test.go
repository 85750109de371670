package facts

import (
	"os"
	"runtime"
	"testing"
)

func TestCollectDescribesThisHost(t *testing.T) {
	dir := t.TempDir()
	f, err := Collect(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if f.Hostname != host {
		t.Errorf("hostname %q, want %q", f.Hostname, host)
	}
	if f.OS != runtime.GOOS || f.Arch != runtime.GOARCH || f.CPUs != runtime.NumCPU() {
		t.Errorf("os/arch/cpus = %s/%s/%d", f.OS, f.Arch, f.CPUs)
	}
	if f.MemoryTotal == 0 || f.MemoryAvailable == 0 || f.MemoryAvailable > f.MemoryTotal {
		t.Errorf("memory total %d available %d", f.MemoryTotal, f.MemoryAvailable)
	}
	if f.DiskTotal == 0 || f.DiskFree > f.DiskTotal || f.DiskPath != dir {
		t.Errorf("disk %s total %d free %d", f.DiskPath, f.DiskTotal, f.DiskFree)
	}
}

func TestCollectMissingDiskPath(t *testing.T) {
	if _, err := Collect(t.Context(), "/nonexistent/admq"); err == nil {
		t.Fatal("want an error for a missing disk path")
	}
}
