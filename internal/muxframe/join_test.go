package muxframe

import (
	"bytes"
	"testing"
)

// writes records each write it gets.
type writes struct{ got [][]byte }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, bytes.Clone(p))
	return len(p), nil
}

// TestJoinerJoinsDataFrames writes frames the way yamux's writer does and
// checks that every data frame with a body goes out as one write (a body
// larger than maxJoin right after its header), everything else as it
// came, and the bytes unchanged and in order.
func TestJoinerJoinsDataFrames(t *testing.T) {
	const ack, fin = 2, 4
	big := bytes.Repeat([]byte("b"), maxJoin+1)
	// Bodies that look like data headers, to be taken as bodies all the same.
	lookalike := yamuxFrame(typeData, 0, 7, 5, nil)
	frames := [][][]byte{ // each frame as yamux's writes
		{yamuxFrame(typeWindow, flagSYN, 1, 0, nil)},
		{yamuxFrame(typeData, 0, 1, 3, nil), []byte("abc")},
		{Beat[:]},
		{yamuxFrame(typeData, 0, 1, uint32(len(lookalike)), nil), lookalike},
		{yamuxFrame(typeData, fin, 1, 0, nil)}, // no body: not held
		{yamuxFrame(typePing, ack, 0, 3, nil)},
		{yamuxFrame(typeData, 0, 3, uint32(len(big)), nil), big},
		{yamuxFrame(typeData, flagSYN, 5, 2, nil), []byte("hi")},
	}
	var want [][]byte
	var all []byte
	for _, f := range frames {
		joined := join(f...)
		all = append(all, joined...)
		if len(f) == 2 && len(f[1]) > maxJoin {
			want = append(want, f...)
		} else {
			want = append(want, joined)
		}
	}
	var w writes
	var j Joiner
	for _, f := range frames {
		for _, p := range f {
			if n, err := j.Write(&w, p); n != len(p) || err != nil {
				t.Fatalf("Write of %d bytes: %d, %v", len(p), n, err)
			}
		}
	}
	if !bytes.Equal(join(w.got...), all) {
		t.Fatal("the bytes written differ from yamux's")
	}
	if len(w.got) != len(want) {
		t.Fatalf("%d writes, want %d", len(w.got), len(want))
	}
	for i := range want {
		if !bytes.Equal(w.got[i], want[i]) {
			t.Fatalf("write %d: %d bytes, want %d", i, len(w.got[i]), len(want[i]))
		}
	}
}
