// Command load holds N in-process admq agents against one real admq-manager
// process, all on 127.0.0.1, and prints figures:
//
//   - how long N agents take to enroll with one join token and connect,
//     seen by the tunnel gauge and by the console API;
//   - what an idle connected agent costs the manager (RSS, Go heap in use,
//     goroutines, open files) and what it costs this process (agent side);
//   - a fan-out of manager-to-agent pings through the tunnel (latency
//     percentiles), the lazily dialed gRPC client connections it opens, and
//     that they close again after the manager's idle timeout;
//   - console API throughput on GET /server while N agents are connected;
//   - how long the manager takes to mark an agent offline when its socket
//     is cut (RST) and when it goes silent (socket open, nothing flows:
//     only the yamux keepalive can notice);
//   - the reconnect storm after a manager restart (agents come back by
//     themselves with capped, jittered backoff).
//
// It judges nothing about timing: it fails only when something does not
// work at all (the manager dies, an agent cannot enroll, a phase exceeds
// its bound). Everything is bounded by -timeout, and the manager process
// and temporary directories are cleaned up on every exit path, SIGINT
// included.
//
// Usage:
//
//	make build && go run ./test/load -manager-bin bin/admq-manager -agents 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/admq/admq-manager/agent/facts"
	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
)

type options struct {
	managerBin        string
	agents            int
	enrollConcurrency int
	timeout           time.Duration
	phaseTimeout      time.Duration
	settle            time.Duration
	pingConcurrency   int
	idleWait          time.Duration
	skipIdle          bool
	apiDuration       time.Duration
	apiClients        int
	skipRestart       bool
	logDir            string
	agentStateRoot    string
	realHostEtc       bool
	ownHostSamples    bool
	noFrameGrid       bool
	profileDir        string
	profileSeconds    time.Duration
	fleetConcurrency  int
	pageSize          int
	agentCPUs         string
	stormClients      int
	agentsGOGC        int
	configItems       int
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.StringVar(&o.managerBin, "manager-bin", "bin/admq-manager", "admq-manager binary to run (make build writes bin/admq-manager)")
	fs.IntVar(&o.agents, "agents", 1000, "number of in-process agents")
	fs.IntVar(&o.enrollConcurrency, "concurrency-enroll", 64, "agents enrolling and opening their first session at once (0: all at once). Real agents enroll independently, but the simulated ones share this process's CPU: at 10,000 agents, 256 and 1,000 at once were slower than 64 (their connections sent no ClientHello in time, their sessions looked silent)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.DurationVar(&o.phaseTimeout, "phase-timeout", 4*time.Minute, "bound on any one wait (all connected, reconnect storm)")
	fs.DurationVar(&o.settle, "settle", 6*time.Second, "wait after all agents connected before the first sample (first heartbeats are sent on connect; agents drop their idle gRPC stream after 5s); the steady state is read once they have idled for -idle-wait, as long as the wait after the fan-out it is compared with")
	fs.IntVar(&o.pingConcurrency, "ping-concurrency", 64, "concurrent GET /server/ping calls in the fan-out")
	fs.DurationVar(&o.idleWait, "idle-wait", 35*time.Second, "wait after the fan-out for the manager's idle gRPC client timeout (default 30s) to close client conns; the agents idle as long after connecting before the steady state is read")
	fs.BoolVar(&o.skipIdle, "skip-idle", false, "skip the idle wait after the fan-out, and read the steady state -settle after all connected")
	fs.DurationVar(&o.apiDuration, "api-duration", 5*time.Second, "length of the GET /server throughput test")
	fs.IntVar(&o.apiClients, "api-clients", 16, "concurrent clients in the GET /server throughput test")
	fs.BoolVar(&o.skipRestart, "skip-restart", false, "skip the manager restart and reconnect storm")
	fs.StringVar(&o.agentStateRoot, "agent-state-root", defaultAgentStateRoot(), "parent of the agents' temporary state dirs (default tmpfs /dev/shm when present; empty: $TMPDIR); the manager's data dir is always under $TMPDIR")
	fs.BoolVar(&o.realHostEtc, "real-host-etc", false, "let agents read the real /etc (on hosts without /etc/lsb-release, each heartbeat then runs /usr/bin/lsb_release)")
	fs.BoolVar(&o.noFrameGrid, "no-frame-grid", false, "agents send heartbeats and metrics reports when due, not on the 200 ms grid of the wall clock they share by default (all simulated agents share one clock, the grid's best case; real agents' clocks agree only as well as NTP keeps them)")
	fs.BoolVar(&o.ownHostSamples, "own-host-samples", false, "let every agent sample this host's metrics and read its fixed facts itself, as a real agent on its own host does (default: one shared sample per second for all, since they all run on this host)")
	fs.IntVar(&o.fleetConcurrency, "fleet-concurrency", 256, "concurrency of the fleet-wide operations (POST /fleet/operation) the program runs")
	fs.IntVar(&o.pageSize, "page-size", 100, "pageSize of the GET /server throughput test")
	fs.IntVar(&o.agentsGOGC, "agents-gogc", 400, "GOGC of this process: the simulated agents trade memory for CPU, so that they starve the manager (and themselves) less; the manager's GOGC is its own")
	fs.IntVar(&o.stormClients, "storm-api-clients", 4, "concurrent GET /server clients while agents reconnect after the manager restart (0: none)")
	fs.IntVar(&o.configItems, "config-items", 1000, "items of the node config file whose list the program hammers like GET /server (0: skip that phase)")
	fs.StringVar(&o.agentCPUs, "agent-cpus", "auto", "CPUs the simulated agents (this process) run on, with GOMAXPROCS to match, so that they cannot starve the manager: auto (the upper half, none on one CPU), none, or a list such as 1 or 2-3")
	fs.StringVar(&o.profileDir, "profile-dir", "", "keep the manager's pprof profiles (CPU while connecting, idle, fanning out and reconnecting; heap and goroutines when idle) in this directory (default: the log dir)")
	fs.DurationVar(&o.profileSeconds, "profile-seconds", 20*time.Second, "length of the CPU profiles taken while connecting and reconnecting")
	fs.StringVar(&o.logDir, "log-dir", "", "keep manager.log and agents.log in this directory (default: a temp dir, removed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %v", fs.Args())
	case o.agents < 1 || o.agents > 60000:
		return o, errors.New("-agents: want 1 to 60000")
	case o.enrollConcurrency < 0 || o.pingConcurrency < 1 || o.apiClients < 1:
		return o, errors.New("-concurrency-enroll must be >= 0; -ping-concurrency and -api-clients >= 1")
	case o.fleetConcurrency < 1 || o.fleetConcurrency > 1024:
		return o, errors.New("-fleet-concurrency: want 1 to 1024")
	case o.agentsGOGC < 10:
		return o, errors.New("-agents-gogc: want 10 or more")
	case o.pageSize < 1 || o.pageSize > 500:
		return o, errors.New("-page-size: want 1 to 500")
	case o.timeout <= 0 || o.phaseTimeout <= 0:
		return o, errors.New("-timeout and -phase-timeout must be positive")
	}
	return o, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == hammerFlag {
		os.Exit(runHammer(os.Args[2:]))
	}
	opt, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	debug.SetGCPercent(opt.agentsGOGC)

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop() // a second Ctrl-C kills at once; the kernel then kills the manager
	}()
	ctx, cancel := context.WithTimeout(sigCtx, opt.timeout)
	defer cancel()

	spec := opt.agentCPUs
	if runtime.GOOS != "linux" && spec == "auto" {
		spec = "none"
	}
	plan, err := planCPUs(spec, runtime.NumCPU())
	if err == nil && plan.agents != nil {
		err = pinSelf(plan.agents)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	t := &loadTest{opt: opt, log: log, rep: &report{}, cpus: plan}
	err = t.run(ctx)
	switch {
	case err == nil:
	case sigCtx.Err() != nil:
		err = fmt.Errorf("interrupted: %w", err)
	case ctx.Err() != nil:
		err = fmt.Errorf("-timeout %v reached: %w", opt.timeout, err)
	}
	title := fmt.Sprintf("admq load test: %d agents", opt.agents)
	if err != nil {
		title += " (INCOMPLETE)"
	}
	t.rep.print(os.Stdout, title)
	if err != nil {
		log.Error("load test failed", "err", err)
		os.Exit(1)
	}
}

