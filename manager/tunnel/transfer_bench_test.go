package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		binary.LittleEndian.PutUint64(data, uint64(i)) // a new package each time
		sha := sum(data)
		b.StartTimer()
		if _, err := e.hub.PushPackage(b.Context(), id, sha, int64(len(data)), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
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
// fsync included), at most -dist-concurrency at a time, and prints the
// time, the manager's send rate, and the same bytes over plain loopback
// TCP at the same concurrency. Agents and manager share this process and
// its CPUs, as they share the machine's.
func BenchmarkPackageToManyAgents(b *testing.B) {
	n, size := *distAgents, int64(*distMB)<<20
	e := newEnv(b, tunnel.Config{MaxPackageTransfers: *distConcurrency})
	tok := e.token(b, n)
	agents := make([]ids.ID, n)
	for i := range agents {
		connected, _ := e.startAgentAt(b, tok, b.TempDir(), fmt.Sprintf("127.0.%d.%d", 8+i/250, 1+i%250))
		agents[i], _ = ids.Parse(<-connected)
	}
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{2}).Read(data)
	for b.Loop() {
		binary.LittleEndian.PutUint64(data, uint64(time.Now().UnixNano())) // a package no agent holds
		sha := sum(data)
		cpu0 := processCPU()
		start := time.Now()
		var wg sync.WaitGroup
		var sent atomic.Int64
		for _, id := range agents {
			wg.Go(func() {
				m, err := e.hub.PushPackage(b.Context(), id, sha, size, bytes.NewReader(data))
				sent.Add(m)
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		took, cpu := time.Since(start), processCPU()-cpu0
		total := float64(n) * float64(size) / 1e6
		tcp := plainFanOut(b, n, data, *distConcurrency)
		fmt.Printf("package distribution: %d agents x %d MiB, %d transfers at once: %.1f s, %.0f MB/s sent by the manager (%.0f MB in all), %.1f CPU-s (manager and agents); "+
			"plain loopback TCP, same bytes and concurrency: %.1f s, %.0f MB/s; %.2f s per agent on average\n",
			n, size>>20, *distConcurrency, took.Seconds(), float64(sent.Load())/1e6/took.Seconds(), total, cpu.Seconds(),
			tcp.Seconds(), total/tcp.Seconds(), took.Seconds()/float64(n))
		b.ReportMetric(took.Seconds(), "s/distribution")
		b.ReportMetric(float64(sent.Load())/1e6/took.Seconds(), "MB/s")
	}
}

// plainFanOut copies data to n loopback TCP receivers, concurrency at a
// time, and returns how long it took.
func plainFanOut(b *testing.B, n int, data []byte, concurrency int) time.Duration {
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
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
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
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
