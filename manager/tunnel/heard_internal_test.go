package tunnel

import (
	"encoding/binary"
	"testing"
)

func yamuxFrame(typ byte, flags uint16, stream, length uint32, body []byte) []byte {
	b := make([]byte, yamuxHeaderSize, yamuxHeaderSize+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], stream)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

// TestFrameScannerCountsStreamOpenings feeds yamux byte streams to the
// scanner in every possible split and checks the SYNs it counts.
func TestFrameScannerCountsStreamOpenings(t *testing.T) {
	// A body full of bytes that would read as SYN headers if the scanner
	// lost the frame boundaries.
	tricky := yamuxFrame(yamuxTypeWindow, yamuxFlagSYN, 9, 0, nil)
	tricky = append(tricky, tricky...)
	const ack, fin = 2, 4
	tests := []struct {
		name   string
		stream []byte
		want   int
	}{
		{"window update SYN", yamuxFrame(yamuxTypeWindow, yamuxFlagSYN, 1, 0, nil), 1},
		{"data SYN with body", yamuxFrame(yamuxTypeData, yamuxFlagSYN, 1, 3, []byte("abc")), 1},
		{"ACK and FIN only", join(yamuxFrame(yamuxTypeWindow, ack, 2, 0, nil), yamuxFrame(yamuxTypeWindow, fin, 2, 0, nil)), 0},
		{"ping with SYN flag", yamuxFrame(2, yamuxFlagSYN, 0, 7, nil), 0},
		{"body that looks like SYNs", yamuxFrame(yamuxTypeData, 0, 3, uint32(len(tricky)), tricky), 0},
		{"three streams among data", join(
			yamuxFrame(yamuxTypeWindow, yamuxFlagSYN, 1, 0, nil),
			yamuxFrame(yamuxTypeData, 0, 1, uint32(len(tricky)), tricky),
			yamuxFrame(yamuxTypeData, yamuxFlagSYN, 3, 2, []byte("hi")),
			yamuxFrame(2, ack, 0, 1, nil),
			yamuxFrame(yamuxTypeWindow, yamuxFlagSYN|ack, 5, 0, nil),
		), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for split := 0; split <= len(tt.stream); split++ {
				for _, step := range []int{1, 5, 12, 13, len(tt.stream) + 1} {
					var f frameScanner
					got := f.scan(tt.stream[:split])
					for rest := tt.stream[split:]; len(rest) > 0; {
						k := min(step, len(rest))
						got += f.scan(rest[:k])
						rest = rest[k:]
					}
					if got != tt.want {
						t.Fatalf("split at %d, steps of %d: %d openings, want %d", split, step, got, tt.want)
					}
					if f.have != 0 || f.skip != 0 {
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
