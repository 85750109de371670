package tunnel

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/admq/admq-manager/internal/muxframe"
)

// How each side learns that the other is gone, without the manager
// writing anything to an idle agent (at 10,000 agents its pings and pongs
// were most of its idle CPU):
//   - the agent writes a heartbeat (muxframe.Beat, 12 bytes) whenever it
//     has written nothing for its beat interval; the manager answers none
//     and closes a session it has heard nothing from for its idle timeout
//     (9s). The interval follows the metrics reports (beatInterval), which
//     count as writes: with a report every 15s it is 5.2s, so that two
//     heartbeats and one report make 3 frames per report interval for the
//     manager to read (2,000 a second at 10,000 agents; 4s heartbeats made
//     4, 2,700 a second, and each costs the manager two reads and a
//     wake-up). A late frame then has 3.8s to arrive before the idle
//     timeout (it had 5s);
//   - the kernel closes the agent's socket when what it sent (heartbeats
//     at the latest) has gone unacknowledged for tcpUserTimeout: a dead
//     manager host or link. Keepalive probes cover a socket with nothing
//     to send;
//   - the agent pings the manager every KeepAliveInterval (60s) for a
//     manager process that hangs while its kernel still acknowledges.
const (
	defaultKeepAlive = time.Minute
	tcpUserTimeout   = 20 * time.Second
	// maxBeatGap is the longest quiet the agent means to leave between
	// two frames, whatever its report interval: a manager's idle timeout
	// (9s) less the time a late frame may take (TCP retransmits, a busy
	// agent or manager).
	maxBeatGap = 5 * time.Second
	// beatMargin keeps the last heartbeat before a report from going out
	// just before it: a report is due an interval after the last one went
	// out, plus the time its sample takes.
	beatMargin = 200 * time.Millisecond
	// frameGrid is the default grid of the wall clock (Config.FrameGrid)
	// the heartbeats and metrics reports go out on (muxframe.OnGrid): each
	// at the last line before it is due, never later. Agents whose clocks
	// agree (NTP) then write at the same moments, and the manager reads
	// their frames in bursts, five a second, instead of one at a time: one
	// wake-up of its scheduler and netpoller for many frames instead of
	// one each. With 3,000 simulated agents the manager's idle CPU went
	// from 4.6 % to 3.1 % of a core (process counter; profile 3.1 -> 2.6 %)
	// with the heartbeats on the grid, and to 2.3 % (1.8 %) with the
	// reports on it too. beatInterval's 5.2 s (reports every 15 s) is a
	// multiple of it, so that the beats after a report land on the grid
	// without being moved.
	frameGrid = 200 * time.Millisecond
)

// beatInterval is the beat interval of an agent that reports metrics every
// report (0: never): the report interval cut into as few equal parts as
// keep each within maxBeatGap, plus beatMargin. The heartbeats then fall
// between the reports and a report takes the place of one: every 15s
// (the default) gives 5.2s, two heartbeats per report; every 10s gives
// 5.2s, one; every 1s gives 1.2s, none.
func beatInterval(report time.Duration) time.Duration {
	if report <= 0 {
		return maxBeatGap + beatMargin
	}
	parts := (report + maxBeatGap - 1) / maxBeatGap
	return report/parts + beatMargin
}

// tcpKeepAlive probes an idle socket after 15s, then every 5s, 3 times.
var tcpKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// liveDialer dials the manager with the kernel watching the connection.
func liveDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAliveConfig: tcpKeepAlive, Control: setUserTimeout}
}

// setUserTimeout sets TCP_USER_TIMEOUT on a socket being dialed.
func setUserTimeout(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(tcpUserTimeout.Milliseconds()))
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT: %w", err)
	}
	return nil
}

// beating returns the connection for the session's yamux: one that sends
// heartbeats, unless they are off. Its interval follows the metrics
// interval (see reportMetrics) unless the configuration fixes one.
func (c *Client) beating(conn net.Conn) net.Conn {
	switch every := c.cfg.BeatInterval; {
	case every < 0:
		return conn
	case every > 0:
		return muxframe.NewBeatConn(conn, every)
	}
	bc := muxframe.NewBeatConn(conn, beatInterval(c.reportInterval()))
	bc.Align(c.cfg.FrameGrid) // negative: none
	return bc
}

// reportInterval is the metrics interval the manager last asked for, or
// the configured one; 0 when the agent reports none.
func (c *Client) reportInterval() time.Duration {
	if c.collector == nil {
		return 0
	}
	if d := time.Duration(c.interval.Load()); d > 0 {
		return d
	}
	return c.cfg.MetricsInterval
}

// followInterval takes the metrics interval the manager asked for: the
// next sessions start with it, and below, the session's heartbeats follow
// it unless the configuration fixes their interval.
func (c *Client) followInterval(below net.Conn, report time.Duration) {
	if time.Duration(c.interval.Swap(int64(report))) == report {
		return
	}
	if bc, ok := below.(*muxframe.BeatConn); ok && c.cfg.BeatInterval == 0 {
		bc.SetInterval(beatInterval(report))
	}
}