// loadTest is one run: a manager, a fleet of agents and the figures.
type loadTest struct {
	opt      options
	log      *slog.Logger
	rep      *report
	mgr      *managerProc
	api      *apiClient
	fleet    *fleet
	agentLog *msgCounter
	base     managerSample // manager before any agent
	// early is the manager -settle after all agents connected; steady,
	// once they have idled for steadyFor (the idle wait, unless skipped).
	early, steady managerSample
	steadyFor     time.Duration
	// connected is the manager once all agents connected; afterFanOut,
	// right after the fan-out (plain samples: no forced GC).
	connected, afterFanOut managerSample
	rssT                   rssTrack // the first manager process's RSS
	prof                   *profiler
	cpus                   cpuPlan
}

const adminPassword = "load-test-admin-pw"

func (t *loadTest) run(ctx context.Context) error {
	n := t.opt.agents
	t.rep.add("agents", "%d", n)
	t.rep.add("CPUs (runtime.NumCPU)", "%d", runtime.NumCPU())
	t.rep.add("Go", "%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	t.rep.add("CPU pinning", "%s", t.cpus.describe())
	t.rep.add("GOGC of the simulated agents (this process)", "%d", t.opt.agentsGOGC)

	soft, hard, lerr := fileLimit()
	if lerr != nil {
		t.log.Warn("cannot check RLIMIT_NOFILE", "err", lerr)
		t.rep.add("RLIMIT_NOFILE load (soft/hard)", "n/a")
	} else {
		if err := checkFileLimit(t.opt, hard); err != nil {
			return err
		}
		if need := fileNeed(t.opt); soft < need {
			if err := raiseFileLimit(hard); err != nil {
				return fmt.Errorf("raise RLIMIT_NOFILE soft limit from %d to %d: %w", soft, hard, err)
			}
			soft = hard
		}
		t.rep.add("RLIMIT_NOFILE load (soft/hard)", "%d/%d  (need about %d)", soft, hard, fileNeed(t.opt))
	}
	bin, err := filepath.Abs(t.opt.managerBin)
	if err != nil {
		return err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return fmt.Errorf("-manager-bin %s: not a file (run make build first): %v", bin, err)
	}

	tmp, err := os.MkdirTemp("", "admq-load-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			t.log.Warn("remove temp dir", "dir", tmp, "err", rerr)
		}
	}()
	logDir := tmp
	if t.opt.logDir != "" {
		logDir = t.opt.logDir
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
	}

	httpAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	tunnelAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	pprofAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	profDir := logDir
	if t.opt.profileDir != "" {
		profDir = t.opt.profileDir
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return err
		}
	}
	t.prof = newProfiler(pprofAddr, profDir, t.log)
	defer func() {
		t.prof.wait()
		t.prof.report(t.rep, "cpu-connect", "agents-cpu-connect", "heap-idle", "goroutines-idle", "cpu-idle", "cpu-fanout", "cpu-api", "cpu-config-items", "cpu-reconnect", "agents-cpu-reconnect")
		if profDir != tmp {
			t.rep.add("pprof profiles in", "%s", profDir)
		}
	}()
	t.api = newAPIClient(httpAddr)
	defer t.api.close()
	t.mgr = &managerProc{
		bin: bin, dataDir: filepath.Join(tmp, "manager"), httpAddr: httpAddr, tunnelAddr: tunnelAddr, pprofAddr: pprofAddr,
		cpus: t.cpus.manager, password: adminPassword, logPath: filepath.Join(logDir, "manager.log"), log: t.log,
	}
	t.log.Info("starting manager", "bin", bin, "http", httpAddr, "tunnel", tunnelAddr, "logs", logDir)

	// Runs after the manager has stopped (defers run last first).
	defer t.reportLogs()
	defer func() {
		d, serr := t.mgr.stop(15 * time.Second)
		if serr != nil {
			t.log.Warn("stop manager", "err", serr)
		} else if d > 0 {
			t.log.Info("manager stopped", "took", d.Round(time.Millisecond))
		}
	}()
	start := time.Now()
	if err := t.mgr.start(ctx, t.api, time.Minute); err != nil {
		return err
	}
	t.rep.add("manager start (s)", "%s", secs(time.Since(start)))
	trackCtx, stopTrack := context.WithCancel(ctx)
	defer stopTrack()
	go t.rssT.run(trackCtx, t.mgr.pid())
	t.rep.add("RLIMIT_NOFILE manager (soft/hard)", "%s", processFileLimit(t.mgr.pid()))

	// 1. Baseline. One GC more than settledSample's: the start's sync.Pool
	// contents (its migrations' parser keeps 4 MiB buffers there, 16 MiB
	// in all) go only at the second, and counted in the baseline they
	// would be subtracted from every agent's heap figure.
	if err := t.mgr.collectGarbage(ctx); err != nil {
		t.log.Warn("could not make the manager collect garbage", "err", err)
	}
	if t.base, err = t.mgr.settledSample(ctx, t.api); err != nil {
		return err
	}
	t.log.Info("manager baseline", "sample", t.base.String())
	t.rep.add("manager RSS baseline (MB)", "%s", mb(t.base.rss))
	t.rep.add("manager heap figures", "heap and goroutines read right after a forced full GC (pprof heap?gc=1), RSS before it; not right after the fan-out")
	t.rep.add("manager heap in use baseline (MB)", "%s", mb(t.base.heap))
	t.rep.add("manager goroutines baseline", "%.0f", t.base.goroutines)

	// 2. Credentials.
	if err := t.api.login(ctx, "admin", adminPassword); err != nil {
		return err
	}
	token, pin, err := t.api.createJoinToken(ctx, n, time.Hour)
	if err != nil {
		return err
	}

	// 3. Agents.
	agentLogFile, err := os.Create(filepath.Join(logDir, "agents.log"))
	if err != nil {
		return err
	}
	defer agentLogFile.Close()
	t.agentLog = newMsgCounter()
	agentLogger := slog.New(countingHandler{
		Handler: slog.NewTextHandler(agentLogFile, &slog.HandlerOptions{Level: slog.LevelWarn}),
		c:       t.agentLog,
	})
	stateRoot, err := os.MkdirTemp(t.opt.agentStateRoot, "admq-load-agents-")
	if err != nil {
		return fmt.Errorf("agent state dirs: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(stateRoot); rerr != nil {
			t.log.Warn("remove agent state dirs", "dir", stateRoot, "err", rerr)
		}
	}()
	t.rep.add("agent state dirs under", "%s", filepath.Dir(stateRoot))
	if !t.opt.realHostEtc {
		etc := filepath.Join(stateRoot, "etc")
		if err := fakeHostEtc(etc); err != nil {
			return fmt.Errorf("fake HOST_ETC: %w", err)
		}
		os.Setenv("HOST_ETC", etc)
		defer os.Unsetenv("HOST_ETC")
		t.rep.add("agent facts HOST_ETC", "%s  (no lsb_release exec per heartbeat; -real-host-etc to disable)", etc)
	}
	base := agenttunnel.Config{ManagerAddr: tunnelAddr, Token: token, CAPin: pin}
	if t.opt.noFrameGrid {
		base.FrameGrid = -1
		t.rep.add("agent frame grid", "none: each heartbeat and report goes out when due (-no-frame-grid)")
	} else {
		t.rep.add("agent frame grid", "200 ms of the wall clock, one clock for all simulated agents (its best case; -no-frame-grid: none)")
	}
	if !t.opt.ownHostSamples {
		base.Metrics = newSharedMetrics(stateRoot, time.Second)
		base.HostFacts = new(facts.Host)
		t.rep.add("agent host samples", "shared: one metrics sample per second and one read of the host's fixed facts for all agents (-own-host-samples: each agent its own)")
	}
	if t.fleet, err = newFleet(ctx, base, n, stateRoot, agentLogger); err != nil {
		return err
	}
	agents := t.fleet // t.fleet is cleared once the agents are stopped
	defer func() {
		if serr := agents.stop(15 * time.Second); serr != nil {
			t.log.Warn("stop agents", "err", serr)
		}
	}()
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()

	if err := t.connectAll(ctx); err != nil {
		return err
	}
	// 4. Steady state.
	if err := t.steadyState(ctx, &ms0, g0); err != nil {
		return err
	}
	// 5. Fan-out.
	if err := t.fanOut(ctx); err != nil {
		return err
	}
	// 5b. The same reach as one API call.
	if err := t.fleetWide(ctx, "fleet ping"); err != nil {
		return err
	}
	// 6. API throughput.
	if err := t.apiThroughput(ctx); err != nil {
		return err
	}
	if t.opt.configItems > 0 {
		if err := t.configItems(ctx, tmp, t.opt.configItems); err != nil {
			return fmt.Errorf("config items: %w", err)
		}
	}
	// 7. Lost agents.
	if err := t.lostAgents(ctx); err != nil {
		return err
	}
	// 8. Reconnect storm.
	if t.opt.skipRestart {
		t.log.Info("skipping the restart (-skip-restart)")
	} else if err := t.restartStorm(ctx); err != nil {
		return err
	}
	return t.allLeave(ctx)
}

