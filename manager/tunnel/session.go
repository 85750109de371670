package tunnel

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/admq/admq-manager/internal/ids"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// session is one agent's live yamux session and, while there is work for
// the agent, a gRPC client connection over it.
type session struct {
	hub      *Hub
	id       ids.ID
	mux      *yamux.Session
	remoteIP string
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

func newSession(h *Hub, id ids.ID, mux *yamux.Session, remoteIP string) *session {
	return &session{hub: h, id: id, mux: mux, remoteIP: remoteIP}
}

// call runs fn with a client for the agent's service, dialing it first if
// the session has none open. A call that fails because the session ended
// under it (the agent died or dropped off the network) fails with
// errClosed.
func (s *session) call(ctx context.Context, fn func(agentv1.AgentServiceClient) error) error {
	cc, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	err = fn(agentv1.NewAgentServiceClient(cc))
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
			// from a pooled buffer rather than one held per agent.
			grpc.WithReadBufferSize(8<<10), grpc.WithSharedWriteBuffer(true),
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
