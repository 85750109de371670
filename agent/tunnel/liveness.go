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
//     has written nothing for BeatInterval (4s); the manager answers none
//     and closes a session it has heard nothing from for its idle timeout
//     (9s). An agent that reports metrics every 15s beats 3 times between
//     two reports (at 3s, 4 times: 2,700 instead of 2,000 frames a second
//     for the manager to read at 10,000 agents), and a late heartbeat has
//     5s to arrive, as the pong to the manager's ping after 4s of quiet
//     had before heartbeats;
//   - the kernel closes the agent's socket when what it sent (heartbeats
//     at the latest) has gone unacknowledged for tcpUserTimeout: a dead
//     manager host or link. Keepalive probes cover a socket with nothing
//     to send;
//   - the agent pings the manager every KeepAliveInterval (60s) for a
//     manager process that hangs while its kernel still acknowledges.
const (
	defaultBeatInterval = 4 * time.Second
	defaultKeepAlive    = time.Minute
	tcpUserTimeout      = 20 * time.Second
)

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
// heartbeats, unless they are off.
func (c *Client) beating(conn net.Conn) net.Conn {
	if c.cfg.BeatInterval < 0 {
		return conn
	}
	return muxframe.NewBeatConn(conn, c.cfg.BeatInterval)
}
