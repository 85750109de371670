package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// latencies summarises a set of durations.
type latencies []time.Duration

// percentile returns the nearest-rank p-th percentile (0 < p <= 100); zero
// for an empty set.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	rank = max(0, min(rank, len(s)-1))
	return s[rank]
}

func (l latencies) max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// secs formats a duration in seconds.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// report collects labelled figures in the order they are measured and prints
// them as one aligned block at the end.
type report struct {
	mu   sync.Mutex
	rows [][2]string
}

func (r *report) add(label, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, [2]string{label, fmt.Sprintf(format, args...)})
}

func (r *report) print(w io.Writer, title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	width := 0
	for _, row := range r.rows {
		width = max(width, len(row[0]))
	}
	fmt.Fprintf(w, "\n===== %s =====\n", title)
	for _, row := range r.rows {
		fmt.Fprintf(w, "%-*s  %s\n", width, row[0], row[1])
	}
	fmt.Fprintln(w, strings.Repeat("=", len(title)+12))
}

// msgCounter counts log messages by level and text.
type msgCounter struct {
	mu     sync.Mutex
	counts map[string]int
	sample map[string]string
}

func newMsgCounter() *msgCounter {
	return &msgCounter{counts: make(map[string]int), sample: make(map[string]string)}
}

func (c *msgCounter) add(key, example string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[key]++
	if _, ok := c.sample[key]; !ok && example != "" {
		c.sample[key] = example
	}
}

// lines returns "count x key (e.g. example)", most frequent first.
func (c *msgCounter) lines(limit int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := c.counts[b] - c.counts[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var out []string
	for i, k := range keys {
		if i == limit {
			out = append(out, fmt.Sprintf("... and %d more kinds", len(keys)-limit))
			break
		}
		line := fmt.Sprintf("%d x %s", c.counts[k], k)
		if ex := c.sample[k]; ex != "" {
			line += " (e.g. " + truncate(ex, 160) + ")"
		}
		out = append(out, line)
	}
	return out
}

// errClass is the last part of an error chain's text ("connection
// refused", "session closed"), to group log lines by cause.
func errClass(err string) string {
	err = strings.TrimRight(err, `"`)
	if i := strings.LastIndex(err, ": "); i >= 0 {
		err = err[i+2:]
	}
	return truncate(err, 60)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
