package muxframe

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// countingConn counts the heartbeats read from it, as the manager does.
type countingConn struct {
	net.Conn
	frames Scanner
	beats  atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.beats.Add(int64(c.frames.Scan(p[:n]).Beats))
	return n, err
}

// TestBeatsNeverSplitFrames writes yamux-shaped frames the way yamux's
// writer does (a data frame's header and body in two writes, with pauses
// longer than the heartbeat interval between them and between frames)
// while heartbeats go out every millisecond, and checks that the reader
// gets every frame whole and in order, with heartbeats between them.
func TestBeatsNeverSplitFrames(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()

	type result struct {
		frames, beats int
		err           error
	}
	done := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		var r result
		defer func() { done <- r }()
		hdr := make([]byte, HeaderSize)
		for {
			if _, err := io.ReadFull(server, hdr); err != nil {
				r.err = err
				return
			}
			if [HeaderSize]byte(hdr) == Beat {
				r.beats++
				continue
			}
			if hdr[1] != typeData {
				r.err = fmt.Errorf("frame %d: type %d, want data", r.frames, hdr[1])
				return
			}
			id := binary.BigEndian.Uint32(hdr[4:8])
			body := make([]byte, binary.BigEndian.Uint32(hdr[8:12]))
			if _, err := io.ReadFull(server, body); err != nil {
				r.err = err
				return
			}
			if id != uint32(r.frames) || !bytes.Equal(body, frameBody(id, len(body))) {
				r.err = fmt.Errorf("frame %d arrived as stream %d with a body of %d bytes that is not the one sent", r.frames, id, len(body))
				return
			}
			r.frames++
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	bc := NewBeatConn(client, time.Millisecond) // the reader takes its first heartbeat
	defer bc.Close()
	// Write until the reader has seen heartbeats between frames.
	for i := uint32(0); ; i++ {
		body := frameBody(i, 1+int(i%97))
		hdr := make([]byte, HeaderSize)
		binary.BigEndian.PutUint32(hdr[4:8], i)
		binary.BigEndian.PutUint32(hdr[8:12], uint32(len(body)))
		if _, err := bc.Write(hdr); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			time.Sleep(2 * time.Millisecond) // mid-frame: no heartbeat here
		}
		if _, err := bc.Write(body); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			time.Sleep(2 * time.Millisecond) // between frames: heartbeats
		}
		if i >= 200 && bc.Beats() >= 10 || i >= 5000 {
			close(stop)
			// One more frame for the reader to stop after.
			binary.BigEndian.PutUint32(hdr[4:8], i+1)
			body = frameBody(i+1, 1)
			binary.BigEndian.PutUint32(hdr[8:12], 1)
			_, _ = bc.Write(hdr)
			_, _ = bc.Write(body)
			break
		}
	}
	// A reader thrown off the frames waits for bytes that never come:
	// closing ends its wait with an error.
	bc.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("reader: %v", r.err)
	}
	if r.beats == 0 {
		t.Fatalf("%d frames and no heartbeat between them (the writer counted %d)", r.frames, bc.Beats())
	}
	t.Logf("%d frames whole, %d heartbeats between them", r.frames, r.beats)
}

func frameBody(id uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(id) + byte(i)
	}
	return b
}

// TestYamuxCarriesDataWhileBeating runs real yamux sessions over TCP with
// heartbeats going out every millisecond below the client, and streams
// opened from both sides echoing random data: every byte must come back,
// the server's yamux must take the heartbeats without complaint (no
// protocol error, no pong), and it must have read heartbeats.
func TestYamuxCarriesDataWhileBeating(t *testing.T) {
	raw, srvRaw := loopbackPair(t)
	bc := NewBeatConn(raw, time.Millisecond)
	heard := &countingConn{Conn: srvRaw}
	cli, srv, srvLog := echoingSessions(t, bc, heard)
	echoFromBoth(t, cli, srv, 8)
	// Quiet now: heartbeats alone keep going.
	for heard.beats.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	if _, err := cli.Ping(); err != nil {
		t.Fatalf("ping after the heartbeats: %v", err)
	}
	if srv.IsClosed() || cli.IsClosed() {
		t.Fatal("a session closed")
	}
	if l := srvLog(); l != "" {
		t.Errorf("the server's yamux logged: %s", l)
	}
	t.Logf("server read %d heartbeats; client wrote %d", heard.beats.Load(), bc.Beats())
}

// loopbackPair returns the two ends of a loopback TCP connection.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}

