package tunnel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/atomicfile"
	"github.com/admq/admq-manager/internal/ids"

	"github.com/admq/admq-manager/manager/tunnel"
)

// benchPackageSize is the size of the packages the transfer benchmarks
// send.
const benchPackageSize = 64 << 20

// BenchmarkPackageTransfer sends a 64 MiB package of incompressible bytes
// through the tunnel (TLS 1.3 + yamux + gRPC stream, loopback) into a real
// agent's package cache, sha256 check and fsync included; each iteration
// sends a different package. Compare BenchmarkPlainTCPCopy.
func BenchmarkPackageTransfer(b *testing.B) {
	e := newEnv(b, tunnel.Config{})
	id, _ := e.connectAgent(b, e.token(b, 1), b.TempDir())
	data := make([]byte, benchPackageSize)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	b.SetBytes(benchPackageSize)
	var cpu time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		binary.LittleEndian.PutUint64(data, uint64(i)) // a new package each time
		sha := sum(data)
		b.StartTimer()
		r := measure(func() int64 {
			n, err := e.hub.PushPackage(b.Context(), id, sha, int64(len(data)), bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			return n
		})
		cpu += r.cpu()
	}
	b.ReportMetric(cpu.Seconds()/(float64(b.N)*benchPackageSize/1e9), "CPU-s/GB")
}

// BenchmarkPlainTCPCopy copies the same number of bytes over one plain
// loopback TCP connection, the floor BenchmarkPackageTransfer is measured
// against.
func BenchmarkPlainTCPCopy(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	data := make([]byte, benchPackageSize)
	b.SetBytes(benchPackageSize)
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

var (
	distAgents      = flag.Int("dist-agents", 100, "BenchmarkPackageToManyAgents: agents")
	distMB          = flag.Int("dist-mb", 100, "BenchmarkPackageToManyAgents: package size in MiB")
	distConcurrency = flag.Int("dist-concurrency", 8, "BenchmarkPackageToManyAgents: the hub's MaxPackageTransfers")
)

// BenchmarkPackageToManyAgents deploys one package to many agents at once
// (100 agents, 100 MiB, by default: run it with -benchtime 1x), each
// transfer a real push into a real agent's cache on disk (sha256 check and
// fsync included), at most -dist-concurrency at a time. It prints what one
// transfer alone takes, the fan-out's time, the manager's send rate and
// the CPU it cost (user and system, per GB), and two baselines over plain
// loopback TCP at the same concurrency: "raw", whose receivers discard the
// bytes, and "agent's work", whose receivers do what an agent must do with
// them (sha256, write to a file, fsync, rename). Agents and manager share
// this process and its CPUs and disk, as they share the machine's; a CPU
// profile (-cpuprofile) tells them apart by the label side=manager or
// side=agent (go tool pprof -tagfocus side=manager).
func BenchmarkPackageToManyAgents(b *testing.B) {
	n, size := *distAgents, int64(*distMB)<<20
	var e *env
	var alone ids.ID // one transfer alone, to an agent of its own, for scale
	agents := make([]ids.ID, n)
	dirs := make([]string, n)
	onSide("manager", func() { e = newEnv(b, tunnel.Config{MaxPackageTransfers: *distConcurrency}) })
	tok := e.token(b, n+1)
	onSide("agent", func() {
		for i := range agents {
			dirs[i] = b.TempDir()
			connected, _ := e.startAgentAt(b, tok, dirs[i], fmt.Sprintf("127.0.%d.%d", 8+i/250, 1+i%250))
			agents[i], _ = ids.Parse(<-connected)
		}
		connected, _ := e.startAgentAt(b, tok, b.TempDir(), "127.0.7.1")
		alone, _ = ids.Parse(<-connected)
	})
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(data)
	total := float64(n) * float64(size) / 1e6
	onSide("manager", func() {
		binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano()))
		one := fanOut(b, e, []ids.ID{alone}, data)
		fmt.Printf("package distribution: one transfer of %d MiB alone: %.2f s, %.0f MB/s, %.2f CPU-s (user %.2f, system %.2f)\n",
			size>>20, one.took.Seconds(), one.rate(), one.cpu().Seconds(), one.user.Seconds(), one.sys.Seconds())
		for b.Loop() {
			binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano())) // a package no agent holds
			r := fanOut(b, e, agents, data)
			gb := float64(r.sent) / 1e9
			fmt.Printf("package distribution: %d agents x %d MiB, %d transfers at once: %.1f s (%.1f x one alone), %.0f MB/s sent by the manager (%.0f MB in all); "+
				"%.1f CPU-s (user %.1f, system %.1f; manager and agents), %.2f CPU-s per GB; %.2f GB allocated per GB, %.0f allocs per MiB\n",
				n, size>>20, *distConcurrency, r.took.Seconds(), r.took.Seconds()/one.took.Seconds(), r.rate(), total,
				r.cpu().Seconds(), r.user.Seconds(), r.sys.Seconds(), r.cpu().Seconds()/gb,
				float64(r.allocBytes)/float64(r.sent), float64(r.allocs)/(float64(r.sent)/(1<<20)))
			b.ReportMetric(r.took.Seconds(), "s/distribution")
			b.ReportMetric(r.rate(), "MB/s")
			b.ReportMetric(r.cpu().Seconds()/gb, "CPU-s/GB")
		}
	})
	sha := sum(data)
	// The baselines start with as much of the agents' disk cache and
	// free space as the fan-out did.
	for _, d := range dirs {
		pkgs, _ := filepath.Glob(filepath.Join(d, "packages", "*.pkg"))
		for _, p := range pkgs {
			os.Remove(p)
		}
	}
	for _, base := range []struct {
		name string
		recv func(net.Conn) error
	}{
		{"raw (receivers discard the bytes)", discardBytes},
		{"agent's work (receivers check sha256, write, fsync, rename)", agentsWork(b.TempDir(), sha)},
	} {
		r := plainFanOut(b, n, data, *distConcurrency, base.recv)
		fmt.Printf("plain loopback TCP, same bytes and concurrency, %s: %.1f s, %.0f MB/s, %.1f CPU-s (user %.1f, system %.1f), %.2f CPU-s per GB\n",
			base.name, r.took.Seconds(), r.rate(), r.cpu().Seconds(), r.user.Seconds(), r.sys.Seconds(), r.cpu().Seconds()/(float64(r.sent)/1e9))
	}
}

