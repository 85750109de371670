package shortcall

import (
	"net"
	"sync"
)

// Listener is a net.Listener fed by Push: the streams that Sniff found to
// carry plain gRPC, for a grpc.Server to Serve.
type Listener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

// NewListener returns a Listener that reports addr as its address.
func NewListener(addr net.Addr) *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Push hands c to Accept; it fails once the listener is closed.
func (l *Listener) Push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

// Close implements net.Listener; Push and Accept fail from then on.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.addr }
