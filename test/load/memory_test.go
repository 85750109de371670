package main

import (
	"testing"
	"time"
)

func TestMemParts(t *testing.T) {
	mt := parseMetrics(`go_memstats_sys_bytes 100e6
go_memstats_heap_sys_bytes 80e6
go_memstats_heap_idle_bytes 30e6
go_memstats_heap_released_bytes 10e6
go_memstats_heap_inuse_bytes 50e6
go_memstats_heap_alloc_bytes 40e6
go_memstats_stack_sys_bytes 8e6
go_memstats_next_gc_bytes 60e6
`)
	p, ok := readMemParts(mt, 110e6, 90e6)
	if !ok {
		t.Fatal("readMemParts: not ok with every figure present")
	}
	if p.file != 20e6 || p.heapFree != 20e6 || p.runtime != 12e6 || p.stacks != 8e6 {
		t.Errorf("file %v, heap free %v, runtime %v, stacks %v; want 20e6, 20e6, 12e6, 8e6", p.file, p.heapFree, p.runtime, p.stacks)
	}
	// 90 anonymous = 50 in use + 20 free + 8 stacks + 12 runtime + 0 outside.
	if got := p.outsideGo(); got != 0 {
		t.Errorf("outside Go %v, want 0", got)
	}
	// The heap grows from 40 allocated to the goal of 60, filling the 20
	// free first: no new pages.
	if got, ok := atGoal(managerSample{mem: p, memOK: true, mt: mt}); !ok || got != 110e6 {
		t.Errorf("at goal %v (ok %v), want 110e6", got, ok)
	}
	mt["go_memstats_next_gc_bytes"] = 70e6
	if got, _ := atGoal(managerSample{mem: p, memOK: true, mt: mt}); got != 120e6 {
		t.Errorf("at goal %v, want 120e6 (10e6 of new pages)", got)
	}
	delete(mt, "go_memstats_heap_alloc_bytes")
	if _, ok := readMemParts(mt, 110e6, 90e6); ok {
		t.Error("readMemParts: ok without heap_alloc")
	}
	if s := p.String(); s == "" || p.perAgent(p, 1000) == "" {
		t.Error("empty split")
	}
}

func TestRSSTrackSpan(t *testing.T) {
	var r rssTrack
	t0 := time.Now()
	for i, v := range []float64{5, 3, 9, 4} {
		r.at = append(r.at, t0.Add(time.Duration(i)*time.Second))
		r.rss = append(r.rss, v)
	}
	if lo, hi, ok := r.span(t0.Add(time.Second), t0.Add(2*time.Second)); !ok || lo != 3 || hi != 9 {
		t.Errorf("span of the middle two: %v-%v (ok %v), want 3-9", lo, hi, ok)
	}
	if _, _, ok := r.span(t0.Add(10*time.Second), t0.Add(20*time.Second)); ok {
		t.Error("span with no samples in it: ok")
	}
	if got := r.spanString(t0.Add(10*time.Second), t0.Add(20*time.Second)); got != "n/a" {
		t.Errorf("spanString without samples %q, want n/a", got)
	}
}
