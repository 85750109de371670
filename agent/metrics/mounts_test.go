package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
)

// TestMountCacheKeepsUntilChangedOrOld checks when the kept filesystems are
// read again (the mount table is not changed here).
func TestMountCacheKeepsUntilChangedOrOld(t *testing.T) {
	reads := 0
	read := func(context.Context) ([]disk.PartitionStat, error) {
		reads++
		return []disk.PartitionStat{{Mountpoint: "/", Device: "/dev/sda1"}}, nil
	}
	ctx := t.Context()
	t0 := time.Now()

	unwatched := &mountCache{}
	for range 3 {
		if _, err := unwatched.get(ctx, t0, read); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 3 {
		t.Fatalf("without a watch the mounts were read %d times in 3 samples, want 3", reads)
	}

	reads = 0
	m := &mountCache{watch: watchMounts(mountTablePath())}
	if m.watch == nil {
		t.Skip("the mount table cannot be watched here")
	}
	for i := range 3 {
		list, err := m.get(ctx, t0.Add(time.Duration(i)*time.Second), read)
		if err != nil || len(list) != 1 {
			t.Fatal(list, err)
		}
	}
	if reads != 1 {
		t.Fatalf("unchanged mounts were read %d times in 3 samples, want 1", reads)
	}
	if _, err := m.get(ctx, t0.Add(mountsMaxAge), read); err != nil || reads != 2 {
		t.Fatalf("after %v: %d reads, err %v; want a second read", mountsMaxAge, reads, err)
	}
	// A clock set back reads again rather than keeping the list for ever.
	if _, err := m.get(ctx, t0, read); err != nil || reads != 3 {
		t.Fatalf("clock set back: %d reads, err %v; want a third read", reads, err)
	}

	// A failed read keeps nothing.
	boom := errors.New("boom")
	if _, err := m.get(ctx, t0.Add(2*mountsMaxAge), func(context.Context) ([]disk.PartitionStat, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if _, err := m.get(ctx, t0.Add(2*mountsMaxAge), read); err != nil || reads != 4 {
		t.Fatalf("after a failed read: %d reads, err %v; want a fourth read", reads, err)
	}
}
