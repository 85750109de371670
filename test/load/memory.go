package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// memParts splits the manager's resident memory (VmRSS) by who holds it,
// at one moment: the kernel's split into file pages and anonymous memory
// (/proc/PID/smaps_rollup), and the Go runtime's account of the anonymous
// part (its memstats, from /metrics, read at the same moment).
type memParts struct {
	rss  float64 // VmRSS
	file float64 // RSS - Anonymous: pages of the binary (code, read-only data) and of other mapped files
	anon float64 // Anonymous

	heapInUse float64 // spans holding objects, live or garbage not yet swept
	heapAlloc float64 // objects allocated and not yet freed, live or garbage
	heapFree  float64 // heap spans free but not returned to the kernel (heap_idle - heap_released)
	stacks    float64 // goroutine stacks (stack_sys)
	runtime   float64 // the runtime's own structures: span, cache and GC metadata, profiling buckets
}

// readMemParts fills the parts from one /metrics scrape and the kernel's
// figures; ok is false when some figure is missing.
func readMemParts(mt metrics, rss, anon float64) (memParts, bool) {
	p := memParts{rss: rss, anon: anon, file: rss - anon}
	sys, heapSys := mt.get("go_memstats_sys_bytes"), mt.get("go_memstats_heap_sys_bytes")
	idle, released := mt.get("go_memstats_heap_idle_bytes"), mt.get("go_memstats_heap_released_bytes")
	p.heapInUse, p.stacks = mt.get("go_memstats_heap_inuse_bytes"), mt.get("go_memstats_stack_sys_bytes")
	p.heapFree = idle - released
	p.heapAlloc = mt.get("go_memstats_heap_alloc_bytes")
	p.runtime = sys - heapSys - p.stacks
	for _, v := range []float64{rss, anon, sys, heapSys, idle, released, p.heapInUse, p.heapAlloc, p.stacks} {
		if v < 0 {
			return memParts{}, false
		}
	}
	return p, true
}

// outsideGo is the anonymous memory the Go runtime does not account for:
// chiefly SQLite's page caches and statements, which the pure-Go SQLite
// driver allocates from the kernel outside the Go heap. The Go figures
// count memory the runtime mapped, some of which may never have been
// touched, so this is a lower bound.
func (p memParts) outsideGo() float64 {
	return p.anon - p.heapInUse - p.heapFree - p.stacks - p.runtime
}

// atGoal estimates the RSS of a settled sample (s.mem read before its
// forced GC, s.mt after it) once the heap has grown to the goal that GC
// set: garbage fills the heap's free pages first, then new ones. Where a
// single RSS reading depends on how far the current GC cycle has got,
// this depends only on what is live: it is the level an idle manager
// keeps coming back to.
func atGoal(s managerSample) (float64, bool) {
	goal := s.mt.get("go_memstats_next_gc_bytes")
	if !s.memOK || goal < 0 {
		return 0, false
	}
	return s.mem.rss + max(0, goal-s.mem.heapAlloc-s.mem.heapFree), true
}

// String is the split in MB.
func (p memParts) String() string {
	return fmt.Sprintf("%s = files %s (binary's code and data) + anonymous %s (Go heap in use %s, Go heap free not returned %s, stacks %s, Go runtime %s, outside Go at least %s: SQLite)",
		mb(p.rss), mb(p.file), mb(p.anon), mb(p.heapInUse), mb(p.heapFree), mb(p.stacks), mb(p.runtime), mb(max(0, p.outsideGo())))
}

// perAgent is the growth of each part from base, per agent, in KB.
func (p memParts) perAgent(base memParts, n float64) string {
	kb := func(now, then float64) string { return fmt.Sprintf("%.1f", (now-then)/n/1024) }
	return fmt.Sprintf("%s = files %s + anonymous %s (stacks %s, Go runtime %s; the heap's part is not split: at the baseline part of the heap the runtime counts was never touched)",
		kb(p.rss, base.rss), kb(p.file, base.file), kb(p.anon, base.anon), kb(p.stacks, base.stacks), kb(p.runtime, base.runtime))
}

