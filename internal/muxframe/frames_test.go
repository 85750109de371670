package muxframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func ownFrame(body []byte) []byte { return appendFrame(nil, TypeReport, body) }

// stripAll feeds stream to one Scanner in the pieces cuts makes of it and
// returns what yamux would read, the frames taken and what was seen.
func stripAll(stream []byte, cuts func(rest int) int) (yamuxBytes []byte, frames [][]byte, seen Seen, err error) {
	var f Scanner
	buf := bytes.Clone(stream) // Strip works in place
	take := func(typ byte, body []byte) {
		if typ != TypeReport {
			panic("type")
		}
		frames = append(frames, bytes.Clone(body))
	}
	for rest := buf; len(rest) > 0; {
		k := cuts(len(rest))
		n, s, serr := f.Strip(rest[:k], take)
		yamuxBytes = append(yamuxBytes, rest[:n]...)
		seen.Opened += s.Opened
		seen.Beats += s.Beats
		if serr != nil {
			return yamuxBytes, frames, seen, serr
		}
		rest = rest[k:]
	}
	if !f.AtBoundary() {
		err = errors.New("mid-frame at the end")
	}
	return yamuxBytes, frames, seen, err
}

// TestStripTakesFramesOut feeds streams of yamux frames mixed with
// out-of-band frames to Strip cut at every byte boundary and in steps of
// several sizes: yamux must get exactly its own bytes, in order, and the
// frames must come out whole, whatever the cuts.
func TestStripTakesFramesOut(t *testing.T) {
	report := bytes.Repeat([]byte{FrameVersion, 0, TypeReport, 0}, 50)
	// yamux bodies that would read as our frames, heartbeats or SYNs if
	// the boundaries were lost.
	tricky := join(ownFrame([]byte("not a frame")), yamuxFrame(typeWindow, flagSYN, 9, 0, nil), Beat[:])
	tests := []struct {
		name   string
		yamux  [][]byte // frames for yamux, interleaved with frames
		frames [][]byte // frames[i] goes before yamux[i]
		want   Seen
	}{
		{"a frame alone", nil, [][]byte{report}, Seen{}},
		{"a one-byte frame", nil, [][]byte{{FrameVersion}}, Seen{}},
		{"frames back to back", nil, [][]byte{report, {1}, report}, Seen{}},
		{"between yamux frames", [][]byte{
			yamuxFrame(typeWindow, flagSYN, 1, 0, nil),
			yamuxFrame(typeData, 0, 1, uint32(len(tricky)), tricky),
			Beat[:],
			yamuxFrame(typeData, flagSYN, 3, 2, []byte("hi")),
		}, [][]byte{report, nil, report, bytes.Repeat([]byte{FrameVersion}, 300)}, Seen{Opened: 2, Beats: 1}},
		{"a body that looks like our frames", [][]byte{
			yamuxFrame(typeData, 0, 5, uint32(len(tricky)), tricky),
		}, [][]byte{nil}, Seen{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stream, wantYamux []byte
			var wantFrames [][]byte
			for i := range max(len(tt.yamux), len(tt.frames)) {
				if i < len(tt.frames) && tt.frames[i] != nil {
					stream = append(stream, ownFrame(tt.frames[i])...)
					wantFrames = append(wantFrames, tt.frames[i])
				}
				if i < len(tt.yamux) {
					stream = append(stream, tt.yamux[i]...)
					wantYamux = append(wantYamux, tt.yamux[i]...)
				}
			}
			check := func(how string, cuts func(int) int) {
				t.Helper()
				gotYamux, gotFrames, seen, err := stripAll(stream, cuts)
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if !bytes.Equal(gotYamux, wantYamux) {
					t.Fatalf("%s: yamux got %x, want %x", how, gotYamux, wantYamux)
				}
				if fmt.Sprint(gotFrames) != fmt.Sprint(wantFrames) {
					t.Fatalf("%s: frames %v, want %v", how, gotFrames, wantFrames)
				}
				if seen != tt.want {
					t.Fatalf("%s: seen %+v, want %+v", how, seen, tt.want)
				}
			}
			for split := 0; split <= len(stream); split++ {
				first := true
				check(fmt.Sprintf("split at %d", split), func(rest int) int {
					if first {
						first = false
						if split > 0 && split < rest {
							return split
						}
					}
					return rest
				})
			}
			for _, step := range []int{1, 2, 5, 11, 12, 13, 100} {
				check(fmt.Sprintf("steps of %d", step), func(rest int) int { return min(step, rest) })
			}
		})
	}
}

