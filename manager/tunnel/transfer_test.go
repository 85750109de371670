package tunnel_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	agenttunnel "github.com/admq/admq-manager/agent/tunnel"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/tunnel"
)

// fullRecord is the length on the wire of a TLS 1.3 record that carries
// the most plaintext a record can (16 KiB, its content type byte and the
// AEAD tag of 16 bytes).
const fullRecord = 16<<10 + 1 + 16

// recordCounter counts the TLS records an agent reads from the manager,
// parsing their 5-byte headers from the raw byte stream.
type recordCounter struct {
	mu          sync.Mutex
	full, short int
}

func (r *recordCounter) counts() (full, short int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.full, r.short
}

// countingConn feeds what it reads to its counter.
type countingConn struct {
	net.Conn
	rc   *recordCounter
	hdr  []byte // the part of a record header read so far
	skip int    // bytes of the current record's body still to come
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	b := p[:n]
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(5-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) < 5 {
			continue
		}
		c.skip = int(c.hdr[3])<<8 | int(c.hdr[4])
		c.rc.mu.Lock()
		if c.skip >= fullRecord {
			c.rc.full++
		} else {
			c.rc.short++
		}
		c.rc.mu.Unlock()
		c.hdr = c.hdr[:0]
	}
	return n, err
}

// A package travels in full TLS records: each write of a push fills whole
// records, where a write of gRPC's default buffer (32 KiB) and its yamux
// header made two full records and one of 12 bytes, sealed and written on
// its own. The package arrives intact whatever the chunking (its last
// chunk short, the buffer reused for every chunk).
func TestPackageTravelsInFullRecords(t *testing.T) {
	e := newEnv(t, tunnel.Config{})
	rc := &recordCounter{}
	stateDir := t.TempDir()
	connected, _ := e.runAgent(t, e.token(t, 1), stateDir, func(cfg *agenttunnel.Config) {
		var d net.Dialer
		cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, rc: rc}, nil
		}
	})
	id, err := ids.Parse(<-connected)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session", func() bool { return e.hub.Online(id) })

	pkg := make([]byte, 4*tunnel.PackageChunkSize+54321)
	rand.NewChaCha8([32]byte{7}).Read(pkg)
	sha := sum(pkg)
	full0, short0 := rc.counts()
	n, err := e.hub.PushPackage(t.Context(), id, sha, int64(len(pkg)), bytes.NewReader(pkg))
	if err != nil || n != int64(len(pkg)) {
		t.Fatalf("push: sent %d of %d: %v", n, len(pkg), err)
	}
	full1, short1 := rc.counts()
	full, short := full1-full0, short1-short0
	t.Logf("push of %d bytes: %d full records, %d shorter", len(pkg), full, short)
	if least := len(pkg) / (16 << 10); full < least*9/10 {
		t.Errorf("push of %d bytes came in %d full records, want at least %d", len(pkg), full, least*9/10)
	}
	// Only the ends of gRPC's flushes (when its writer ran out of data or
	// window) may be short: 14-20 of ~270 records here; before, every third
	// record was (147 of 402).
	if short*5 > full+short {
		t.Errorf("push came in %d full and %d shorter records: more than 20%% short", full, short)
	}
	got, err := os.ReadFile(filepath.Join(stateDir, "packages", sha+".pkg"))
	if err != nil || !bytes.Equal(got, pkg) {
		t.Fatalf("cached package differs from the one pushed: %v", err)
	}
}
