package progress

import (
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		d    time.Duration
		want string
	}{
		{64 << 20, 500 * time.Millisecond, " in 500ms, 134.2 MB/s"},
		{1 << 20, 0, ""},
		{0, time.Second, ""},
	} {
		if got := Rate(tc.n, tc.d); got != tc.want {
			t.Errorf("Rate(%d, %v) = %q, want %q", tc.n, tc.d, got, tc.want)
		}
	}
}

func TestSending(t *testing.T) {
	for _, tc := range []struct {
		at, partial, size int64
		d                 time.Duration
		want              string
	}{
		{12e6, 0, 48e6, 300 * time.Millisecond, "sending p.tar: 12.0 of 48.0 MB (25%), 40.0 MB/s"},
		{30e6, 20e6, 40e6, time.Second, "sending p.tar: 30.0 of 40.0 MB (75%), 10.0 MB/s"},
		{0, 0, 0, 0, "sending p.tar: 0.0 of 0.0 MB (0%)"},
	} {
		if got := Sending("p.tar", tc.at, tc.partial, tc.size, tc.d); got != tc.want {
			t.Errorf("Sending(%d, %d, %d, %v) = %q, want %q", tc.at, tc.partial, tc.size, tc.d, got, tc.want)
		}
	}
}