// onSide runs fn with the profiler label side=name, which the goroutines
// it starts inherit.
func onSide(name string, fn func()) {
	pprof.Do(context.Background(), pprof.Labels("side", name), func(context.Context) { fn() })
}

// distRun is what one distribution took.
type distRun struct {
	took, user, sys    time.Duration
	sent               int64
	allocs, allocBytes uint64
}

func (r distRun) cpu() time.Duration { return r.user + r.sys }
func (r distRun) rate() float64      { return float64(r.sent) / 1e6 / r.took.Seconds() }

// measure runs fn and returns its wall time, the process's CPU and the
// allocations it made.
func measure(fn func() int64) distRun {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	u0, s0 := processCPU()
	start := time.Now()
	sent := fn()
	took := time.Since(start)
	u1, s1 := processCPU()
	runtime.ReadMemStats(&m1)
	return distRun{took: took, user: u1 - u0, sys: s1 - s0, sent: sent,
		allocs: m1.Mallocs - m0.Mallocs, allocBytes: m1.TotalAlloc - m0.TotalAlloc}
}

// fanOut pushes data to every agent at once (the hub lets its
// MaxPackageTransfers through at a time) and measures it.
func fanOut(b *testing.B, e *env, agents []ids.ID, data []byte) distRun {
	sha := sum(data)
	return measure(func() int64 {
		var wg sync.WaitGroup
		var sent atomic.Int64
		for _, id := range agents {
			wg.Go(func() {
				m, err := e.hub.PushPackage(b.Context(), id, sha, int64(len(data)), bytes.NewReader(data))
				sent.Add(m)
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		return sent.Load()
	})
}

// plainFanOut copies data to n loopback TCP receivers, concurrency at a
// time, each handled by recv; a copy ends when its receiver has answered
// (after recv), as a push ends with the agent's answer.
func plainFanOut(b *testing.B, n int, data []byte, concurrency int, recv func(net.Conn) error) distRun {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := recv(c); err != nil {
					b.Error(err)
					return
				}
				c.Write([]byte{1})
			}()
		}
	}()
	return measure(func() int64 {
		sem := make(chan struct{}, concurrency)
		var wg sync.WaitGroup
		var sent atomic.Int64
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				if _, err := c.Write(data); err != nil {
					b.Error(err)
					return
				}
				c.(*net.TCPConn).CloseWrite()
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					b.Errorf("receiver did not answer: %v", err)
					return
				}
				sent.Add(int64(len(data)))
			})
		}
		wg.Wait()
		return sent.Load()
	})
}

// discardBytes reads the connection to its end and drops the bytes.
func discardBytes(c net.Conn) error {
	_, err := io.Copy(io.Discard, c)
	return err
}

// agentsWork returns a receiver that does with the bytes what an agent's
// package cache does (agent/node): write each piece of at most a chunk
// to a part file in dir and hash it, check the sha256 at the end, fsync,
// rename, fsync the directory. The files stay, as the agents' do, until
// the benchmark ends. (The agents' cache also starts the disk writes every
// few MiB, which this baseline does not.)
func agentsWork(dir, sha string) func(net.Conn) error {
	var seq atomic.Int64
	return func(c net.Conn) error {
		name := filepath.Join(dir, fmt.Sprint(seq.Add(1)))
		f, err := os.Create(name + ".part")
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		buf := make([]byte, tunnel.PackageChunkSize)
		for {
			n, rerr := io.ReadFull(c, buf)
			if n > 0 {
				if _, err := f.Write(buf[:n]); err != nil {
					return err
				}
				h.Write(buf[:n])
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sha {
			return fmt.Errorf("received bytes hash to %s, not %s", got, sha)
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(name+".part", name+".pkg"); err != nil {
			return err
		}
		return atomicfile.SyncDir(dir)
	}
}

func processCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}
