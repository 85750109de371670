package chaos

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latency is a TCP relay that holds every byte back for a set time in
// each direction: a link with that one-way delay, for the connections
// made through it. It stands in for tc netem's delay, which kernels built
// without CONFIG_NET_SCH_NETEM (this test machine's) do not have. Order
// is kept; at most 64 KiB are on their way per direction, so a connection
// gets at most 64 KiB per delay through it, like a TCP window.
type latency struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds
	wg     sync.WaitGroup
}

// startLatency relays connections made to listenHost:<port> to target,
// with no delay until set; it stops in cleanup.
func startLatency(t testing.TB, listenHost, target string) *latency {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		t.Fatal(err)
	}
	l := &latency{ln: ln, target: target}
	var conns sync.Map
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer conns.Delete(c)
				l.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		l.wg.Wait()
	})
	return l
}

// addr is where to connect.
func (l *latency) addr() string { return l.ln.Addr().String() }

// set makes every byte relayed from now on wait d in each direction.
func (l *latency) set(d time.Duration) { l.delay.Store(int64(d)) }

func (l *latency) serve(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", l.target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	// The relay's own sockets must not queue more than a link would: with
	// the kernel's default buffers (up to 4 MiB each way, twice over) a
	// slow link's queue would hold tens of seconds of data that a direct
	// connection never queues.
	for _, conn := range []net.Conn{c, up} {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetReadBuffer(64 << 10)
			tc.SetWriteBuffer(64 << 10)
		}
	}
	done := make(chan struct{}, 2)
	go func() { l.pipe(up, c); done <- struct{}{} }()
	go func() { l.pipe(c, up); done <- struct{}{} }()
	<-done // one side is gone: so is the link
}

// pipe copies src to dst, each chunk sent once its delay has passed.
func (l *latency) pipe(dst io.WriteCloser, src io.ReadCloser) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	// Little is held in flight, as on a real link (the sockets' own
	// buffers hold the rest), so that a sender feels back-pressure.
	q := make(chan chunk, 4)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 16<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(time.Duration(l.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		time.Sleep(time.Until(ch.due))
		if _, err := dst.Write(ch.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q { // let the reader end
	}
}
