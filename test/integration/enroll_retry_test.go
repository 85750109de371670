package integration

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/admq/admq-manager/agent/identity"
	"github.com/admq/admq-manager/test/testenv"
)

// slowFirstLink relays agents' connections to the manager's tunnel. On the
// first connection, what the manager sends reaches the agent only after
// delay, and cut drops that connection with whatever is still on its way:
// an enrollment answer lost after the manager committed it.
type slowFirstLink struct {
	ln       net.Listener
	upstream string
	delay    time.Duration

	mu    sync.Mutex
	first bool
	cutCh chan struct{}
	wg    sync.WaitGroup
}

func startSlowFirstLink(t *testing.T, upstream string, delay time.Duration) *slowFirstLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &slowFirstLink{ln: ln, upstream: upstream, delay: delay, first: true, cutCh: make(chan struct{})}
	l.wg.Go(l.serve)
	t.Cleanup(func() {
		ln.Close()
		l.cut()
		l.wg.Wait()
	})
	return l
}

func (l *slowFirstLink) addr() string { return l.ln.Addr().String() }

// cut drops the first connection (once).
func (l *slowFirstLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.cutCh:
	default:
		close(l.cutCh)
	}
}

func (l *slowFirstLink) serve() {
	for {
		down, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.upstream)
		if err != nil {
			down.Close()
			continue
		}
		l.mu.Lock()
		first := l.first
		l.first = false
		l.mu.Unlock()
		closeBoth := sync.OnceFunc(func() { down.Close(); up.Close() })
		l.wg.Go(func() { _, _ = io.Copy(up, down); closeBoth() })
		if !first {
			l.wg.Go(func() { _, _ = io.Copy(down, up); closeBoth() })
			continue
		}
		l.wg.Go(func() { <-l.cutCh; closeBoth() })
		l.wg.Go(func() { l.relaySlowly(down, up); closeBoth() })
	}
}

// relaySlowly copies from up to down, each chunk delay after it arrived,
// until cut.
func (l *slowFirstLink) relaySlowly(down, up net.Conn) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	chunks := make(chan chunk, 1024)
	l.wg.Go(func() {
		defer close(chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				chunks <- chunk{time.Now(), bytes.Clone(buf[:n])}
			}
			if err != nil {
				return
			}
		}
	})
	for c := range chunks {
		select {
		case <-time.After(time.Until(c.at.Add(l.delay))):
		case <-l.cutCh:
			return
		}
		if _, err := down.Write(c.data); err != nil {
			return
		}
	}
}

// TestEnrollAnswerLostIsRetried: an admq-agent process with a single-use
// token whose enrollment answer is lost after the manager committed it
// (the connection drops while the answer is on its way) enrolls again with
// the same key, as the same server, and comes online; the token has one use.
func TestEnrollAnswerLostIsRetried(t *testing.T) {
	integrationTest(t)
	tm := testenv.StartManager(t)
	c := tm.Client(t)
	tok := c.CreateToken(t, 1, 0)
	link := startSlowFirstLink(t, tm.TunnelAddr(), 3*time.Second)

	a := testenv.StartAgent(t, agentBin, link.addr(), testenv.AgentOptions{Token: tok.Token, AdvertiseIP: "127.0.0.41"})
	// The manager commits the enrollment at once; its answer would reach
	// the agent 3 s later. Drop the connection as soon as the server exists.
	var first testenv.Server
	testenv.Eventually(t, 60*time.Second, "the first enrollment to be committed", func() bool {
		if a.Exited() {
			t.Fatalf("%s exited (%v); stderr:\n%s", a.Name, a.WaitErr(), a.Log())
		}
		total, list := c.Servers(t, "")
		if total == 0 {
			return false
		}
		first = list[0]
		return true
	})
	link.cut()
	if _, err := os.Stat(filepath.Join(a.StateDir, identity.IDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the agent saved an identity before the cut (%v): the answer was not lost", err)
	}

	testenv.Eventually(t, 60*time.Second, a.Name+" to connect", func() bool {
		if a.Exited() {
			t.Fatalf("%s exited (%v) instead of retrying; stderr:\n%s", a.Name, a.WaitErr(), a.Log())
		}
		return strings.Contains(a.Log(), "connected to manager")
	})
	if id := a.ID(t); id != first.ID {
		t.Errorf("the agent connected as server %s, the first attempt enrolled %s", id, first.ID)
	}
	c.WaitStatus(t, first.ID, "online", 30*time.Second)
	if total, list := c.Servers(t, ""); total != 1 {
		t.Errorf("%d servers after the retry, want 1: %+v", total, list)
	}
	if got := c.TokenByID(t, tok.ID); got.Uses != 1 {
		t.Errorf("token uses = %d, want 1", got.Uses)
	}
	if !strings.Contains(tm.Log(), "retry=true") {
		t.Errorf("the manager did not log a retried enrollment:\n%s", tm.Log())
	}
	if _, err := os.Stat(filepath.Join(a.StateDir, identity.PendingKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pending key file after enrollment: %v, want it removed", err)
	}
	id, err := identity.Load(a.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM); err != nil {
		t.Errorf("the agent's certificate is not for its key: %v", err)
	}
}