// TestStripRefusesBadFrames: bytes that start as one of our frames but
// are not one end the stream with ErrBadFrame; what came before still
// reaches yamux, and nothing of the bad frame is taken.
func TestStripRefusesBadFrames(t *testing.T) {
	hdr := func(edit func(h []byte)) []byte {
		h := ownFrame([]byte("body"))
		edit(h)
		return h
	}
	before := yamuxFrame(typeWindow, flagSYN, 1, 0, nil)
	for name, bad := range map[string][]byte{
		"unknown type":        hdr(func(h []byte) { h[1] = 2 }),
		"type zero":           hdr(func(h []byte) { h[1] = 0 }),
		"reserved flags":      hdr(func(h []byte) { h[3] = 1 }),
		"reserved stream id":  hdr(func(h []byte) { h[7] = 1 }),
		"empty body":          hdr(func(h []byte) { binary.BigEndian.PutUint32(h[8:12], 0) }),
		"body over the limit": hdr(func(h []byte) { binary.BigEndian.PutUint32(h[8:12], MaxBody+1) }),
		"body of 4 GiB":       hdr(func(h []byte) { binary.BigEndian.PutUint32(h[8:12], 1<<32-1) }),
	} {
		t.Run(name, func(t *testing.T) {
			for _, step := range []int{1, 7, 1000} {
				got, frames, _, err := stripAll(join(before, bad), func(rest int) int { return min(step, rest) })
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("steps of %d: err %v, want ErrBadFrame", step, err)
				}
				if !bytes.Equal(got, before) || len(frames) != 0 {
					t.Fatalf("steps of %d: yamux got %x and frames %v, want only the frame before", step, got, frames)
				}
			}
		})
	}
	t.Run("a frame at MaxBody is fine", func(t *testing.T) {
		body := bytes.Repeat([]byte{7}, MaxBody)
		_, frames, _, err := stripAll(ownFrame(body), func(rest int) int { return min(4096, rest) })
		if err != nil || len(frames) != 1 || !bytes.Equal(frames[0], body) {
			t.Fatalf("err %v, %d frames", err, len(frames))
		}
	})
}

// FuzzStrip checks two things on whatever bytes arrive. Read as a raw
// stream, they give the same yamux bytes, frames and error however the
// reads cut them, and never more bytes than came in. Read as a recipe
// for a well-formed stream (a mix of yamux frames, heartbeats and our
// frames, with bodies drawn from the input), stripping gives back exactly
// the yamux part and the frames.
func FuzzStrip(f *testing.F) {
	f.Add(join(ownFrame([]byte("r")), Beat[:], yamuxFrame(typeData, flagSYN, 1, 2, []byte{FrameVersion, 1})), uint16(3), uint16(13))
	f.Add([]byte{FrameVersion, TypeReport, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9}, uint16(1), uint16(12))
	f.Add([]byte{0, 3, 1, 2, 0xad, 0xad, 0, 0, 7, 7, 7, 7, 7, 7, 1, 2, 3, 4}, uint16(5), uint16(6))
	f.Fuzz(func(t *testing.T, in []byte, cut1, cut2 uint16) {
		// 1: raw bytes, cut in three and one at a time, against one read.
		wantY, wantF, _, wantErr := stripAll(in, func(rest int) int { return rest })
		if len(wantY) > len(in) {
			t.Fatalf("%d bytes for yamux out of %d", len(wantY), len(in))
		}
		a, b := int(cut1), int(cut2)
		reads := 0
		for name, cuts := range map[string]func(int) int{
			"three reads": func(rest int) int {
				reads++
				switch reads {
				case 1:
					return max(1, min(rest, a%(len(in)+1)))
				case 2:
					return max(1, min(rest, b%(len(in)+1)))
				}
				return rest
			},
			"a byte at a time": func(int) int { return 1 },
		} {
			reads = 0
			gotY, gotF, _, gotErr := stripAll(in, cuts)
			if !bytes.Equal(gotY, wantY) || fmt.Sprint(gotF) != fmt.Sprint(wantF) || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("%s: yamux %x frames %v err %v; in one read: yamux %x frames %v err %v", name, gotY, gotF, gotErr, wantY, wantF, wantErr)
			}
		}

		// 2: the input as a recipe for a well-formed stream.
		var stream, yamuxOnly []byte
		var frames [][]byte
		for rest := in; len(rest) > 0; {
			kind, n := rest[0]%4, int(rest[0]>>2)
			rest = rest[1:]
			body := rest[:min(n, len(rest))]
			rest = rest[len(body):]
			switch kind {
			case 0:
				fr := yamuxFrame(typeData, 0, 1, uint32(len(body)), body)
				stream, yamuxOnly = append(stream, fr...), append(yamuxOnly, fr...)
			case 1:
				stream, yamuxOnly = append(stream, Beat[:]...), append(yamuxOnly, Beat[:]...)
			case 2:
				fr := yamuxFrame(typeWindow, flagSYN, uint32(n), 0, nil)
				stream, yamuxOnly = append(stream, fr...), append(yamuxOnly, fr...)
			default:
				if len(body) == 0 {
					body = []byte{0}
				}
				stream = append(stream, ownFrame(body)...)
				frames = append(frames, bytes.Clone(body))
			}
		}
		reads = 0
		gotY, gotF, _, err := stripAll(stream, func(rest int) int {
			reads++
			if reads%2 == 1 {
				return max(1, min(rest, a%(len(stream)+1)))
			}
			return max(1, min(rest, b%(len(stream)+1)))
		})
		if err != nil || !bytes.Equal(gotY, yamuxOnly) || fmt.Sprint(gotF) != fmt.Sprint(frames) {
			t.Fatalf("well-formed stream: err %v; yamux %x, want %x; frames %v, want %v", err, gotY, yamuxOnly, gotF, frames)
		}
	})
}

