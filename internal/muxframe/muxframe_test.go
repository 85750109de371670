package muxframe

import (
	"encoding/binary"
	"testing"
)

func yamuxFrame(typ byte, flags uint16, stream, length uint32, body []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], stream)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

// TestScannerFindsOpeningsAndBeats feeds yamux byte streams to the
// scanner in every possible split and checks the SYNs and heartbeats it
// counts.
func TestScannerFindsOpeningsAndBeats(t *testing.T) {
	// A body full of bytes that would read as SYN headers if the scanner
	// lost the frame boundaries.
	tricky := yamuxFrame(typeWindow, flagSYN, 9, 0, nil)
	tricky = append(tricky, tricky...)
	tricky = append(tricky, Beat[:]...)
	const ack, fin = 2, 4
	tests := []struct {
		name   string
		stream []byte
		want   Seen
	}{
		{"window update SYN", yamuxFrame(typeWindow, flagSYN, 1, 0, nil), Seen{Opened: 1}},
		{"data SYN with body", yamuxFrame(typeData, flagSYN, 1, 3, []byte("abc")), Seen{Opened: 1}},
		{"ACK and FIN only", join(yamuxFrame(typeWindow, ack, 2, 0, nil), yamuxFrame(typeWindow, fin, 2, 0, nil)), Seen{}},
		{"ping with SYN flag", yamuxFrame(typePing, flagSYN, 0, 7, nil), Seen{}},
		{"pong", yamuxFrame(typePing, ack, 0, 7, nil), Seen{}},
		{"heartbeat", Beat[:], Seen{Beats: 1}},
		{"body that looks like SYNs and heartbeats", yamuxFrame(typeData, 0, 3, uint32(len(tricky)), tricky), Seen{}},
		{"three streams and two heartbeats among data", join(
			yamuxFrame(typeWindow, flagSYN, 1, 0, nil),
			Beat[:],
			yamuxFrame(typeData, 0, 1, uint32(len(tricky)), tricky),
			yamuxFrame(typeData, flagSYN, 3, 2, []byte("hi")),
			yamuxFrame(typePing, ack, 0, 1, nil),
			Beat[:],
			yamuxFrame(typeWindow, flagSYN|ack, 5, 0, nil),
		), Seen{Opened: 3, Beats: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for split := 0; split <= len(tt.stream); split++ {
				for _, step := range []int{1, 5, 12, 13, len(tt.stream) + 1} {
					var f Scanner
					got := f.Scan(tt.stream[:split])
					for rest := tt.stream[split:]; len(rest) > 0; {
						k := min(step, len(rest))
						s := f.Scan(rest[:k])
						got.Opened += s.Opened
						got.Beats += s.Beats
						rest = rest[k:]
					}
					if got != tt.want {
						t.Fatalf("split at %d, steps of %d: %+v, want %+v", split, step, got, tt.want)
					}
					if !f.AtBoundary() {
						t.Fatalf("split at %d, steps of %d: scanner mid-frame at the end (%d header bytes, %d to skip)", split, step, f.have, f.skip)
					}
				}
			}
		})
	}
}

func join(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
