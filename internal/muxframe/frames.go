package muxframe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Out-of-band frames carry an agent's one-way messages to its manager
// below yamux, between two of yamux's frames, the way heartbeats go: no
// stream to open and close, no goroutine on the manager to serve it, no
// answer. A metrics report every 15 s from each of 10,000 agents was half
// of an idle manager's CPU as yamux streams with a call on each.
//
// A frame has yamux's header layout with version FrameVersion, which
// yamux does not know (its own is 0): version, type, six zero bytes,
// length (4, big endian), then length bytes of body. yamux ends a session
// on a frame of another version, so an agent sends these only to a
// manager that agreed on FramesALPN in the TLS handshake; the manager
// takes them out of the bytes it hands to yamux (Scanner.Strip).
const (
	// FramesALPN is the TLS application protocol of a tunnel whose agent
	// may send out-of-band frames. It means short calls too
	// (shortcall.ALPN): an agent offers both, a manager that knows only
	// short calls picks those, and one that knows frames picks this.
	FramesALPN = "admq-tunnel/3"
	// FrameVersion is the first byte of an out-of-band frame.
	FrameVersion = 0xad
	// TypeReport is a frame whose body is a metrics report
	// (agent.v1.MetricsReport in protobuf's wire format).
	TypeReport = 1
	// MaxBody is the largest body a frame may carry. A report of a host
	// with the most filesystems, interfaces and nodes the manager accepts
	// is smaller; a larger message goes as a call.
	MaxBody = 64 << 10
)

// ErrBadFrame is wrapped by the errors of bytes that cannot be read as
// frames: the peer does not follow the protocol, and the session ends.
var ErrBadFrame = errors.New("bad out-of-band frame")

// checkFrameHeader returns the body length of a complete frame header.
func checkFrameHeader(h *[HeaderSize]byte) (uint32, error) {
	n := binary.BigEndian.Uint32(h[8:12])
	switch {
	case h[1] != TypeReport:
		return 0, fmt.Errorf("%w: unknown type %d", ErrBadFrame, h[1])
	case binary.BigEndian.Uint32(h[2:6]) != 0 || binary.BigEndian.Uint16(h[6:8]) != 0:
		return 0, fmt.Errorf("%w: reserved header bytes are not zero", ErrBadFrame)
	case n == 0:
		return 0, fmt.Errorf("%w: empty body", ErrBadFrame)
	case n > MaxBody:
		return 0, fmt.Errorf("%w: body of %d bytes, more than %d", ErrBadFrame, n, MaxBody)
	}
	return n, nil
}

// appendFrame appends a frame of type typ around body to dst.
func appendFrame(dst []byte, typ byte, body []byte) []byte {
	var h [HeaderSize]byte
	h[0], h[1] = FrameVersion, typ
	binary.BigEndian.PutUint32(h[8:12], uint32(len(body)))
	return append(append(dst, h[:]...), body...)
}

// Strip consumes the next bytes of a stream of yamux frames mixed with
// out-of-band frames, as Scan does, and moves what yamux is to read, in
// order, to the front of b: n bytes. take is called with each complete
// out-of-band frame, on the caller's goroutine; body is valid only during
// the call. A body cut across calls is gathered (at most MaxBody bytes).
// On bytes that cannot be frames Strip returns an error wrapping
// ErrBadFrame; the stream cannot be followed after it.
//
// A frame of ours is known by its first byte at a frame boundary, so no
// byte meant for yamux is ever held back. Any other version byte goes to
// yamux, which ends the session on it.
func (f *Scanner) Strip(b []byte, take func(typ byte, body []byte)) (n int, seen Seen, err error) {
	w, r := 0, 0
	for r < len(b) {
		switch {
		case f.own && f.skip == 0: // our frame's header
			k := copy(f.hdr[f.have:], b[r:])
			f.have += k
			r += k
			if f.have < HeaderSize {
				continue
			}
			f.have = 0
			if f.skip, err = checkFrameHeader(&f.hdr); err != nil {
				f.own = false
				return w, seen, err
			}
		case f.own: // our frame's body
			k := int(min(uint64(f.skip), uint64(len(b)-r)))
			part := b[r : r+k]
			r += k
			f.skip -= uint32(k)
			switch {
			case f.skip == 0 && f.body == nil:
				take(f.hdr[1], part)
			case f.skip == 0:
				take(f.hdr[1], append(f.body, part...))
				f.body = nil
			case f.body == nil:
				f.body = append(make([]byte, 0, k+int(f.skip)), part...)
			default:
				f.body = append(f.body, part...)
			}
			if f.skip == 0 {
				f.own = false
			}
		case f.skip > 0: // a yamux data frame's body
			k := int(min(uint64(f.skip), uint64(len(b)-r)))
			w += copy(b[w:], b[r:r+k])
			r += k
			f.skip -= uint32(k)
		case f.have == 0 && b[r] == FrameVersion:
			f.own = true
		default: // a yamux header
			k := copy(f.hdr[f.have:], b[r:])
			w += copy(b[w:], b[r:r+k])
			r += k
			f.have += k
			if f.have == HeaderSize {
				f.have = 0
				f.header(&seen)
			}
		}
	}
	return w, seen, nil
}