// strippingConn hands yamux what Strip leaves and keeps the frames, as
// the manager does.
type strippingConn struct {
	net.Conn
	frames Scanner
	mu     sync.Mutex
	got    [][]byte
	err    error
}

func (c *strippingConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		n, _, serr := c.frames.Strip(p[:n], func(_ byte, body []byte) {
			c.mu.Lock()
			c.got = append(c.got, bytes.Clone(body))
			c.mu.Unlock()
		})
		if serr != nil {
			c.mu.Lock()
			c.err = serr
			c.mu.Unlock()
			return n, serr
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// TestFramesBetweenYamuxFrames runs real yamux sessions over TCP with
// frames sent (BeatConn.Send) from another goroutine while streams from
// both sides echo random data and heartbeats go out every millisecond:
// every byte must come back, yamux must see nothing of the frames, and
// every frame must arrive whole and in order.
func TestFramesBetweenYamuxFrames(t *testing.T) {
	raw, srvRaw := loopbackPair(t)
	bc := NewBeatConn(raw, time.Millisecond)
	heard := &strippingConn{Conn: srvRaw}
	cli, srv, srvLog := echoingSessions(t, bc, heard)

	stop := make(chan struct{})
	var sent [][]byte
	sender := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				sender <- nil
				return
			default:
			}
			// Bodies that start like our frames and yamux's.
			body := append(ownFrame(fmt.Appendf(nil, "report %d", i)), yamuxFrame(typeData, flagSYN, 1, 1, nil)...)
			body = append(body, bytes.Repeat([]byte{byte(i)}, i%3000)...)
			if err := bc.Send(TypeReport, body); err != nil {
				sender <- err
				return
			}
			sent = append(sent, body)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	echoFromBoth(t, cli, srv, 6)
	close(stop)
	if err := <-sender; err != nil {
		t.Fatalf("send: %v", err)
	}
	// A ping round trip after the last frame: the frames before it are in.
	if _, err := cli.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	heard.mu.Lock()
	got, serr := heard.got, heard.err
	heard.mu.Unlock()
	if serr != nil {
		t.Fatalf("strip: %v", serr)
	}
	if len(got) != len(sent) {
		t.Fatalf("%d frames arrived, %d sent", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if l := srvLog(); l != "" {
		t.Errorf("the server's yamux logged: %s", l)
	}
	if srv.IsClosed() || cli.IsClosed() {
		t.Fatal("a session closed")
	}
	t.Logf("%d frames sent between yamux's", len(sent))

	for _, n := range []int{0, MaxBody + 1} {
		if err := bc.Send(TypeReport, make([]byte, n)); err == nil {
			t.Errorf("Send of a %d-byte body: no error", n)
		}
	}
}
