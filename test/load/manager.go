package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// managerProc runs admq-manager as a child process on loopback ports.
type managerProc struct {
	bin        string
	dataDir    string
	httpAddr   string
	tunnelAddr string
	pprofAddr  string // --pprof-addr
	cpus       []int  // CPUs the manager may run on; nil: not pinned
	password   string
	logPath    string // the manager's stderr (JSON logs), appended across restarts
	log        *slog.Logger

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	caPin   string
}

// freeLoopbackAddr returns 127.0.0.1:PORT for a port that was free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// start launches the manager and waits until it prints its ready line and
// answers /health.
func (m *managerProc) start(ctx context.Context, api *apiClient, limit time.Duration) error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("manager log: %w", err)
	}
	defer logf.Close() // the child holds its own copy
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd, err := pinnedCommand(m.cpus, m.bin,
		"--data-dir", m.dataDir,
		"--http-addr", m.httpAddr,
		"--tunnel-addr", m.tunnelAddr,
		"--pprof-addr", m.pprofAddr,
		"--admin-password", m.password,
		"--log-format", "json",
	)
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd.Stdout = outW
	cmd.Stderr = logf
	cmd.Env = managerEnv()
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("start %s: %w", m.bin, err)
	}
	outW.Close()
	m.cmd = cmd
	m.exited = make(chan struct{})
	m.waitErr = nil
	exited := m.exited
	go func() {
		m.waitErr = cmd.Wait()
		close(exited)
	}()
	ready := make(chan string, 1)
	go func() {
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "admq-manager: console ") {
				select {
				case ready <- line:
				default:
				}
			} else {
				m.log.Info("manager stdout", "line", line)
			}
		}
	}()

	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case line := <-ready:
		if _, pin, ok := strings.Cut(line, "CA pin "); ok {
			m.caPin = strings.TrimSpace(pin)
		}
	case <-exited:
		return fmt.Errorf("manager exited before it was ready: %v\n%s", m.waitErr, m.logTail(20))
	case <-t.C:
		return fmt.Errorf("manager not ready after %v\n%s", limit, m.logTail(20))
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := api.health(hctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("manager exited: %v\n%s", m.waitErr, m.logTail(20))
		case <-t.C:
			return fmt.Errorf("manager /health failing after %v: %w", limit, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// servingSince returns when the manager, by its own log, began serving
// for the last time at or after since. The log's time stamps are the
// manager's: unlike the moment this process sees the ready line, they do
// not move when the simulated agents starve this process of CPU.
func (m *managerProc) servingSince(since time.Time) (time.Time, error) {
	at, err := m.logTimes("admq-manager serving", since)
	if err != nil {
		return time.Time{}, err
	}
	if len(at) == 0 {
		return time.Time{}, fmt.Errorf("no \"admq-manager serving\" line since %s in %s", since.Format(time.RFC3339Nano), m.logPath)
	}
	return at[len(at)-1], nil
}

// logTimes returns the time stamps of the manager's log lines with message
// msg at or after since, in the order logged.
func (m *managerProc) logTimes(msg string, since time.Time) ([]time.Time, error) {
	f, err := os.Open(m.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var at []time.Time
	want := []byte(`"msg":"` + msg + `"`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, want) {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(line, &rec) == nil && !rec.Time.Before(since) {
			at = append(at, rec.Time)
		}
	}
	return at, sc.Err()
}

// logCurve is when the manager logged the 50%, 90%, 99% and 100%-th of
// target "agent connected" lines since t0, by its own clock.
func (m *managerProc) logCurve(t0 time.Time, target int) ([4]time.Duration, error) {
	var out [4]time.Duration
	at, err := m.logTimes("agent connected", t0)
	if err != nil {
		return out, err
	}
	if len(at) < target {
		return out, fmt.Errorf("%d \"agent connected\" lines in the manager's log since %s, want %d", len(at), t0.Format(time.RFC3339Nano), target)
	}
	for i, f := range []float64{0.5, 0.9, 0.99, 1} {
		out[i] = at[max(0, int(math.Ceil(f*float64(target)))-1)].Sub(t0)
	}
	return out, nil
}

// managerEnv is our environment without ADMQ_* settings, so that only the
// flags we pass configure the manager, and without the agents' HOST_ETC.
func managerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADMQ_") && !strings.HasPrefix(kv, "HOST_ETC=") {
			env = append(env, kv)
		}
	}
	return env
}

func (m *managerProc) pid() int { return m.cmd.Process.Pid }

// alive reports an error once the manager has exited.
func (m *managerProc) alive() error {
	if m.exited == nil {
		return errors.New("manager not started")
	}
	select {
	case <-m.exited:
		return fmt.Errorf("manager exited unexpectedly: %v\n%s", m.waitErr, m.logTail(20))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to grace, then kills. It returns how long
// the manager took to exit. Safe to call when not running.
func (m *managerProc) stop(grace time.Duration) (time.Duration, error) {
	if m.cmd == nil || m.exited == nil {
		return 0, nil
	}
	select {
	case <-m.exited:
		return 0, nil
	default:
	}
	start := time.Now()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.log.Warn("signal manager", "err", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-m.exited:
		return time.Since(start), nil
	case <-t.C:
		_ = m.cmd.Process.Kill()
		<-m.exited
		return time.Since(start), fmt.Errorf("manager did not exit within %v of SIGTERM; killed", grace)
	}
}

// logTail returns the last n lines of the manager's log.
func (m *managerProc) logTail(n int) string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "manager log tail:\n  " + strings.Join(lines, "\n  ")
}

// logCounts counts the manager's WARN and ERROR log lines by message.
func (m *managerProc) logCounts() (*msgCounter, error) {
	f, err := os.Open(m.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := newMsgCounter()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			c.add("UNPARSED "+truncate(sc.Text(), 100), "")
			continue
		}
		level, _ := rec["level"].(string)
		if level != "WARN" && level != "ERROR" {
			continue
		}
		msg, _ := rec["msg"].(string)
		key, example := level+" "+msg, ""
		if e, ok := rec["err"]; ok {
			example = fmt.Sprint("err=", e)
			key += " [" + errClass(fmt.Sprint(e)) + "]"
		}
		c.add(key, example)
	}
	return c, sc.Err()
}

