package main

import (
	"strings"
	"testing"
)

func TestFileLimit(t *testing.T) {
	base := options{enrollConcurrency: 64, pingConcurrency: 64, apiClients: 16}
	for _, tc := range []struct {
		name   string
		agents int
		hard   uint64
		ok     bool
	}{
		// This machine's hard limit is 20,000: 10,000 agents must fit.
		{"10000 under 20000", 10000, 20000, true},
		{"1000 under 4096", 1000, 4096, true},
		{"18000 under 20000", 18000, 20000, true},
		{"19800 under 20000", 19800, 20000, false},
		{"1000 under 1024", 1000, 1024, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.agents = tc.agents
			err := checkFileLimit(o, tc.hard)
			if (err == nil) != tc.ok {
				t.Fatalf("checkFileLimit(%d agents, hard %d) = %v, want ok=%v (need %d)", tc.agents, tc.hard, err, tc.ok, fileNeed(o))
			}
			if err != nil && (!strings.Contains(err.Error(), "ulimit -Hn") || !strings.Contains(err.Error(), "-agents")) {
				t.Fatalf("message does not say how to raise the limit or how many agents fit: %v", err)
			}
		})
	}
	o := base
	o.agents = 10000
	if n := fileNeed(o); n > 11000 {
		t.Fatalf("10,000 agents need %d files: more than a socket per agent and a bounded extra", n)
	}
}
