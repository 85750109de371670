package tunnel

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/muxframe"
	"github.com/admq/admq-manager/internal/shortcall"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// session is one agent's live yamux session and, while there is work for
// the agent that short calls cannot carry, a gRPC client connection over
// it.
type session struct {
	hub      *Hub
	ctx      context.Context // the hub's: calls the agent makes end with it
	id       ids.ID
	mux      *yamux.Session
	remoteIP string
	peer     Peer // the identity of the agent's calls
	log      *slog.Logger
	// short is set when the agent speaks short calls (shortcall.ALPN or
	// muxframe.FramesALPN).
	short bool
	// conn is below mux and knows when the agent last sent anything;
	// pinging is set while the keepalive sweep waits for a pong.
	conn    *heardConn
	pinging atomic.Bool

	mu       sync.Mutex
	cc       *grpc.ClientConn
	inflight int
	idle     *time.Timer
	closed   bool
}

func newSession(ctx context.Context, h *Hub, id ids.ID, remoteIP string, short bool) *session {
	return &session{ctx: ctx, hub: h, id: id, remoteIP: remoteIP, peer: newPeer(id, remoteIP), short: short, log: h.log}
}

// opened is heardConn's hook for streams the agent opens.
func (s *session) opened(n int) {
	for range n {
		go s.hub.acceptStream(s)
	}
}

// ended is heardConn's hook for the end of the session.
func (s *session) ended() { go s.hub.endSession(s) }

// call runs fn with a client for the agent's service: with short calls
// for an agent that speaks them, otherwise over the session's gRPC client
// connection, dialed first if none is open. A call that fails because the
// session ended under it (the agent died or dropped off the network)
// fails with errClosed.
func (s *session) call(ctx context.Context, fn func(agentv1.AgentServiceClient) error) error {
	var err error
	if s.short {
		if s.isClosed() {
			return errClosed
		}
		c := &agentConn{s: s}
		err = fn(agentv1.NewAgentServiceClient(c))
		c.release()
	} else {
		cc, aerr := s.acquire()
		if aerr != nil {
			return aerr
		}
		err = fn(agentv1.NewAgentServiceClient(cc))
		s.release()
	}
	if err != nil && ctx.Err() == nil && s.isClosed() {
		// close shuts the client connection, which fails the calls in
		// flight with codes.Canceled ("grpc: the client connection is
		// closing") when it wins the race with the transport's own EOF:
		// that reads as if the caller had given up, and agentErr would
		// make it context.Canceled. The caller did not; the agent went.
		return fmt.Errorf("%w: %v", errClosed, err)
	}
	return err
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *session) acquire() (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	if s.cc == nil {
		// passthrough: the target is only a label; the dialer opens a stream
		// on this session whatever the target says.
		cc, err := grpc.NewClient("passthrough:///agent-"+s.id.String(),
			grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
				return s.mux.Open()
			}),
			grpc.WithTransportCredentials(insecure.NewCredentials()), // TLS is below yamux
			grpc.WithUnaryInterceptor(s.hub.metrics.clientInterceptor),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
			// Answers are small but for logs; package chunks are written
			// from a pooled buffer rather than one held per agent, in
			// writes of whole TLS records (bulkWrite).
			grpc.WithReadBufferSize(8<<10), grpc.WithWriteBufferSize(bulkWrite), grpc.WithSharedWriteBuffer(true),
		)
		if err != nil {
			return nil, fmt.Errorf("grpc client for agent %s: %w", s.id, err)
		}
		s.cc = cc
		s.hub.clientConns.Add(1)
		s.hub.metrics.clientConns.Inc()
	}
	s.inflight++
	return s.cc, nil
}

func (s *session) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 && s.cc != nil && !s.closed {
		if s.hub.clientConns.Load() > int64(s.hub.cfg.MaxIdleClientConns) {
			// A fan-out to many agents: keeping each one's client conn for
			// the idle timeout would hold thousands at once.
			s.closeClientLocked()
			return
		}
		s.idle = time.AfterFunc(s.hub.cfg.ClientIdleTimeout, s.closeIfIdle)
	}
}

func (s *session) closeIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == 0 && s.cc != nil {
		s.closeClientLocked()
	}
}

func (s *session) closeClientLocked() {
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	if s.cc != nil {
		s.cc.Close()
		s.cc = nil
		s.hub.clientConns.Add(-1)
		s.hub.metrics.clientConns.Dec()
	}
}

// close ends the session and its client connection; safe to call twice.
func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	s.closeClientLocked()
	s.mu.Unlock()
	s.mux.Close()
}

// bulkWrite is the gRPC client's write buffer: a package push flushes it
// full, as one yamux data frame whose 12-byte header muxframe.Joiner sends
// in the same write, so each write fills exactly four TLS records of 16 KiB.
// gRPC's default of 32 KiB made three records of such a write, the last
// of 12 bytes, each sealed and written with a system call of its own.
const bulkWrite = 4*tlsRecord - muxframe.HeaderSize

// tlsRecord is the most plaintext one TLS record carries.
const tlsRecord = 16 << 10

// agentConn carries the calls of one session.call to an agent that speaks
// short calls: unary calls each on a stream of their own, streaming calls
// (package pushes) over the session's gRPC client connection, dialed on
// the first and given back when the call ends.
type agentConn struct {
	s  *session
	mu sync.Mutex
	cc *grpc.ClientConn // acquired for a streaming call
}

var _ grpc.ClientConnInterface = (*agentConn)(nil)

// maxAnswer bounds an agent's answer (node logs are the largest).
const maxAnswer = 16 << 20

func (c *agentConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	start := time.Now()
	err := c.invoke(ctx, method, args, reply)
	c.s.hub.metrics.observe("manager_to_agent", method, start, err)
	return err
}

func (c *agentConn) invoke(ctx context.Context, method string, args, reply any) error {
	st, err := c.s.mux.OpenStream()
	if err != nil {
		return status.Errorf(codes.Unavailable, "open a stream to the agent: %v", err)
	}
	return shortcall.Invoke(ctx, st, method, args, reply, maxAnswer)
}

func (c *agentConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	c.mu.Lock()
	if c.cc == nil {
		cc, err := c.s.acquire()
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.cc = cc
	}
	cc := c.cc
	c.mu.Unlock()
	return cc.NewStream(ctx, desc, method, opts...)
}

func (c *agentConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cc != nil {
		c.cc = nil
		c.s.release()
	}
}
