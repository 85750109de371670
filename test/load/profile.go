package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"
)

// profiler fetches the manager's runtime profiles (its --pprof-addr) into
// a directory and summarises each by its top functions.
type profiler struct {
	base string // http://127.0.0.1:PORT/debug/pprof
	dir  string
	log  *slog.Logger
	hc   *http.Client

	mu  sync.Mutex
	wg  sync.WaitGroup
	top map[string][]string // profile name to its top lines
}

func newProfiler(addr, dir string, log *slog.Logger) *profiler {
	return &profiler{base: "http://" + addr + "/debug/pprof", dir: dir, log: log,
		hc: &http.Client{Transport: &http.Transport{Proxy: nil}}, top: make(map[string][]string)}
}

// fetch saves one profile (kind: heap, goroutine, or profile for CPU with
// seconds) as dir/name.pb.gz and records its top three entries.
func (p *profiler) fetch(ctx context.Context, name, kind string, seconds int) error {
	url := p.base + "/" + kind
	if seconds > 0 {
		url += fmt.Sprintf("?seconds=%d", seconds)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: HTTP %d %s", name, resp.StatusCode, b)
	}
	path := filepath.Join(p.dir, name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	lines, err := pprofTop(ctx, path, 3, "")
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.top[name] = lines
	p.mu.Unlock()
	return nil
}

// cpu takes a CPU profile of the next d in the background; wait collects it.
func (p *profiler) cpu(ctx context.Context, name string, d time.Duration) {
	p.wg.Go(func() {
		if err := p.fetch(ctx, name, "profile", max(1, int(d.Seconds()))); err != nil {
			p.log.Warn("CPU profile", "name", name, "err", err)
		}
	})
}

// self takes a CPU profile of this process (the simulated agents) for the
// next d in the background, beside a manager profile of the same phase, so
// that the report shows what the agents' side spends its CPU on.
func (p *profiler) self(ctx context.Context, name string, d time.Duration) {
	path := filepath.Join(p.dir, name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		p.log.Warn("agents' CPU profile", "err", err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		p.log.Warn("agents' CPU profile", "err", err)
		return
	}
	p.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			p.log.Warn("agents' CPU profile", "err", err)
			return
		}
		exe, err := os.Executable()
		if err != nil {
			return
		}
		lines, err := pprofTop(ctx, path, 3, exe)
		if err != nil {
			p.log.Warn("agents' CPU profile", "err", err)
			return
		}
		p.mu.Lock()
		p.top[name] = lines
		p.mu.Unlock()
	})
}

// snapshot takes a heap or goroutine profile now.
func (p *profiler) snapshot(ctx context.Context, name, kind string) {
	if err := p.fetch(ctx, name, kind, 0); err != nil {
		p.log.Warn("profile", "name", name, "err", err)
	}
}

// wait waits for the CPU profiles under way.
func (p *profiler) wait() { p.wg.Wait() }

// report adds each profile's top entries, in the order given.
func (p *profiler) report(rep *report, names ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		lines, ok := p.top[n]
		if !ok {
			continue
		}
		for i, l := range lines {
			label := ""
			if i == 0 {
				label = "pprof top3 " + n
			}
			rep.add(label, "%s", l)
		}
	}
}

// pprofTop runs `go tool pprof -top` on a profile (of binary, when not
// empty) and returns its first n entries, each "flat flat% sum% cum cum% function".
func pprofTop(ctx context.Context, path string, n int, binary string) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	args := []string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n)}
	if binary != "" {
		args = append(args, binary)
	}
	cmd := exec.CommandContext(cctx, "go", append(args, path)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go tool pprof %s: %w: %s", path, err, strings.TrimSpace(errb.String()))
	}
	return parsePprofTop(out.String(), n), nil
}

// parsePprofTop picks the entries below the "flat  flat%" header of
// `go tool pprof -top` output.
func parsePprofTop(out string, n int) []string {
	var lines []string
	inTable := false
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if !inTable {
			inTable = strings.HasPrefix(line, "flat") && strings.Contains(line, "flat%")
			continue
		}
		if line == "" {
			continue
		}
		lines = append(lines, strings.Join(strings.Fields(line), " "))
		if len(lines) == n {
			break
		}
	}
	return lines
}

// goroutines fetches the goroutine profile in its text form and records
// the three largest groups, each named by the first frame outside the
// runtime and sync packages (where the goroutine waits).
func (p *profiler) goroutines(ctx context.Context, name string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/goroutine?debug=1", nil)
	if err != nil {
		return
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		p.log.Warn("goroutine profile", "err", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(p.dir, name+".txt"), b, 0o644)
	lines := goroutineTop(string(b), 3)
	p.mu.Lock()
	p.top[name] = lines
	p.mu.Unlock()
}

// goroutineTop sums the goroutine profile's groups (debug=1 text) by the
// first frame outside runtime, sync and internal packages, and returns the
// n largest as "count function".
func goroutineTop(text string, n int) []string {
	counts := map[string]int{}
	total := 0
	var count int
	named := false
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			count, named = 0, false
		case line[0] >= '0' && line[0] <= '9' && strings.Contains(line, " @ "):
			fmt.Sscanf(line, "%d", &count)
			total += count
			named = false
		case strings.HasPrefix(line, "#") && count > 0 && !named:
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			fn := f[2]
			if i := strings.LastIndex(fn, "+0x"); i > 0 {
				fn = fn[:i]
			}
			if strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "sync.") || strings.HasPrefix(fn, "internal/") ||
				strings.HasPrefix(fn, "time.Sleep") || strings.HasPrefix(fn, "sync/") {
				continue
			}
			counts[fn] += count
			named = true
		}
	}
	type kv struct {
		fn string
		n  int
	}
	var all []kv
	for fn, c := range counts {
		all = append(all, kv{fn, c})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%d of %d  %s", all[i].n, total, all[i].fn))
	}
	return out
}
