package main

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// cpuPlan says which CPUs the simulated agents and the manager run on.
// Nil slices mean no pinning.
type cpuPlan struct {
	agents, manager []int
}

// planCPUs reads -agent-cpus: "none" pins nothing; "auto" gives the agents
// the upper half of the machine's CPUs (at least one) and, on a machine
// with fewer than two, pins nothing; otherwise a list such as "1" or
// "2-3,6". The manager may run on every CPU: the agents compete with it
// only on theirs, and cannot take more than those, however busy they are.
func planCPUs(spec string, ncpu int) (cpuPlan, error) {
	all := make([]int, ncpu)
	for i := range all {
		all[i] = i
	}
	switch spec {
	case "none":
		return cpuPlan{}, nil
	case "auto", "":
		if ncpu < 2 {
			return cpuPlan{}, nil
		}
		return cpuPlan{agents: all[ncpu-max(1, ncpu/2):], manager: all}, nil
	}
	cpus, err := parseCPUList(spec, ncpu)
	if err != nil {
		return cpuPlan{}, err
	}
	return cpuPlan{agents: cpus, manager: all}, nil
}

// parseCPUList parses "1", "0-3", "1,3-5" into sorted CPU numbers below ncpu.
func parseCPUList(spec string, ncpu int) ([]int, error) {
	seen := make([]bool, ncpu)
	for part := range strings.SplitSeq(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("-agent-cpus %q: want auto, none or a CPU list such as 1 or 2-3,6", spec)
		}
		if b >= ncpu {
			return nil, fmt.Errorf("-agent-cpus %q: this machine has CPUs 0-%d", spec, ncpu-1)
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	var out []int
	for c, ok := range seen {
		if ok {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-agent-cpus: empty list")
	}
	return out, nil
}

// cpuList formats CPU numbers as taskset's --cpu-list wants them.
func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// describe is the plan as the report prints it.
func (p cpuPlan) describe() string {
	if p.agents == nil {
		return fmt.Sprintf("not pinned (agents and manager share all %d CPUs; GOMAXPROCS %d here)", runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}
	return fmt.Sprintf("agents (this process) on CPU %s with GOMAXPROCS %d; manager on CPU %s", cpuList(p.agents), len(p.agents), cpuList(p.manager))
}