// echoingSessions runs a yamux client over client and a server over
// server until the test ends, each echoing the streams the other opens;
// srvLog returns what the server's yamux logged.
func echoingSessions(t *testing.T, client, server net.Conn) (cli, srv *yamux.Session, srvLog func() string) {
	t.Helper()
	var (
		logMu  sync.Mutex
		logged bytes.Buffer
	)
	cfg := func(lw io.Writer) *yamux.Config {
		c := yamux.DefaultConfig()
		c.EnableKeepAlive = false
		c.LogOutput = nil
		c.Logger = log.New(lw, "", 0)
		return c
	}
	cli, err := yamux.Client(client, cfg(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	srv, err = yamux.Server(server, cfg(lockedWriter{&logMu, &logged}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	echo := func(s *yamux.Session) {
		for {
			st, err := s.Accept()
			if err != nil {
				return
			}
			go func() {
				defer st.Close()
				_, _ = io.Copy(st, st)
			}()
		}
	}
	go echo(cli)
	go echo(srv)
	return cli, srv, func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return logged.String()
	}
}

// echoFromBoth runs n echoRoundTrips at once, the streams opened from
// either side in turn.
func echoFromBoth(t *testing.T, cli, srv *yamux.Session, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		opener := cli
		if i%2 == 1 {
			opener = srv
		}
		wg.Go(func() {
			if err := echoRoundTrips(opener, uint64(i)); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// echoRoundTrips opens a stream and sends random chunks through the
// echo at its other end, with pauses, checking what comes back.
func echoRoundTrips(s *yamux.Session, seed uint64) error {
	st, err := s.Open()
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	sent, got := sha256.New(), sha256.New()
	readDone := make(chan error, 1)
	const total = 1 << 20
	go func() {
		_, err := io.CopyN(got, st, total)
		readDone <- err
	}()
	buf := make([]byte, 64<<10)
	for n := 0; n < total; {
		chunk := buf[:min(1+rng.IntN(len(buf)), total-n)]
		for i := range chunk {
			chunk[i] = byte(rng.Uint32())
		}
		sent.Write(chunk)
		if _, err := st.Write(chunk); err != nil {
			return err
		}
		n += len(chunk)
		if rng.IntN(4) == 0 {
			time.Sleep(2 * time.Millisecond) // room for heartbeats
		}
	}
	if err := <-readDone; err != nil {
		return err
	}
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSetIntervalTakesEffect: a heartbeat interval shortened on a quiet
// connection brings the next heartbeat forward at once; lengthened, the
// heartbeats stop for the new interval.
func TestSetIntervalTakesEffect(t *testing.T) {
	raw, srvRaw := loopbackPair(t)
	heard := &countingConn{Conn: srvRaw}
	go func() { _, _ = io.Copy(io.Discard, heard) }()
	bc := NewBeatConn(raw, time.Hour)
	t.Cleanup(func() { bc.Close() })
	for heard.beats.Load() < 1 { // the first, at once
		time.Sleep(time.Millisecond)
	}
	bc.SetInterval(time.Millisecond)
	if got := bc.Interval(); got != time.Millisecond {
		t.Fatalf("Interval() = %v after SetInterval(1ms)", got)
	}
	for heard.beats.Load() < 5 { // would take hours at the old interval
		time.Sleep(time.Millisecond)
	}
	bc.SetInterval(time.Hour) // a heartbeat under way is written before it returns
	settled := bc.Beats()
	time.Sleep(50 * time.Millisecond)
	if got := bc.Beats(); got != settled {
		t.Fatalf("%d heartbeats written after the interval became an hour", got-settled)
	}
}

// TestBeatDueOnTheGrid: with a grid, a heartbeat is due on the last grid
// line before its interval is up, never after it; without one, or when no
// grid line falls between the write and the end of the interval, when
// the interval is up.
func TestBeatDueOnTheGrid(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, "2026-12-06T16:00:"+s+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		last        string
		every, grid time.Duration
		want        string
	}{
		{"00.130", 5200 * time.Millisecond, 0, "05.33"},
		{"00.130", 5200 * time.Millisecond, 200 * time.Millisecond, "05.2"},
		{"00.2", 5200 * time.Millisecond, 200 * time.Millisecond, "05.4"}, // on a line: a whole interval
		{"00.999", 5200 * time.Millisecond, time.Second, "06"},
		{"00.130", 100 * time.Millisecond, 200 * time.Millisecond, "00.2"},
		{"00.210", 100 * time.Millisecond, 200 * time.Millisecond, "00.31"}, // no line in between
	} {
		got := beatDue(at(tt.last), tt.every, tt.grid)
		if want := at(tt.want); !got.Equal(want) {
			t.Errorf("beatDue(%s, %v, %v) = %s, want %s", tt.last, tt.every, tt.grid, got.Format("05.000"), want.Format("05.000"))
		}
	}
	// A grid line of now keeps the monotonic clock, so that timers and
	// comparisons with it do not follow steps of the wall clock.
	now := time.Now()
	line := OnGrid(now, 200*time.Millisecond)
	if d := now.Sub(line); d < 0 || d >= 200*time.Millisecond || !strings.Contains(line.String(), " m=") {
		t.Errorf("OnGrid(%v) = %v: %v before, want under 200ms, with the monotonic reading", now, line, d)
	}
}
