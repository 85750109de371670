//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"time"
)

func setChildAttrs(*exec.Cmd) {}

func processRSS(int) (float64, error) { return 0, errors.New("RSS is read from /proc: Linux only") }

func processAnon(int) (float64, error) {
	return 0, errors.New("anonymous memory is read from /proc: Linux only")
}

func fileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("file limit check: Linux only")
}

func raiseFileLimit(uint64) error { return errors.New("file limit: Linux only") }

func processFileLimit(int) string { return "n/a" }

func selfCPU() time.Duration { return -1 }

func defaultAgentStateRoot() string { return "" }

func pinSelf([]int) error { return errors.New("pinning: Linux only") }

func pinnedCommand(cpus []int, bin string, args ...string) (*exec.Cmd, error) {
	if cpus != nil {
		return nil, errors.New("pinning: Linux only; run with -agent-cpus none")
	}
	return exec.Command(bin, args...), nil
}