// The manager's tunnel RPC latency histogram and its direction labels.
const (
	rpcHist   = "admq_tunnel_rpc_duration_seconds"
	toAgent   = `direction="manager_to_agent"`
	toManager = `direction="agent_to_manager"`
)

// addRPC reports a latency histogram's mean and estimated percentiles.
func (t *loadTest) addRPC(label string, h histogram) {
	if h.count <= 0 {
		return
	}
	t.rep.add(label+" mean/p50/p99 (ms)", "%.2f / %.2f / %.2f  (%.0f calls; percentiles interpolated in buckets)",
		h.mean()*1000, h.quantile(0.5)*1000, h.quantile(0.99)*1000, h.count)
}

// waitFor polls cond every interval until it holds, the manager dies, an
// agent fails for good, ctx ends or limit passes. progress, if not nil, is
// logged every 5s.
func (t *loadTest) waitFor(ctx context.Context, what string, every, limit time.Duration, cond func(context.Context) (bool, error), progress func() string) error {
	deadline := time.Now().Add(limit)
	lastLog := time.Now()
	var lastErr error
	for {
		if err := t.mgr.alive(); err != nil {
			return err
		}
		if t.fleet != nil {
			if fails := t.fleet.failed(); len(fails) > 0 {
				return fmt.Errorf("waiting for %s: %d agents stopped for good; first: %w", what, len(fails), fails[0])
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not done after %v (last error: %v)", what, limit, lastErr)
		}
		if progress != nil && time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			t.log.Info("waiting for "+what, "progress", progress(), "lastErr", lastErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(every):
		}
	}
}

// connectCurve polls the connected-agents gauge every 100ms from t0 until it
// reaches target, returning when it first reached 50%, 90%, 99% and 100%.
// last, if not nil, is kept at the gauge's last value.
func (t *loadTest) connectCurve(ctx context.Context, what string, t0 time.Time, target int, last *atomic.Int64) ([4]time.Duration, error) {
	marks := [4]float64{0.5, 0.9, 0.99, 1}
	var at [4]time.Duration
	if last == nil {
		last = new(atomic.Int64)
	}
	err := t.waitFor(ctx, what, 100*time.Millisecond, t.opt.phaseTimeout, func(ctx context.Context) (bool, error) {
		m, err := t.api.metrics(ctx)
		if err != nil {
			return false, err
		}
		c := m.get("admq_tunnel_connected_agents")
		last.Store(int64(c))
		for i, f := range marks {
			if at[i] == 0 && c >= float64(target)*f {
				at[i] = time.Since(t0)
			}
		}
		return c >= float64(target), nil
	}, func() string { return fmt.Sprintf("%d/%d connected", last.Load(), target) })
	return at, err
}

// onlineAfter polls GET /server?agentStatus=online every 100ms until its
// total reaches target, returning the time since t0. It starts asking once
// the connected-agents gauge (last, from connectCurve) reached 90% of
// target: each such list costs the manager a look at every server's
// status, and asked all along it was 7% of the manager's CPU while 10,000
// agents connected, CPU taken from what is measured.
func (t *loadTest) onlineAfter(ctx context.Context, t0 time.Time, target int, last *atomic.Int64) (time.Duration, error) {
	err := t.waitFor(ctx, "API online total", 100*time.Millisecond, t.opt.phaseTimeout, func(ctx context.Context) (bool, error) {
		if last.Load()*10 < int64(target)*9 {
			return false, nil
		}
		total, err := t.api.onlineTotal(ctx)
		return total >= target, err
	}, nil)
	return time.Since(t0), err
}

func curveString(at [4]time.Duration) string {
	return fmt.Sprintf("%s / %s / %s / %s", secs(at[0]), secs(at[1]), secs(at[2]), secs(at[3]))
}

// connectAll starts every agent and measures until all are connected.
func (t *loadTest) connectAll(ctx context.Context) error {
	n := t.opt.agents
	t.log.Info("starting agents", "n", n, "enrollConcurrency", t.opt.enrollConcurrency)
	cpu0 := selfCPU()
	t.prof.cpu(ctx, "cpu-connect", t.opt.profileSeconds)
	t.prof.self(ctx, "agents-cpu-connect", t.opt.profileSeconds)
	t.fleet.startAll(t.opt.enrollConcurrency)
	t0 := t.fleet.startedAt
	var curve [4]time.Duration
	var online time.Duration
	var gauge atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		curve, err = t.connectCurve(gctx, "all agents connected", t0, n, &gauge)
		return err
	})
	g.Go(func() (err error) {
		online, err = t.onlineAfter(gctx, t0, n, &gauge)
		return err
	})
	if err := g.Wait(); err != nil {
		t.reportEnroll()
		return err
	}
	// Every agent has had its Connected callback by now or very soon.
	select {
	case <-t.fleet.allFirst:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("the manager counts %d connected agents but only %d reported a session", n, t.fleet.connected.Load())
	}
	limit := "none"
	if t.opt.enrollConcurrency > 0 {
		limit = fmt.Sprint(t.opt.enrollConcurrency)
	}
	t.rep.add("enroll concurrency limit", "%s", limit)
	if lc, err := t.mgr.logCurve(t0, n); err != nil {
		t.log.Warn("connect curve from the manager's log", "err", err)
	} else {
		t.rep.add("connect 50/90/99/100%, by the manager's log (s)", "%s", curveString(lc))
	}
	t.rep.add("connect all, gauge (s)", "%s", secs(curve[3]))
	t.rep.add("connect 50/90/99/100%, gauge (s)", "%s", curveString(curve))
	t.rep.add("connect all, API online total (s)", "%s  (asked every 100 ms once the gauge passed 90%%)", secs(online))
	t.rep.add("connect rate (agents/s)", "%.0f", float64(n)/curve[3].Seconds())
	t.reportEnroll()
	s, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	t.connected = s
	t.addRPC("Enroll RPC, manager histogram", s.mt.histogram(rpcHist, toManager, `Enroll"`))
	t.addRPC("Heartbeat RPC, manager histogram", s.mt.histogram(rpcHist, toManager, `Heartbeat"`))
	if s.cpu >= 0 && t.base.cpu >= 0 && cpu0 >= 0 {
		// Both processes share the machine: near NumCPU*wall means CPU-bound.
		t.rep.add("CPU used while connecting, manager + load (s)", "%.1f + %.1f  (wall %s s x %d CPUs = %.1f)",
			s.cpu-t.base.cpu, (selfCPU() - cpu0).Seconds(), secs(curve[3]), runtime.NumCPU(), curve[3].Seconds()*float64(runtime.NumCPU()))
	}
	t.log.Info("all agents connected", "gauge", curve[3].Round(time.Millisecond), "apiOnline", online.Round(time.Millisecond))
	return nil
}

