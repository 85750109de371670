package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinSelf confines every thread of this process (the simulated agents) to
// cpus and sets GOMAXPROCS to their number. Threads the runtime starts
// later inherit the mask of the thread that starts them, so setting every
// thread there is now covers them too.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	runtime.GOMAXPROCS(len(cpus))
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	return nil
}

// pinnedCommand returns a command that runs bin with args on cpus (nil: on
// whatever this process may use). A child inherits the CPU mask of the
// thread that forks it, which here is one of the agents' CPUs; taskset
// sets the manager's own mask before its runtime starts a thread.
func pinnedCommand(cpus []int, bin string, args ...string) (*exec.Cmd, error) {
	if cpus == nil {
		return exec.Command(bin, args...), nil
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return nil, fmt.Errorf("pinning the manager needs taskset (util-linux): %w; or run with -agent-cpus none", err)
	}
	return exec.Command(ts, append([]string{"--cpu-list", cpuList(cpus), filepath.Clean(bin)}, args...)...), nil
}
