package tunnel

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// heardConn is the TLS connection below an agent's yamux session. It
// records when the agent last sent anything (for the keepalive sweep) and,
// for an enrolled agent's session, reads the yamux frame headers going by,
// so that the manager needs no goroutine per session waiting for the agent
// to open a stream, nor one waiting for the session to end: onOpen is told
// of each stream the agent opens (a frame with the SYN flag), and onEnd
// once, when reading fails, which is how every session ends (yamux closes
// the connection whatever ends the session, and its reader then fails).
// Both run on yamux's reading goroutine and must not block.
type heardConn struct {
	net.Conn
	last atomic.Int64 // Unix nanoseconds

	// hold, until closed, keeps yamux from reading: the session is not
	// ready for onOpen and onEnd yet. Only the reading goroutine uses it.
	hold   chan struct{}
	onOpen func(n int)
	onEnd  func()
	frames frameScanner
	ended  sync.Once
}

func newHeardConn(c net.Conn) *heardConn {
	h := &heardConn{Conn: c}
	h.last.Store(time.Now().UnixNano())
	return h
}

// watch sets the hooks; yamux's first read waits for release.
func (c *heardConn) watch(onOpen func(n int), onEnd func()) {
	c.onOpen, c.onEnd = onOpen, onEnd
	c.hold = make(chan struct{})
}

// release lets yamux read once the hooks may run.
func (c *heardConn) release() { close(c.hold) }

func (c *heardConn) Read(p []byte) (int, error) {
	if c.hold != nil {
		<-c.hold
		c.hold = nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
		if c.onOpen != nil {
			if opened := c.frames.scan(p[:n]); opened > 0 {
				c.onOpen(opened)
			}
		}
	}
	if err != nil && c.onEnd != nil {
		c.ended.Do(c.onEnd)
	}
	return n, err
}

// silentFor is how long the peer has sent nothing as of now.
func (c *heardConn) silentFor(now time.Time) time.Duration {
	return time.Duration(now.UnixNano() - c.last.Load())
}

// yamux frame header (see yamux's spec.md): version, type, flags (2
// bytes), stream id (4), length (4). Only data frames carry a body, of
// length bytes; a window update, ping or go-away has none.
const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
	yamuxTypeWindow = 1
	yamuxFlagSYN    = 1
)

// frameScanner follows the frame boundaries of a yamux byte stream and
// counts the frames that open a stream. It costs a few operations per
// frame header and nothing per body byte.
type frameScanner struct {
	hdr  [yamuxHeaderSize]byte
	have int    // header bytes collected
	skip uint32 // body bytes still to pass over
}

// scan consumes the next bytes of the stream and returns how many stream
// openings they completed.
func (f *frameScanner) scan(b []byte) (opened int) {
	for len(b) > 0 {
		if f.skip > 0 {
			k := uint32(min(uint64(f.skip), uint64(len(b))))
			f.skip -= k
			b = b[k:]
			continue
		}
		k := copy(f.hdr[f.have:], b)
		f.have += k
		b = b[k:]
		if f.have < yamuxHeaderSize {
			return opened
		}
		f.have = 0
		typ, flags := f.hdr[1], binary.BigEndian.Uint16(f.hdr[2:4])
		if typ == yamuxTypeData {
			f.skip = binary.BigEndian.Uint32(f.hdr[8:12])
		}
		if (typ == yamuxTypeData || typ == yamuxTypeWindow) && flags&yamuxFlagSYN != 0 {
			opened++
		}
	}
	return opened
}
