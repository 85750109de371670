package muxframe

import (
	"encoding/binary"
	"io"
	"sync"
)

// Joiner writes a yamux data frame's header and body, which yamux's writer
// hands over in two writes, as one: one TLS record and one system call
// instead of two, for both sides of the tunnel. It holds a data frame's
// header back until the body's write, which yamux makes right after from
// the same goroutine; every other write passes through. Bytes go out in
// the order yamux wrote them. A Joiner serves one writer at a time.
type Joiner struct {
	hdr  [HeaderSize]byte
	held bool
}

// maxJoin is the largest body joined with its header (gRPC's writes are
// at most its write buffer, 32 KiB by default). A larger body follows its
// header in a write of its own.
const maxJoin = 64 << 10

var joinBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, HeaderSize+maxJoin)
	return &b
}}

// Held reports whether a data frame's header waits for its body: the
// bytes written so far end mid-frame, but what went out ends with a whole
// frame.
func (j *Joiner) Held() bool { return j.held }

// Write writes p, the next bytes yamux writes, to w.
func (j *Joiner) Write(w io.Writer, p []byte) (int, error) {
	if j.held {
		j.held = false
		if len(p) > maxJoin {
			if _, err := w.Write(j.hdr[:]); err != nil {
				return 0, err
			}
			return w.Write(p)
		}
		bp := joinBufs.Get().(*[]byte)
		b := append(append((*bp)[:0], j.hdr[:]...), p...)
		n, err := w.Write(b)
		*bp = b[:0]
		joinBufs.Put(bp)
		return max(n-HeaderSize, 0), err
	}
	if len(p) == HeaderSize && p[1] == typeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
		j.hdr = [HeaderSize]byte(p)
		j.held = true
		return HeaderSize, nil
	}
	return w.Write(p)
}
