package main

import (
	"context"
	"sync"
	"time"

	agentmetrics "github.com/admq/admq-manager/agent/metrics"
)

// sharedMetrics is one host's metrics shared by every simulated agent: they
// all run on this host, and each sampling it for itself (reading a dozen
// /proc files) was a sixth of this process's CPU while the agents
// connected, CPU the manager beside it then lacked. A sample is handed out
// again while it is younger than maxAge. It measures no node processes:
// the simulated agents run none.
type sharedMetrics struct {
	c      *agentmetrics.Collector
	maxAge time.Duration

	mu  sync.Mutex
	r   agentmetrics.Report
	err error
	at  time.Time
}

func newSharedMetrics(stateDir string, maxAge time.Duration) *sharedMetrics {
	return &sharedMetrics{c: agentmetrics.NewCollector(stateDir, nil), maxAge: maxAge}
}

// Collect returns the last sample, or a new one when that is too old.
func (s *sharedMetrics) Collect(ctx context.Context) (agentmetrics.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at.IsZero() || time.Since(s.at) >= s.maxAge {
		s.r, s.err = s.c.Collect(ctx)
		s.at = time.Now()
	}
	return s.r, s.err
}
