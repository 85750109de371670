package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"

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