func (t *loadTest) reportEnroll() {
	t.fleet.mu.Lock()
	l := append(latencies(nil), t.fleet.enrollTime...)
	e := append(latencies(nil), t.fleet.enrollRPC...)
	s := append(latencies(nil), t.fleet.sessionUp...)
	t.fleet.mu.Unlock()
	if len(l) > 0 {
		t.rep.add("enroll+first session per agent p50/p99/max (ms)", "%s / %s / %s  (%d agents)",
			ms(l.percentile(50)), ms(l.percentile(99)), ms(l.max()), len(l))
	}
	if len(e) > 0 {
		t.rep.add("  of which enrollment session p50/p99 (ms)", "%s / %s", ms(e.percentile(50)), ms(e.percentile(99)))
		t.rep.add("  of which first mTLS session p50/p99 (ms)", "%s / %s", ms(s.percentile(50)), ms(s.percentile(99)))
	}
}

// steadyState measures what connected, idle agents cost. It samples the
// manager twice: -settle after all connected (the figure earlier runs
// called steady state: then the connect's garbage is still mid GC cycle),
// and once the agents have idled as long as the fan-out's idle wait, which
// is the steady state the idle wait after the fan-out is compared with.
func (t *loadTest) steadyState(ctx context.Context, ms0 *runtime.MemStats, g0 int) error {
	n := float64(t.opt.agents)
	t.log.Info("settling", "for", t.opt.settle)
	if err := sleep(ctx, t.opt.settle); err != nil {
		return err
	}
	early, err := t.mgr.settledSample(ctx, t.api)
	if err != nil {
		return err
	}
	s := early
	settled := t.opt.settle
	// The figure after the fan-out is read some fanOutProfile+idleWait
	// after it ended: the steady state, as long after the connect.
	if rest := fanOutProfile + t.opt.idleWait - t.opt.settle; !t.opt.skipIdle && rest > 0 {
		t.log.Info("idling like the fan-out's idle wait", "for", rest)
		if err := sleep(ctx, rest); err != nil {
			return err
		}
		if s, err = t.mgr.settledSample(ctx, t.api); err != nil {
			return err
		}
		settled += rest
	}
	t.steady, t.steadyFor = s, settled
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	g1 := runtime.NumGoroutine()
	t.log.Info("steady state", "manager", s.String())
	t.rep.add("manager steady state", "%ss idle after all connected (as long as the fan-out's profile and idle wait after it); RSS read before a forced GC, heap after it", secs(settled))
	t.rep.add("manager RSS connected (MB)", "%s", mb(s.rss))
	t.rep.add("manager RSS per agent (KB)", "%.1f", (s.rss-t.base.rss)/n/1024)
	if s.memOK && t.base.memOK {
		t.rep.add("manager RSS connected, split (MB)", "%s", s.mem)
		t.rep.add("manager RSS per agent, split (KB)", "%s", s.mem.perAgent(t.base.mem, n))
	}
	if s.at != early.at {
		t.rep.add("manager RSS "+secs(t.opt.settle)+"s after all connected (MB)", "%s, per agent %.1f KB  (the old steady state: the connect's garbage still mid GC cycle; %.0f GC cycles from there to the steady state)",
			mb(early.rss), (early.rss-t.base.rss)/n/1024, s.gcs-early.gcs-1)
		if s.cpu >= 0 && early.cpu >= 0 {
			t.rep.add("manager CPU while idle before the fan-out (% of one core)", "%.2f  (from %ss to %ss after all connected; the reconnect spread still settling)",
				(s.cpu-early.cpu)/s.at.Sub(early.at).Seconds()*100, secs(t.opt.settle), secs(settled))
		}
	}
	t.rep.add("manager heap in use connected (MB)", "%s", mb(s.heap))
	t.rep.add("manager heap in use per agent (KB)", "%.1f", (s.heap-t.base.heap)/n/1024)
	if s.liveHeap >= 0 && t.base.liveHeap >= 0 {
		t.rep.add("manager live heap est. connected (MB)", "%s  (next_gc/(1+GOGC/100); baseline %s)", mb(s.liveHeap), mb(t.base.liveHeap))
		t.rep.add("manager live heap est. per agent (KB)", "%.1f", (s.liveHeap-t.base.liveHeap)/n/1024)
	}
	if t.opt.skipIdle {
		t.idleProfiles(ctx)
	} // else after the fan-out's idle wait: their garbage (some MB at 10,000 agents) would count in one window only
	t.rep.add("manager goroutines connected", "%.0f", s.goroutines)
	t.rep.add("manager goroutines per agent", "%.2f", (s.goroutines-t.base.goroutines)/n)
	t.rep.add("manager open fds connected", "%.0f", s.fds)
	t.rep.add("agent side heap in use per agent (KB)", "%.1f", (float64(ms1.HeapInuse)-float64(ms0.HeapInuse))/n/1024)
	t.rep.add("agent side goroutines per agent", "%.2f", float64(g1-g0)/n)
	t.early = early
	return nil
}

