package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The API clients of the throughput phases (GET /server, the node config
// item list) run in a process of their own, this program again with
// -hammer as its first argument, on the manager's CPUs: like a console
// user's browser on another machine. In the agents' process they shared
// one CPU and GOMAXPROCS 1 with 10,000 simulated agents and their garbage
// collector, so their p99 (1.3 s at 10,000 agents while the manager used
// 21 % of a core) measured the simulator, not the manager.

// hammerFlag, as the first argument, runs the program as that client.
const hammerFlag = "-hammer"

// hammerResult is what the client process writes to its stdout: one JSON
// object.
type hammerResult struct {
	LatencyNS []int64 `json:"latencyNs"`
	ElapsedNS int64   `json:"elapsedNs"`
	Failed    int64   `json:"failed"`
	FirstErr  string  `json:"firstErr,omitempty"`
}

// runHammer is main for the client process: it GETs -path from -clients
// connections for -duration, each call as soon as the last one answered,
// and checks each answer's envelope code.
func runHammer(args []string) int {
	fs := flag.NewFlagSet("load -hammer", flag.ContinueOnError)
	addr := fs.String("http", "", "the manager's HTTP address")
	path := fs.String("path", "", "console API path under /admq-manager, with its query")
	clients := fs.Int("clients", 16, "concurrent clients")
	d := fs.Duration("duration", 5*time.Second, "how long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	token := os.Getenv("ADMQ_LOAD_TOKEN") // not on the command line
	if *addr == "" || !strings.HasPrefix(*path, "/") || *clients < 1 || *d <= 0 || token == "" {
		fmt.Fprintln(os.Stderr, "load -hammer: want -http, -path /..., -clients >= 1, -duration > 0 and ADMQ_LOAD_TOKEN")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := newAPIClient(*addr)
	a.token = token
	done := make(chan struct{})
	time.AfterFunc(*d, func() { close(done) })
	start := time.Now()
	all, failed, firstErr := hammer(ctx, *clients, done, func(ctx context.Context) error { return a.check(ctx, *path) })
	res := hammerResult{Failed: failed, LatencyNS: make([]int64, len(all)), ElapsedNS: int64(time.Since(start))}
	for i, l := range all {
		res.LatencyNS[i] = int64(l)
	}
	if firstErr != nil {
		res.FirstErr = firstErr.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "load -hammer:", err)
		return 1
	}
	return 0
}

// hammerProcess runs the API clients as a process of their own on the
// manager's CPUs and returns what they measured: every call's latency, the
// time they ran, the calls that failed and the first failure.
func (t *loadTest) hammerProcess(ctx context.Context, path string, d time.Duration) (all latencies, elapsed time.Duration, failed int64, firstErr, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, 0, nil, fmt.Errorf("API clients: %w", err)
	}
	cmd, err := pinnedCommand(t.mgr.cpus, self, hammerFlag,
		"-http", t.mgr.httpAddr, "-path", path, "-clients", strconv.Itoa(t.opt.apiClients), "-duration", d.String())
	if err != nil {
		return nil, 0, 0, nil, err
	}
	cmd.Env = append(os.Environ(), "ADMQ_LOAD_TOKEN="+t.api.token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, 0, nil, fmt.Errorf("API clients: %w", err)
	}
	stopped := context.AfterFunc(ctx, func() { cmd.Process.Signal(syscall.SIGTERM) })
	err = cmd.Wait()
	stopped()
	if err != nil {
		return nil, 0, 0, nil, fmt.Errorf("API clients: %w", err)
	}
	var res hammerResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, 0, 0, nil, fmt.Errorf("API clients: their result: %w", err)
	}
	all = make(latencies, len(res.LatencyNS))
	for i, ns := range res.LatencyNS {
		all[i] = time.Duration(ns)
	}
	if res.FirstErr != "" {
		firstErr = errors.New(res.FirstErr)
	}
	return all, time.Duration(res.ElapsedNS), res.Failed, firstErr, nil
}
