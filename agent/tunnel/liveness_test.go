package tunnel

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/muxframe"
)

// TestBeatIntervalFollowsTheReports: the heartbeats fall between the
// metrics reports, a report taking the place of one, and no two frames
// are ever further apart than maxBeatGap plus the margin.
func TestBeatIntervalFollowsTheReports(t *testing.T) {
	for _, tt := range []struct {
		report, want time.Duration
		beats        int // heartbeats between two reports
	}{
		{15 * time.Second, 5200 * time.Millisecond, 2}, // the default: 3 frames per report, not 4 (4 s)
		{10 * time.Second, 5200 * time.Millisecond, 1},
		{16 * time.Second, 4200 * time.Millisecond, 3},
		{60 * time.Second, 5200 * time.Millisecond, 11},
		{time.Second, 1200 * time.Millisecond, 0},
		{0, 5200 * time.Millisecond, -1}, // no reports: heartbeats only
	} {
		got := beatInterval(tt.report)
		if got != tt.want {
			t.Errorf("beatInterval(%v) = %v, want %v", tt.report, got, tt.want)
		}
		if tt.report <= 0 {
			continue
		}
		// Heartbeats at got, 2got, ... before the report at tt.report.
		beats := int((tt.report - 1) / got)
		lastGap := tt.report - time.Duration(beats)*got
		if beats != tt.beats || lastGap > maxBeatGap+beatMargin {
			t.Errorf("a report every %v: %d heartbeats between reports, the last gap %v; want %d, at most %v", tt.report, beats, lastGap, tt.beats, maxBeatGap+beatMargin)
		}
	}
}

// TestHeartbeatsFollowTheManagersInterval: a session's heartbeats follow
// the metrics interval the manager asks for, and the next session starts
// with it; an interval fixed by the configuration stays.
func TestHeartbeatsFollowTheManagersInterval(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := New(Config{StateDir: t.TempDir()}, log)
	bc := beatingPipe(t, c)
	if got := bc.Interval(); got != 5200*time.Millisecond {
		t.Fatalf("first session beats every %v, want 5.2s (reports every 15s)", got)
	}
	c.followInterval(bc, 10*time.Second)
	c.followInterval(bc, 4*time.Second)
	if got := bc.Interval(); got != 4200*time.Millisecond {
		t.Fatalf("after the manager asked for 4s reports the session beats every %v, want 4.2s", got)
	}
	if got := beatingPipe(t, c).Interval(); got != 4200*time.Millisecond {
		t.Fatalf("the next session beats every %v, want 4.2s", got)
	}

	fixed := New(Config{StateDir: t.TempDir(), BeatInterval: 3 * time.Second}, log)
	bc = beatingPipe(t, fixed)
	fixed.followInterval(bc, time.Second)
	if got := bc.Interval(); got != 3*time.Second {
		t.Fatalf("a configured beat interval of 3s became %v", got)
	}
	if conn := New(Config{StateDir: t.TempDir(), BeatInterval: -1}, log).beating(nopConn{}); conn != (nopConn{}) {
		t.Fatal("heartbeats turned off, but the session's connection beats")
	}
}

// beatingPipe returns the beating connection of a session of c over a
// connection that swallows what is written.
func beatingPipe(t *testing.T, c *Client) *muxframe.BeatConn {
	t.Helper()
	bc, ok := c.beating(nopConn{}).(*muxframe.BeatConn)
	if !ok {
		t.Fatal("the session's connection sends no heartbeats")
	}
	t.Cleanup(func() { bc.Close() })
	return bc
}

// nopConn swallows writes.
type nopConn struct{ net.Conn }

func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
func (nopConn) Close() error                { return nil }

// TestFrameGridDefaultsAndOff: frames go out on the 200 ms grid unless the
// configuration turns it off (the load program's -no-frame-grid).
func TestFrameGridDefaultsAndOff(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if got := New(Config{StateDir: t.TempDir()}, log).cfg.FrameGrid; got != 200*time.Millisecond {
		t.Errorf("default frame grid %v, want 200ms", got)
	}
	if got := New(Config{StateDir: t.TempDir(), FrameGrid: -1}, log).cfg.FrameGrid; got >= 0 {
		t.Errorf("a negative frame grid became %v: the grid is not off", got)
	}
}
