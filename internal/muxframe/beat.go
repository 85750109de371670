package muxframe

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// BeatConn is the connection below one side's yamux session. Whenever
// nothing has been written on it for its interval, it writes a heartbeat
// (Beat) between two of yamux's frames, so that the peer hears from this
// side at least that often without asking and without answering: the
// manager learns that an agent is alive from the agent's heartbeats alone
// instead of pinging it and reading its pong.
//
// yamux writes a data frame as two writes, header then body, from one
// goroutine; BeatConn joins them (Joiner), serializes its heartbeats with
// yamux's writes and follows their frame boundaries, so a heartbeat never
// lands inside a frame. (A header held back for its body counts as
// written: no heartbeat goes out until the body has, which is at once.)
type BeatConn struct {
	net.Conn
	timer  *time.Timer
	closed atomic.Bool
	beats  atomic.Int64

	mu     sync.Mutex
	every  time.Duration
	grid   time.Duration // see Align
	join   Joiner
	frames Scanner   // of the bytes yamux wrote
	last   time.Time // of the last write
}

// NewBeatConn returns c writing a heartbeat at once and then after every
// quiet interval of every, until it is closed. The first one tells the
// peer at once that heartbeats will come: the manager, which pings a quiet
// agent that sends none, would otherwise ping it before its first one,
// and the agent's pongs would put its heartbeats off.
//
// The first heartbeat is written before NewBeatConn returns, ahead of
// anything yamux writes; should it fail, yamux's own first write or read
// fails the same way.
func NewBeatConn(c net.Conn, every time.Duration) *BeatConn {
	b := &BeatConn{Conn: c, every: every, last: time.Now()}
	if _, err := c.Write(Beat[:]); err == nil {
		b.beats.Add(1)
	}
	b.mu.Lock() // beat, which reads b.timer, locks b.mu first
	b.timer = time.AfterFunc(every, b.beat)
	b.mu.Unlock()
	return b
}

// Write writes p, which yamux means as the next bytes of its stream.
func (b *BeatConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.join.Write(b.Conn, p)
	b.frames.Scan(p[:n])
	b.last = time.Now()
	return n, err
}

// due is when the next heartbeat is due. b.mu is held.
func (b *BeatConn) due() time.Time { return beatDue(b.last, b.every, b.grid) }

// beatDue is when a heartbeat is due after a write at last: every after
// it, or the grid line just before that if it is after last (see Align).
func beatDue(last time.Time, every, grid time.Duration) time.Time {
	d := last.Add(every)
	if a := OnGrid(d, grid); a.After(last) {
		d = a
	}
	return d
}

// OnGrid returns the last line at or before t of a grid of the wall clock
// (the multiples of grid since the zero time; grid <= 0: t itself). It is
// t less under grid, with t's monotonic reading, so that a step of the
// wall clock moves it by less than grid.
func OnGrid(t time.Time, grid time.Duration) time.Time {
	if grid <= 0 {
		return t
	}
	return t.Add(-t.Sub(t.Truncate(grid)))
}

// beat writes a heartbeat if one is due and waits for the next.
func (b *BeatConn) beat() {
	if b.closed.Load() {
		return
	}
	b.mu.Lock()
	next := time.Until(b.due())
	if next <= 0 {
		next = b.every
		// Between a data frame's header and its body (a rare moment: yamux
		// writes the body right after) the body's write is as good.
		if b.frames.AtBoundary() {
			if _, err := b.Conn.Write(Beat[:]); err != nil {
				b.mu.Unlock()
				return // yamux sees the failure on its next write or read
			}
			b.beats.Add(1)
			b.last = time.Now()
			next = time.Until(b.due())
		}
	}
	// Under the lock, so that a SetInterval in between is not undone.
	if !b.closed.Load() {
		b.timer.Reset(next)
	}
	b.mu.Unlock()
}

// SetInterval makes every the longest quiet before a heartbeat from now
// on; the next heartbeat is due every after the last write.
func (b *BeatConn) SetInterval(every time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if every == b.every || every <= 0 {
		return
	}
	b.every = every
	if !b.closed.Load() {
		b.timer.Reset(max(time.Until(b.due()), 0))
	}
}

// Align makes heartbeats go out on the lines of a grid of the wall clock
// (multiples of grid since the zero time): each at the last line before
// it is due, so never later. Peers whose clocks agree then write their
// heartbeats at the same moments, and a peer that hears from many (the
// manager) reads them in bursts, one wake-up for many, instead of one
// wake-up each. 0: no grid.
func (b *BeatConn) Align(grid time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.grid = max(grid, 0)
	if !b.closed.Load() {
		b.timer.Reset(max(time.Until(b.due()), 0))
	}
}

// Send writes an out-of-band frame of type typ around body (see
// FramesALPN: only to a peer that agreed to them) between two of yamux's
// frames, in one write. It counts as a write: the next heartbeat is an
// interval after it.
func (b *BeatConn) Send(typ byte, body []byte) error {
	if len(body) == 0 || len(body) > MaxBody {
		return fmt.Errorf("muxframe: a frame body of %d bytes (1 to %d allowed)", len(body), MaxBody)
	}
	bp := joinBufs.Get().(*[]byte)
	frame := appendFrame((*bp)[:0], typ, body)
	defer func() {
		*bp = frame[:0]
		joinBufs.Put(bp)
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	// A data frame's header held back for its body is not on the wire
	// yet: the frame goes out ahead of it. Anywhere else mid-frame only a
	// failed write leaves the connection, and the session is over.
	if !b.frames.AtBoundary() && !b.join.Held() {
		return errors.New("muxframe: the connection is inside a frame after a failed write")
	}
	if _, err := b.Conn.Write(frame); err != nil {
		return err
	}
	b.last = time.Now()
	return nil
}

// Interval is the longest quiet before a heartbeat.
func (b *BeatConn) Interval() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.every
}

// Beats is the number of heartbeats written so far.
func (b *BeatConn) Beats() int64 { return b.beats.Load() }

// Close stops the heartbeats and closes the connection.
func (b *BeatConn) Close() error {
	b.closed.Store(true)
	b.timer.Stop()
	return b.Conn.Close()
}