// idleProfiles takes the manager's heap and goroutine profiles while the
// agents are idle.
func (t *loadTest) idleProfiles(ctx context.Context) {
	t.prof.snapshot(ctx, "heap-idle", "heap")
	t.prof.goroutines(ctx, "goroutines-idle")
}

// fanOutProfile is the length of the fan-out's CPU profile, which the
// idle wait after it waits for before it begins.
const fanOutProfile = 10 * time.Second

// fanOut pings every agent through the manager, then watches the lazily
// dialed gRPC client conns close when idle.
func (t *loadTest) fanOut(ctx context.Context) error {
	ids := t.fleet.ids()
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("agent %d has no server id", i)
		}
	}
	before, err := t.api.metrics(ctx)
	if err != nil {
		return err
	}
	t.log.Info("ping fan-out", "calls", len(ids), "concurrency", t.opt.pingConcurrency)
	lat := make(latencies, len(ids))
	rtt := make(latencies, len(ids))
	var errs atomic.Int64
	var firstErr error
	var errOnce sync.Once
	next := make(chan int)
	var wg sync.WaitGroup
	t.prof.wait() // one CPU profile at a time: the connect one may still run
	t.prof.cpu(ctx, "cpu-fanout", fanOutProfile)
	start := time.Now()
	for range t.opt.pingConcurrency {
		wg.Go(func() {
			for i := range next {
				st := time.Now()
				r, err := t.api.ping(ctx, ids[i])
				lat[i], rtt[i] = time.Since(st), r
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
feed:
	for i := range ids {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	total := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	after, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	t.afterFanOut = after
	pingRPC := after.mt.histogram(rpcHist, toAgent, `Ping"`).minus(before.histogram(rpcHist, toAgent, `Ping"`))

	t.rep.add("ping fan-out total (s)", "%s  (%d calls, concurrency %d)", secs(total), len(ids), t.opt.pingConcurrency)
	t.rep.add("ping fan-out rate (calls/s)", "%.0f", float64(len(ids))/total.Seconds())
	t.rep.add("ping HTTP latency p50/p90/p99/max (ms)", "%s / %s / %s / %s", ms(lat.percentile(50)), ms(lat.percentile(90)), ms(lat.percentile(99)), ms(lat.max()))
	t.rep.add("ping tunnel RTT (manager) p50/p99 (ms)", "%s / %s", ms(rtt.percentile(50)), ms(rtt.percentile(99)))
	t.addRPC("ping RPC, manager histogram", pingRPC)
	t.rep.add("ping errors", "%d", errs.Load())
	if firstErr != nil {
		t.rep.add("ping first error", "%s", truncate(firstErr.Error(), 160))
	}
	t.rep.add("agent client conns after fan-out", "%.0f", after.clients)
	t.rep.add("manager RSS after fan-out (MB)", "%s", mb(after.rss))
	t.rep.add("manager heap in use after fan-out (MB)", "%s  (live est. %s)", mb(after.heap), mb(after.liveHeap))
	t.rep.add("manager goroutines after fan-out", "%.0f", after.goroutines)
	t.log.Info("fan-out done", "total", total.Round(time.Millisecond), "errors", errs.Load(), "manager", after.String())

	if t.opt.skipIdle {
		t.log.Info("skipping the idle wait (-skip-idle)")
		return nil
	}
	t.log.Info("waiting for idle client conns to close", "for", t.opt.idleWait)
	t.prof.wait() // the fan-out's profile; then one of the idle manager
	// The steady idle figure starts here, some seconds after the fan-out
	// ended; the window from its end is reported too, aftermath included.
	quiet, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	if w := t.opt.idleWait - 5*time.Second; w >= time.Second {
		t.prof.cpu(ctx, "cpu-idle", w)
	}
	if err := sleep(ctx, t.opt.idleWait); err != nil {
		return err
	}
	idleRaw, err := t.mgr.sample(ctx, t.api) // for the CPU figure: no forced GC in the window
	if err != nil {
		return err
	}
	idle, err := t.mgr.settledSample(ctx, t.api)
	if err != nil {
		return err
	}
	t.idleProfiles(ctx)
	window := idleRaw.at.Sub(after.at).Seconds()
	label := fmt.Sprintf("after idle wait %v", t.opt.idleWait)
	t.rep.add("agent client conns "+label, "%.0f", idle.clients)
	t.rep.add("manager RSS "+label+" (MB)", "%s", mb(idle.rss))
	t.rep.add("manager heap in use "+label+" (MB)", "%s  (live est. %s)", mb(idle.heap), mb(idle.liveHeap))
	t.rep.add("manager goroutines "+label, "%.0f", idle.goroutines)
	t.compareIdle(idle, idleRaw.at.Sub(after.at))
	if steady := idleRaw.at.Sub(quiet.at).Seconds(); idleRaw.cpu >= 0 && quiet.cpu >= 0 && steady > 0 {
		t.rep.add("manager CPU while idle (% of one core)", "%.2f  (over the last %.0fs, from %.0fs after the fan-out; heartbeats, reports, keepalives)",
			(idleRaw.cpu-quiet.cpu)/steady*100, steady, quiet.at.Sub(after.at).Seconds())
	}
	if idleRaw.cpu >= 0 && after.cpu >= 0 && window > 0 {
		t.rep.add("manager CPU since the fan-out ended (% of one core)", "%.2f  (over %.0fs, the fan-out's aftermath included)", (idleRaw.cpu-after.cpu)/window*100, window)
	}
	t.log.Info("after idle wait", "manager", idle.String())
	return nil
}

// hammer runs do from clients goroutines, each as fast as it answers,
// until stop is closed or ctx ends, and returns every call's latency and
// the calls that failed.
func hammer(ctx context.Context, clients int, stop <-chan struct{}, do func(context.Context) error) (all latencies, failed int64, firstErr error) {
	per := make([]latencies, clients)
	var errs atomic.Int64
	var errOnce sync.Once
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				st := time.Now()
				err := do(ctx)
				per[c] = append(per[c], time.Since(st))
				if err != nil && ctx.Err() == nil {
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
	wg.Wait()
	for _, l := range per {
		all = append(all, l...)
	}
	return all, errs.Load(), firstErr
}

// timedHammer GETs path from the API clients' own process (hammer.go) for
// d, with the manager's CPU seconds and a CPU profile named prof over the
// same time; it reports under label.
func (t *loadTest) timedHammer(ctx context.Context, label, prof string, d time.Duration, path string) error {
	before, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	t.prof.wait()
	t.prof.cpu(ctx, prof, d)
	all, elapsed, failed, firstErr, err := t.hammerProcess(ctx, path, d)
	if err != nil {
		return err
	}
	after, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	label = fmt.Sprintf("%s, %d clients", label, t.opt.apiClients)
	t.rep.add(label+" (req/s)", "%.0f  (%d requests in %s s)", float64(len(all))/elapsed.Seconds(), len(all), secs(elapsed))
	t.rep.add(label+" latency p50/p99/max (ms)", "%s / %s / %s", ms(all.percentile(50)), ms(all.percentile(99)), ms(all.max()))
	if before.cpu >= 0 && after.cpu >= 0 && len(all) > 0 {
		cpu := after.cpu - before.cpu
		t.rep.add(label+" manager CPU", "%.2f s, %.2f ms per request", cpu, cpu*1000/float64(len(all)))
	}
	t.rep.add(label+" failed", "%d", failed)
	if firstErr != nil {
		t.rep.add(label+" first error", "%s", truncate(firstErr.Error(), 160))
	}
	return nil
}

// apiThroughput hammers GET /server from several clients.
func (t *loadTest) apiThroughput(ctx context.Context) error {
	t.log.Info("API throughput", "clients", t.opt.apiClients, "for", t.opt.apiDuration)
	q := url.Values{"pageNum": {"1"}, "pageSize": {strconv.Itoa(t.opt.pageSize)}}
	return t.timedHammer(ctx, fmt.Sprintf("API GET /server pageSize=%d", t.opt.pageSize), "cpu-api", t.opt.apiDuration, "/server?"+q.Encode())
}

// lostAgents measures how long the manager takes to mark an agent offline
// when its socket is cut and when it goes silent, then brings both back.
func (t *loadTest) lostAgents(ctx context.Context) error {
	agents := t.fleet.agents
	var victims []*agent

	// (a) Cut: no more dialing, then an RST.
	cut := agents[0]
	victims = append(victims, cut)
	cut.noDial.Store(true)
	conn := cut.current()
	t.log.Info("cutting an agent's socket", "agent", cut.idx, "server", cut.serverID())
	start := time.Now()
	if err := conn.cut(); err != nil {
		return fmt.Errorf("cut: %w", err)
	}
	d, err := t.waitOffline(ctx, cut, start)
	if err != nil {
		return err
	}
	t.rep.add("lost agent, cut socket -> offline (s)", "%s", secs(d))
	if err := t.fleet.stopAgent(cut, 10*time.Second); err != nil {
		return err
	}

	// (b) Silent: the socket stays open and the kernel still ACKs, but no
	// byte is delivered either way; only the manager's keepalive sweep
	// (ping after 4s quiet, close after 9s by default) can notice.
	if len(agents) >= 2 {
		silent := agents[1]
		victims = append(victims, silent)
		silent.noDial.Store(true)
		conn := silent.current()
		t.log.Info("freezing an agent's connection", "agent", silent.idx, "server", silent.serverID())
		start := time.Now()
		conn.freeze()
		// Stop the agent's own side too (its keepalive would otherwise end
		// the session and, were it allowed, reconnect); with the connection
		// frozen this sends nothing and leaves the socket open.
		stopped := make(chan error, 1)
		go func() { stopped <- t.fleet.stopAgent(silent, 10*time.Second) }()
		d, err := t.waitOffline(ctx, silent, start)
		if err != nil {
			return err
		}
		t.rep.add("lost agent, silent (frozen) -> offline (s)", "%s", secs(d))
		if err := <-stopped; err != nil {
			return err
		}
		conn.release()
	}

	// Bring them back, so that the restart starts from N connected.
	start = time.Now()
	for _, a := range victims {
		t.fleet.restart(a)
	}
	if _, err := t.connectCurve(ctx, "stopped agents back", start, t.opt.agents, nil); err != nil {
		return err
	}
	t.rep.add("lost agents restarted -> connected (s)", "%s", secs(time.Since(start)))
	return nil
}

func (t *loadTest) waitOffline(ctx context.Context, a *agent, start time.Time) (time.Duration, error) {
	id := a.serverID()
	var status string
	err := t.waitFor(ctx, "agent "+id+" offline", 50*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		s, err := t.api.agentStatus(ctx, id)
		status = s
		return s == "offline", err
	}, func() string { return "status " + status })
	return time.Since(start), err
}

// restartStorm stops the manager with SIGTERM, starts it again on the same
// data dir and ports, and measures until every agent is back.
func (t *loadTest) restartStorm(ctx context.Context) error {
	n := t.opt.agents
	t.api.close()
	t.log.Info("stopping the manager (SIGTERM)")
	tKill := time.Now()
	shutdown, err := t.mgr.stop(30 * time.Second)
	if err != nil {
		return err
	}
	t.rep.add("manager shutdown with N agents (s)", "%s", secs(shutdown))
	tStart := time.Now()
	if err := t.mgr.start(ctx, t.api, time.Minute); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	seen := time.Now()
	cpu0 := selfCPU()
	t.prof.cpu(ctx, "cpu-reconnect", t.opt.profileSeconds)
	t.prof.self(ctx, "agents-cpu-reconnect", t.opt.profileSeconds)
	// Ready is when the manager says it began serving: this process, busy
	// with the agents, may see its ready line much later.
	tReady, err := t.mgr.servingSince(tStart)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	t.rep.add("manager restart until ready, by its log (s)", "%s  (this process saw it after %s s)", secs(tReady.Sub(tStart)), secs(seen.Sub(tStart)))
	if err := t.api.login(ctx, "admin", adminPassword); err != nil {
		return fmt.Errorf("login after restart: %w", err)
	}
	t.log.Info("manager restarted; waiting for agents to reconnect", "n", n)
	var curve [4]time.Duration
	var online time.Duration
	var gauge atomic.Int64
	// The console while the agents come back: how fast does it answer?
	stormStop := make(chan struct{})
	stormDone := make(chan struct{})
	var stormLat latencies
	var stormFailed int64
	var stormErr error
	go func() {
		defer close(stormDone)
		if t.opt.stormClients <= 0 {
			return
		}
		q := url.Values{"pageNum": {"1"}, "pageSize": {strconv.Itoa(t.opt.pageSize)}}
		path := "/server?" + q.Encode()
		stormLat, stormFailed, stormErr = hammer(ctx, t.opt.stormClients, stormStop, func(ctx context.Context) error {
			return t.api.check(ctx, path)
		})
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		curve, err = t.connectCurve(gctx, "agents reconnected", tReady, n, &gauge)
		return err
	})
	g.Go(func() (err error) {
		online, err = t.onlineAfter(gctx, tReady, n, &gauge)
		return err
	})
	err = g.Wait()
	close(stormStop)
	<-stormDone
	if err != nil {
		return err
	}
	// The restarted manager's CPU counter started with it: its start and
	// the whole storm.
	if s, err := t.mgr.sample(ctx, t.api); err == nil && s.cpu >= 0 && cpu0 >= 0 {
		t.rep.add("CPU used from restart to all reconnected, manager + load (s)", "%.1f + %.1f", s.cpu, (selfCPU() - cpu0).Seconds())
		t.rep.add("reconnect handshakes: resumed / agent / busy / no_hello / pending_limit", "%.0f / %.0f / %.0f / %.0f / %.0f",
			s.mt.get("admq_tunnel_resumed_sessions_total"), s.mt.sum("admq_tunnel_handshakes_total", `result="agent"`),
			s.mt.sum("admq_tunnel_handshakes_total", `result="busy"`), s.mt.sum("admq_tunnel_handshakes_total", `result="no_hello"`),
			s.mt.sum("admq_tunnel_handshakes_total", `result="pending_limit"`))
	}
	if t.opt.stormClients > 0 {
		label := fmt.Sprintf("API GET /server pageSize=%d during reconnect, %d clients", t.opt.pageSize, t.opt.stormClients)
		t.rep.add(label+" latency p50/p99/max (ms)", "%s / %s / %s  (%d requests)", ms(stormLat.percentile(50)), ms(stormLat.percentile(99)), ms(stormLat.max()), len(stormLat))
		t.rep.add(label+" failed", "%d", stormFailed)
		if stormErr != nil {
			t.rep.add(label+" first error", "%s", truncate(stormErr.Error(), 160))
		}
	}
	if lc, err := t.mgr.logCurve(tReady, n); err != nil {
		t.log.Warn("reconnect curve from the manager's log", "err", err)
	} else {
		t.rep.add("reconnect all since SIGTERM, by the manager's log (s)", "%s", secs(lc[3]+tReady.Sub(tKill)))
		t.rep.add("reconnect 50/90/99/100% since ready, by the manager's log (s)", "%s", curveString(lc))
	}
	t.rep.add("reconnect all since SIGTERM (s)", "%s", secs(curve[3]+tReady.Sub(tKill)))
	t.rep.add("reconnect all since manager ready (s)", "%s", secs(curve[3]))
	t.rep.add("reconnect 50/90/99/100% since ready (s)", "%s", curveString(curve))
	t.rep.add("reconnect all, API online total since ready (s)", "%s  (asked every 100 ms once the gauge passed 90%%)", secs(online))
	s, err := t.mgr.settledSample(ctx, t.api)
	if err != nil {
		return err
	}
	t.rep.add("manager RSS after reconnect (MB)", "%s", mb(s.rss))
	t.rep.add("manager heap in use after reconnect (MB)", "%s  (live est. %s)", mb(s.heap), mb(s.liveHeap))
	t.rep.add("manager goroutines after reconnect", "%.0f", s.goroutines)
	// The restarted manager's counters start at zero: these are the
	// storm's calls (reports, enrollments none) that it answered.
	calls := s.mt.sum(rpcHist + "_count")
	t.rep.add("agent calls answered since restart, failed", "%.0f, %.0f  (by the manager's RPC histogram: codes other than OK)", calls, calls-s.mt.sum(rpcHist+"_count", `code="OK"`))
	if err := t.fleetWide(ctx, "fleet ping after reconnect"); err != nil {
		return err
	}
	t.log.Info("all agents reconnected", "sinceReady", curve[3].Round(time.Millisecond), "manager", s.String())
	return nil
}

// allLeave stops every agent while the manager keeps running and measures
// what the manager gives back.
func (t *loadTest) allLeave(ctx context.Context) error {
	t.prof.wait() // the reconnect's CPU profile, before the manager goes
	t.log.Info("stopping all agents")
	start := time.Now()
	if err := t.fleet.stop(15 * time.Second); err != nil {
		return err
	}
	t.fleet = nil // stopped: waitFor no longer asks it
	err := t.waitFor(ctx, "all agents disconnected", 100*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		m, err := t.api.metrics(ctx)
		return err == nil && m.get("admq_tunnel_connected_agents") == 0, err
	}, nil)
	if err != nil {
		return err
	}
	t.rep.add("all agents stopped -> manager counts 0 (s)", "%s", secs(time.Since(start)))
	// Sessions wind down after the count drops; give their goroutines a
	// moment, so that what remains above the baseline would be a leak.
	var g float64
	_ = t.waitFor(ctx, "manager goroutines back to baseline", 200*time.Millisecond, 10*time.Second, func(ctx context.Context) (bool, error) {
		m, err := t.api.metrics(ctx)
		g = m.get("go_goroutines")
		return err == nil && g <= t.base.goroutines+5, err
	}, nil)
	t.rep.add("all agents stopped -> manager goroutines near baseline (s)", "%s  (%.0f goroutines)", secs(time.Since(start)), g)
	s, err := t.mgr.settledSample(ctx, t.api)
	if err != nil {
		return err
	}
	t.rep.add("manager RSS after all left (MB)", "%s", mb(s.rss))
	t.rep.add("manager heap in use after all left (MB)", "%s  (live est. %s)", mb(s.heap), mb(s.liveHeap))
	t.rep.add("manager goroutines after all left", "%.0f  (baseline %.0f)", s.goroutines, t.base.goroutines)
	return nil
}

// reportLogs adds the manager's and agents' warnings and errors to the
// report.
func (t *loadTest) reportLogs() {
	if t.mgr != nil {
		c, err := t.mgr.logCounts()
		switch {
		case err != nil:
			t.rep.add("manager log WARN/ERROR", "n/a: %v", err)
		default:
			t.addLines("manager log WARN/ERROR", c.lines(12))
		}
	}
	if t.agentLog != nil {
		t.addLines("agent log WARN/ERROR", t.agentLog.lines(12))
	}
}

func (t *loadTest) addLines(label string, lines []string) {
	if len(lines) == 0 {
		t.rep.add(label, "none")
		return
	}
	for i, l := range lines {
		if i > 0 {
			label = ""
		}
		t.rep.add(label, "%s", l)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// fleetWide pings every agent with one POST /fleet/operation and reports
// its wall time, the manager's CPU seconds and memory around it, and the
// operations that failed.
func (t *loadTest) fleetWide(ctx context.Context, label string) error {
	before, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	t.log.Info(label, "targets", t.opt.agents, "concurrency", t.opt.fleetConcurrency)
	start := time.Now()
	op, failed, err := t.api.fleetOp(ctx, "ping", t.opt.fleetConcurrency, 10*time.Second)
	wall := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	after, err := t.mgr.sample(ctx, t.api)
	if err != nil {
		return err
	}
	t.rep.add(label+", one API call (s)", "%s wall, manager %.0f ms by its clock  (%d targets, concurrency %d)", secs(wall), float64(op.ElapsedMs), op.Total, t.opt.fleetConcurrency)
	t.rep.add(label+" ok/failed/offline", "%d / %d / %d", op.OK, op.Failed, op.Offline)
	for i, r := range failed {
		l := ""
		if i == 0 {
			l = label + " failures (first 3)"
		}
		t.rep.add(l, "server %s %s: %s", r.ServerID, r.Status, truncate(r.Reason, 140))
	}
	if before.cpu >= 0 && after.cpu >= 0 {
		t.rep.add(label+" manager CPU (s)", "%.2f", after.cpu-before.cpu)
	}
	t.rep.add(label+" manager RSS before/after (MB)", "%s / %s  (%+.0f%%); goroutines %.0f / %.0f; client conns after %.0f",
		mb(before.rss), mb(after.rss), (after.rss/before.rss-1)*100, before.goroutines, after.goroutines, after.clients)
	return nil
}
