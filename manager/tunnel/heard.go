package tunnel

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/admq/admq-manager/internal/muxframe"
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
//
// An agent that agreed on muxframe.FramesALPN sends its metrics reports as
// out-of-band frames between yamux's: Read takes them out of what yamux
// reads and hands each to onFrame, on the same goroutine, without
// blocking either.
type heardConn struct {
	net.Conn
	last atomic.Int64 // Unix nanoseconds

	// hold, until closed, keeps yamux from reading: the session is not
	// ready for onOpen and onEnd yet. Only the reading goroutine uses it.
	hold   chan struct{}
	onOpen func(n int)
	onEnd  func()
	frames muxframe.Scanner
	ended  sync.Once
	// beats is set once the agent has sent a heartbeat (muxframe.Beat):
	// it says it is alive on its own and is not pinged.
	beats atomic.Bool
	// join makes a data frame one write (yamux's writer alone writes).
	join muxframe.Joiner
	// onFrame, if set, takes the agent's out-of-band frames.
	onFrame func(typ byte, body []byte)
	// broken is why the agent's bytes could not be read as frames; set by
	// the reading goroutine before onEnd.
	broken error
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

// takeFrames makes Read hand the agent's out-of-band frames to onFrame;
// set before release.
func (c *heardConn) takeFrames(onFrame func(typ byte, body []byte)) { c.onFrame = onFrame }

func (c *heardConn) Read(p []byte) (int, error) {
	if c.hold != nil {
		<-c.hold
		c.hold = nil
	}
	for {
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.last.Store(time.Now().UnixNano())
			if c.onOpen != nil {
				var seen muxframe.Seen
				if c.onFrame != nil {
					var ferr error
					n, seen, ferr = c.frames.Strip(p[:n], c.onFrame)
					if ferr != nil {
						c.broken = ferr
						err = ferr
					}
				} else {
					seen = c.frames.Scan(p[:n])
				}
				if seen.Opened > 0 {
					c.onOpen(seen.Opened)
				}
				if seen.Beats > 0 && !c.beats.Load() {
					c.beats.Store(true)
				}
			}
		}
		if n == 0 && err == nil {
			continue // all of it was out-of-band frames: nothing for yamux yet
		}
		if err != nil && c.onEnd != nil {
			c.ended.Do(c.onEnd)
		}
		return n, err
	}
}

func (c *heardConn) Write(p []byte) (int, error) { return c.join.Write(c.Conn, p) }

// silentFor is how long the peer has sent nothing as of now.
func (c *heardConn) silentFor(now time.Time) time.Duration {
	return time.Duration(now.UnixNano() - c.last.Load())
}
