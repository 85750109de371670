package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/invalid"
)

// HealthCheck is one check run on the agent's host; exactly one of TCPAddr,
// HTTPURL and Command is set.
type HealthCheck struct {
	TCPAddr string
	HTTPURL string
	Command []string
	Timeout time.Duration // 0: 5s; at most 60s
	// Send, with TCPAddr, is written once connected; the answer, read
	// until the server closes or the timeout, is the detail (a ZooKeeper
	// four-letter word and its answer).
	Send []byte
}

// maxSend bounds HealthCheck.Send.
const maxSend = 1 << 10

// check validates the check's form.
func (c HealthCheck) check() error {
	set := 0
	for _, b := range []bool{c.TCPAddr != "", c.HTTPURL != "", len(c.Command) > 0} {
		if b {
			set++
		}
	}
	if set != 1 {
		return invalid.Field("check", "want exactly one of tcp_addr, http_url and command")
	}
	if c.Timeout < 0 || c.Timeout > MaxHealthTimeout {
		return invalid.Field("timeout_ms", "%v: want 0 to %v", c.Timeout, MaxHealthTimeout)
	}
	if len(c.Send) > 0 && c.TCPAddr == "" {
		return invalid.Field("send", "only a tcp_addr check sends")
	}
	if len(c.Send) > maxSend {
		return invalid.Field("send", "%d bytes: at most %d", len(c.Send), maxSend)
	}
	if c.TCPAddr != "" {
		if _, _, err := net.SplitHostPort(c.TCPAddr); err != nil {
			return invalid.Field("tcp_addr", "%q: %v", c.TCPAddr, err)
		}
	}
	if len(c.Command) > 0 && c.Command[0] == "" {
		return invalid.Field("command", "empty command")
	}
	return nil
}

// Health check bounds.
const (
	DefaultHealthTimeout = 5 * time.Second
	MaxHealthTimeout     = time.Minute
	maxDetail            = 4 << 10
)

// CheckHealth runs the check. The error is for a malformed check only; a
// failing check is ok=false with the reason in detail.
func (m *Manager) CheckHealth(ctx context.Context, c HealthCheck) (ok bool, detail string, err error) {
	if err := c.check(); err != nil {
		return false, "", err
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultHealthTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	switch {
	case c.TCPAddr != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCPAddr)
		if err != nil {
			return false, bound(err.Error()), nil
		}
		defer conn.Close()
		if len(c.Send) == 0 {
			return true, "connected to " + c.TCPAddr, nil
		}
		deadline, _ := ctx.Deadline()
		_ = conn.SetDeadline(deadline)
		if _, err := conn.Write(c.Send); err != nil {
			return false, bound(err.Error()), nil
		}
		var out limitedBuffer
		if _, err := io.Copy(&out, conn); err != nil && out.buf.Len() == 0 {
			return false, bound(err.Error()), nil
		}
		return true, out.buf.String(), nil
	case c.HTTPURL != "":
		u, err := url.Parse(c.HTTPURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false, "", invalid.Field("http_url", "%q: want an http or https URL", c.HTTPURL)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTPURL, nil)
		if err != nil {
			return false, "", invalid.Field("http_url", "%v", err)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			return false, bound(err.Error()), nil
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode >= 200 && resp.StatusCode < 300, "HTTP " + resp.Status, nil
	default:
		cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
		var out limitedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		text := strings.TrimSpace(out.buf.String())
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) || ctx.Err() != nil || errors.Is(err, exec.ErrNotFound) {
				return false, bound(fmt.Sprintf("%v: %s", err, text)), nil
			}
			return false, bound(err.Error()), nil
		}
		return true, bound(text), nil
	}
}

func bound(s string) string {
	if len(s) > maxDetail {
		return s[:maxDetail]
	}
	return s
}

// limitedBuffer keeps the first maxDetail bytes written to it.
type limitedBuffer struct{ buf bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxDetail - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
