package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/fleet"
	agentv1 "github.com/admq/admq-manager/proto/agent/v1"
)

// stuckAgent takes a package transfer's first piece and then waits for
// the test to end, holding the call open.
type stuckAgent struct {
	agentv1.UnimplementedAgentServiceServer
	started chan struct{}
	release chan struct{}
}

func (a *stuckAgent) HasPackage(context.Context, *agentv1.HasPackageRequest) (*agentv1.HasPackageResponse, error) {
	return &agentv1.HasPackageResponse{}, nil
}

func (a *stuckAgent) PushPackage(stream agentv1.AgentService_PushPackageServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	close(a.started)
	select {
	case <-a.release:
	case <-stream.Context().Done():
	}
	return stream.Context().Err()
}

// A session that ends while a call is in flight fails the call as "agent
// not online", not as a call the caller cancelled: closing the session
// closes its client connection first, and gRPC fails the streams of a
// closing connection with codes.Canceled.
func TestSessionClosedUnderCall(t *testing.T) {
	agentEnd, managerEnd := net.Pipe()
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	agentMux, err := yamux.Server(agentEnd, yc)
	if err != nil {
		t.Fatal(err)
	}
	managerMux, err := yamux.Client(managerEnd, yc)
	if err != nil {
		t.Fatal(err)
	}
	agent := &stuckAgent{started: make(chan struct{}), release: make(chan struct{})}
	srv := grpc.NewServer()
	agentv1.RegisterAgentServiceServer(srv, agent)
	served := make(chan struct{})
	go func() { _ = srv.Serve(agentMux); close(served) }()
	t.Cleanup(func() {
		close(agent.release)
		srv.Stop()
		agentMux.Close()
		<-served
	})

	h := &Hub{cfg: Config{}.withDefaults(), log: slog.New(slog.DiscardHandler), metrics: newMetrics(prometheus.NewRegistry()), transfers: make(chan struct{}, 1)}
	const id = 42
	s := newSession(t.Context(), h, id, "", false)
	s.mux = managerMux
	h.sessions = map[ids.ID]*session{id: s}
	pushed := make(chan error, 1)
	go func() {
		pkg := []byte("a package")
		_, err := h.PushPackage(t.Context(), id, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", int64(len(pkg)), bytes.NewReader(pkg))
		pushed <- err
	}()
	<-agent.started
	s.close()
	err = <-pushed
	if !errors.Is(err, fleet.ErrAgentNotOnline) || errors.Is(err, context.Canceled) {
		t.Fatalf("push when the session closed under it: %v; want fleet.ErrAgentNotOnline, not context.Canceled", err)
	}
}