// managerSample is the manager's resource use at one moment.
type managerSample struct {
	at         time.Time
	rss        float64 // bytes, from /proc/PID/status VmRSS
	heap       float64 // go_memstats_heap_inuse_bytes
	liveHeap   float64 // live heap at the last GC, estimated from the GC goal
	goroutines float64 // go_goroutines
	cpu        float64 // process_cpu_seconds_total
	fds        float64 // process_open_fds
	connected  float64 // admq_tunnel_connected_agents
	clients    float64 // admq_tunnel_agent_client_conns
	gcs        float64 // GC cycles so far (go_gc_duration_seconds_count)
	// mem splits rss, from the same moment (ok false: not available).
	mem   memParts
	memOK bool
	mt    metrics
}

// settledSample samples the manager twice: RSS, its parts and CPU first,
// then heap and goroutines after a forced GC, since without a GC since the last
// change, heap in use still holds the garbage of what came before (and the
// GC's work would blur the CPU figure).
func (m *managerProc) settledSample(ctx context.Context, api *apiClient) (managerSample, error) {
	raw, err := m.sample(ctx, api)
	if err != nil {
		return raw, err
	}
	if err := m.collectGarbage(ctx); err != nil {
		m.log.Warn("could not make the manager collect garbage; heap figures may include garbage", "err", err)
		return raw, nil
	}
	s, err := m.sample(ctx, api)
	if err != nil {
		return raw, err
	}
	s.rss, s.cpu, s.mem, s.memOK, s.gcs = raw.rss, raw.cpu, raw.mem, raw.memOK, raw.gcs
	return s, nil
}

// collectGarbage has the manager run a full garbage collection (its
// pprof heap profile with gc=1 does), so that the next sample's heap is
// what is live plus the allocator's overhead, not garbage waiting for the
// next cycle.
func (m *managerProc) collectGarbage(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.pprofAddr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return fmt.Errorf("force a GC: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("force a GC: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force a GC: GET /debug/pprof/heap?gc=1: HTTP %d", resp.StatusCode)
	}
	return nil
}

// sample reads the manager's figures. It first drops the client's idle
// HTTP connections, whose server goroutines would count as the manager's.
func (m *managerProc) sample(ctx context.Context, api *apiClient) (managerSample, error) {
	if err := m.alive(); err != nil {
		return managerSample{}, err
	}
	api.close()
	if err := sleep(ctx, 200*time.Millisecond); err != nil {
		return managerSample{}, err
	}
	mt, err := api.metrics(ctx)
	if err != nil {
		return managerSample{}, err
	}
	rss, err := processRSS(m.pid())
	if err != nil {
		m.log.Warn("manager RSS unavailable", "err", err)
		rss = -1
	}
	var mem memParts
	memOK := false
	if anon, err := processAnon(m.pid()); err == nil && rss >= 0 {
		mem, memOK = readMemParts(mt, rss, anon)
	}
	return managerSample{
		at:         time.Now(),
		rss:        rss,
		heap:       mt.get("go_memstats_heap_inuse_bytes"),
		liveHeap:   liveHeapEstimate(mt),
		goroutines: mt.get("go_goroutines"),
		cpu:        mt.get("process_cpu_seconds_total"),
		fds:        mt.get("process_open_fds"),
		connected:  mt.get("admq_tunnel_connected_agents"),
		clients:    mt.get("admq_tunnel_agent_client_conns"),
		gcs:        mt.get("go_gc_duration_seconds_count"),
		mem:        mem,
		memOK:      memOK,
		mt:         mt,
	}, nil
}

// liveHeapEstimate is the heap that survived the last GC, from the GC's
// goal: next_gc = live * (1 + GOGC/100), ignoring the stacks and globals the
// goal also counts. Unlike heap in use it holds no garbage, but it is only
// as fresh as the last GC.
func liveHeapEstimate(mt metrics) float64 {
	next, gogc := mt.get("go_memstats_next_gc_bytes"), mt.get("go_gc_gogc_percent")
	if next < 0 || gogc <= 0 {
		return -1
	}
	return next / (1 + gogc/100)
}

func mb(bytes float64) string { return fmt.Sprintf("%.1f", bytes/(1<<20)) }

func (s managerSample) String() string {
	return fmt.Sprintf("RSS %s MB, heap in use %s MB, goroutines %.0f, open fds %.0f, connected agents %.0f, agent client conns %.0f",
		mb(s.rss), mb(s.heap), s.goroutines, s.fds, s.connected, s.clients)
}