// compareIdle reports the manager's memory after the fan-out's idle wait
// against the steady state, like with like: both were read after the same
// idle time (RSS before a forced GC, heap after it). The old comparison,
// against the manager -settle after all connected, is printed beside it.
func (t *loadTest) compareIdle(idle managerSample, window time.Duration) {
	pct := func(now, then float64) string {
		if then <= 0 || now < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%+.1f%%", (now/then-1)*100)
	}
	s, e := t.steady, t.early
	label := fmt.Sprintf("manager RSS after idle wait %v vs steady state", t.opt.idleWait)
	if s.at == e.at {
		t.rep.add(label, "%s  (%s vs %s MB; steady state read %ss after all connected)", pct(idle.rss, s.rss), mb(idle.rss), mb(s.rss), secs(t.steadyFor))
	} else {
		t.rep.add(label, "%s  (%s vs %s MB: read %ss after the fan-out / %ss after all connected, RSS before a forced GC)",
			pct(idle.rss, s.rss), mb(idle.rss), mb(s.rss), secs(window), secs(s.at.Sub(t.connected.at)))
		t.rep.add(fmt.Sprintf("  old comparison, vs %ss after all connected", secs(t.opt.settle)), "%s  (vs %s MB, the connect's garbage still mid GC cycle: unlike the figure after the idle wait)", pct(idle.rss, e.rss), mb(e.rss))
	}
	if gi, ok := atGoal(idle); ok {
		if gs, ok := atGoal(s); ok {
			t.rep.add("  RSS once the heap reaches its GC goal, est., same comparison", "%s  (%s vs %s MB: RSS + next_gc after the forced GC - heap allocated - free heap pages kept; depends on what is live, not on the GC cycle's progress)",
				pct(gi, gs), mb(gi), mb(gs))
		}
	}
	t.rep.add("  RSS range sampled every 0.5 s: idle wait / steady state's idle", "%s / %s",
		t.rssT.spanString(t.afterFanOut.at, idle.at), t.rssT.spanString(t.connected.at, s.at))
	t.rep.add("  heap in use / live est. after forced GC, same comparison", "%s / %s  (%s vs %s MB / %s vs %s MB)",
		pct(idle.heap, s.heap), pct(idle.liveHeap, s.liveHeap), mb(idle.heap), mb(s.heap), mb(idle.liveHeap), mb(s.liveHeap))
	if idle.memOK {
		t.rep.add(fmt.Sprintf("manager RSS after idle wait %v, split (MB)", t.opt.idleWait), "%s", idle.mem)
	}
	steadyGCs := s.gcs - t.connected.gcs
	if s.at != e.at {
		steadyGCs-- // the forced one of the sample after -settle
	}
	t.rep.add("  GC cycles in the idle wait / before the steady state", "%.0f in %ss / %.0f in %ss  (forced ones not counted; a window without a cycle has not reached the heap's goal)",
		idle.gcs-t.afterFanOut.gcs, secs(window), steadyGCs, secs(s.at.Sub(t.connected.at)))
}

// rssTrack samples the manager's RSS twice a second, so that a figure read
// at one moment can be shown beside the range of its window: RSS rises
// with the heap towards the GC's goal and falls only when the runtime
// returns pages, so one reading depends on where the GC cycle stands.
type rssTrack struct {
	mu  sync.Mutex
	at  []time.Time
	rss []float64
}

// run samples pid until ctx ends or the process is gone.
func (r *rssTrack) run(ctx context.Context, pid int) {
	tk := time.NewTicker(500 * time.Millisecond)
	defer tk.Stop()
	for {
		v, err := processRSS(pid)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.at, r.rss = append(r.at, time.Now()), append(r.rss, v)
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

// span is the lowest and highest RSS sampled in [from, to]; ok is false
// when no sample fell in it.
func (r *rssTrack) span(from, to time.Time) (lo, hi float64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, at := range r.at {
		if at.Before(from) || at.After(to) {
			continue
		}
		if !ok {
			lo, hi, ok = r.rss[i], r.rss[i], true
		}
		lo, hi = min(lo, r.rss[i]), max(hi, r.rss[i])
	}
	return lo, hi, ok
}

// spanString is span in MB for a report, "n/a" without samples.
func (r *rssTrack) spanString(from, to time.Time) string {
	lo, hi, ok := r.span(from, to)
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%s-%s MB", mb(lo), mb(hi))
}
