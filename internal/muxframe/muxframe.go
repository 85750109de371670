// Package muxframe follows the frames of a yamux byte stream (see yamux's
// spec.md) without decoding them: the manager reads the frame headers an
// agent sends to learn of new streams and heartbeats without a goroutine
// of its own, and the agent writes its heartbeats between yamux's frames.
package muxframe

import "encoding/binary"

// A yamux frame header: version, type, flags (2 bytes), stream id (4),
// length (4). Only data frames carry a body, of length bytes; a window
// update, ping or go-away has none.
const (
	HeaderSize = 12
	typeData   = 0
	typeWindow = 1
	typePing   = 2
	flagSYN    = 1
	flagACK    = 2
)

// beatID is the ping id of a heartbeat. A heartbeat is a ping answer
// (ACK) that answers no ping: yamux looks the id up among the pings it
// has sent, finds none, and drops the frame without a reply. yamux numbers
// its pings from 0 up, one per ping; a manager pinging a session every
// 4 s would reach this id after some 370 years.
const beatID = 0xadb0bea7

// Beat is the heartbeat frame: a yamux ping ACK with id beatID.
var Beat = [HeaderSize]byte{
	0, typePing, 0, flagACK, 0, 0, 0, 0,
	beatID >> 24, beatID >> 16 & 0xff, beatID >> 8 & 0xff, beatID & 0xff,
}

// Seen is what Scanner.Scan found in the bytes it was given.
type Seen struct {
	// Opened counts the frames that open a stream (SYN on a data frame or
	// window update).
	Opened int
	// Beats counts heartbeats.
	Beats int
}

// Scanner follows the frame boundaries of a yamux byte stream. It costs a
// few operations per frame header and nothing per body byte. The zero
// value is at the start of a stream.
type Scanner struct {
	hdr  [HeaderSize]byte
	have int    // header bytes collected
	skip uint32 // body bytes still to pass over
	// own is set inside an out-of-band frame (Strip), whose body is
	// gathered in body when it comes in more than one piece.
	own  bool
	body []byte
}

// Scan consumes the next bytes of the stream and reports the frames whose
// headers they completed.
func (f *Scanner) Scan(b []byte) (seen Seen) {
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
		if f.have < HeaderSize {
			return seen
		}
		f.have = 0
		f.header(&seen)
	}
	return seen
}

// header takes the yamux frame header just completed in f.hdr.
func (f *Scanner) header(seen *Seen) {
	typ, flags := f.hdr[1], binary.BigEndian.Uint16(f.hdr[2:4])
	switch {
	case typ == typeData:
		f.skip = binary.BigEndian.Uint32(f.hdr[8:12])
	case f.hdr == Beat:
		seen.Beats++
	}
	if (typ == typeData || typ == typeWindow) && flags&flagSYN != 0 {
		seen.Opened++
	}
}

// AtBoundary reports whether the bytes scanned so far end with a whole
// frame: a frame written now would not split one.
func (f *Scanner) AtBoundary() bool { return f.have == 0 && f.skip == 0 && !f.own }
