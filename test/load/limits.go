package main

import "fmt"

// fileNeed is how many open files one process of the run needs: the load
// process holds one socket per agent (a second one only for the moment an
// agent enrolls, bounded by the enroll concurrency, or when a frozen
// connection is kept open beside its successor), the manager one per
// agent too; both add their API connections and a margin for log files,
// SQLite, listeners and the runtime.
func fileNeed(o options) uint64 {
	const margin = 256
	enrolling := o.enrollConcurrency
	if enrolling == 0 {
		enrolling = o.agents
	}
	api := max(o.pingConcurrency, o.apiClients) + 8
	return uint64(o.agents + min(enrolling, o.agents) + api + margin)
}

// checkFileLimit says whether a process with the hard limit hard can raise
// its soft limit to need, and if not how to fix it. Go programs raise
// their soft limit to the hard one at start, the manager included, so the
// hard limit is what counts.
func checkFileLimit(o options, hard uint64) error {
	need := fileNeed(o)
	if hard >= need {
		return nil
	}
	extra := int(need) - o.agents // what does not grow with the agents
	fit := int(hard) - extra
	if o.enrollConcurrency == 0 { // every agent may be enrolling at once
		fit = (int(hard) - (extra - o.agents)) / 2
	}
	return fmt.Errorf("%d agents need about %d open files in this process and in the manager (one socket per agent on each side, plus enrollments under way, API connections and a margin), "+
		"but the hard limit (RLIMIT_NOFILE) is %d: raise it as root, e.g. `ulimit -Hn %d && ulimit -n %d` in the shell that runs make load "+
		"(or LimitNOFILE= in a systemd unit, nofile in /etc/security/limits.conf), or run with at most -agents %d",
		o.agents, need, hard, need, need, max(fit, 0))
}
