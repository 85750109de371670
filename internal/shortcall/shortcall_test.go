package shortcall_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/admq/admq-manager/internal/shortcall"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"))
}

// health is a test service: Check answers by the service name it is asked
// about; List waits for its context and records why it ended.
type health struct {
	grpc_health_v1.UnimplementedHealthServer
	ended chan error
	peers chan *peer.Peer
	dl    chan time.Duration
}

func (h *health) Check(ctx context.Context, req *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	if p, ok := peer.FromContext(ctx); ok && h.peers != nil {
		h.peers <- p
	}
	if dl, ok := ctx.Deadline(); ok && h.dl != nil {
		h.dl <- time.Until(dl)
	}
	switch req.GetService() {
	case "down":
		return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_NOT_SERVING}, nil
	case "refuse":
		st, _ := status.New(codes.FailedPrecondition, "no, because").WithDetails(durationpb.New(3 * time.Second))
		return nil, st.Err()
	case "plain error":
		return nil, errors.New("something broke")
	case "big":
		return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
	case "wait":
		<-ctx.Done()
		h.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// pair is a yamux session between a caller and a callee that serves short
// calls and, behind them, plain gRPC on the same session.
type pair struct {
	caller *yamux.Session
	svc    *health
	calls  atomic.Int64 // calls seen by the interceptor
}

func newPair(t *testing.T, maxRecv int) *pair {
	t.Helper()
	a, b := net.Pipe()
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	caller, err := yamux.Client(a, yc)
	if err != nil {
		t.Fatal(err)
	}
	callee, err := yamux.Server(b, yc)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{caller: caller, svc: &health{ended: make(chan error, 1)}}
	srv := shortcall.NewServer(maxRecv, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p.calls.Add(1)
		return handler(ctx, req)
	})
	grpc_health_v1.RegisterHealthServer(srv, p.svc)
	gs := grpc.NewServer()
	grpc_health_v1.RegisterHealthServer(gs, p.svc)
	ln := shortcall.NewListener(callee.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); _ = gs.Serve(ln) }()
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			c, err := callee.Accept()
			if err != nil {
				return
			}
			go func() {
				short, rest, err := shortcall.Sniff(c, time.Second)
				switch {
				case err != nil:
					c.Close()
				case short:
					srv.ServeConn(ctx, rest, &peer.Peer{Addr: callee.RemoteAddr(), LocalAddr: callee.LocalAddr()})
				default:
					if ln.Push(rest) != nil {
						rest.Close()
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		caller.Close()
		callee.Close()
		gs.Stop()
		ln.Close()
		<-done
		<-done
	})
	return p
}

func (p *pair) client(maxRecv int) grpc_health_v1.HealthClient {
	return grpc_health_v1.NewHealthClient(&shortcall.ClientConn{Open: func() (net.Conn, error) { return p.caller.Open() }, MaxRecv: maxRecv})
}

func TestCallsAndTheirAnswers(t *testing.T) {
	p := newPair(t, 1<<20)
	c := p.client(1 << 20)
	tests := []struct {
		name     string
		service  string
		want     grpc_health_v1.HealthCheckResponse_ServingStatus
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "ok", service: "", want: grpc_health_v1.HealthCheckResponse_SERVING},
		{name: "another answer", service: "down", want: grpc_health_v1.HealthCheckResponse_NOT_SERVING},
		{name: "status error", service: "refuse", wantCode: codes.FailedPrecondition, wantMsg: "no, because"},
		{name: "plain error", service: "plain error", wantCode: codes.Unknown, wantMsg: "something broke"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: tt.service})
			if tt.wantCode != codes.OK {
				st := status.Convert(err)
				if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
					t.Fatalf("got %v, want %v %q", err, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil || resp.GetStatus() != tt.want {
				t.Fatalf("got %v %v, want %v", resp.GetStatus(), err, tt.want)
			}
		})
	}
	if got := p.calls.Load(); got != int64(len(tests)) {
		t.Errorf("interceptor saw %d calls, want %d", got, len(tests))
	}
	// Both ends close the stream of a call; the caller forgets it when the
	// callee's close arrives.
	deadline := time.Now().Add(5 * time.Second)
	for p.caller.NumStreams() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := p.caller.NumStreams(); n != 0 {
		t.Errorf("%d streams left open on the caller's side", n)
	}
}

func TestStatusDetailsSurvive(t *testing.T) {
	p := newPair(t, 1<<20)
	_, err := p.client(1<<20).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: "refuse"})
	details := status.Convert(err).Details()
	if len(details) != 1 {
		t.Fatalf("details %v, want one", details)
	}
	if d, ok := details[0].(*durationpb.Duration); !ok || d.AsDuration() != 3*time.Second {
		t.Fatalf("detail %v, want 3s", details[0])
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	p := newPair(t, 1<<20)
	_, err := p.client(1<<20).Watch(t.Context(), &grpc_health_v1.HealthCheckRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("a streaming call without Streams: %v, want Unimplemented", err)
	}
	cc := &shortcall.ClientConn{Open: func() (net.Conn, error) { return p.caller.Open() }, MaxRecv: 1 << 20}
	err = cc.Invoke(t.Context(), "/grpc.health.v1.Health/Nope", &grpc_health_v1.HealthCheckRequest{}, &grpc_health_v1.HealthCheckResponse{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "Nope") {
		t.Fatalf("unknown method: %v", err)
	}
}

func TestDeadlineAndPeerReachTheCallee(t *testing.T) {
	p := newPair(t, 1<<20)
	p.svc.dl = make(chan time.Duration, 1)
	p.svc.peers = make(chan *peer.Peer, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := p.client(1<<20).Check(ctx, &grpc_health_v1.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := <-p.svc.dl; d <= 0 || d > 5*time.Second {
		t.Errorf("callee's deadline in %v, want within 5s", d)
	}
	if pe := <-p.svc.peers; pe == nil || pe.Addr == nil {
		t.Errorf("callee's peer %v", pe)
	}
}

func TestCallerGivingUpEndsTheCall(t *testing.T) {
	p := newPair(t, 1<<20)
	c := p.client(1 << 20)
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "wait"})
		if status.Code(err) != codes.Canceled {
			t.Fatalf("caller: %v, want Canceled", err)
		}
		if err := <-p.svc.ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("callee's context: %v, want canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "wait"})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("caller: %v, want DeadlineExceeded", err)
		}
		if err := <-p.svc.ended; err == nil {
			t.Fatal("callee's context did not end")
		}
	})
}

func TestSizeLimits(t *testing.T) {
	p := newPair(t, 64)
	_, err := p.client(1<<20).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: strings.Repeat("x", 100)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("request beyond the callee's limit: %v, want ResourceExhausted", err)
	}
	_, err = p.client(1).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: "big"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("answer beyond the caller's limit: %v, want ResourceExhausted", err)
	}
}

// TestPlainGRPCSharesTheSession: a stream that does not start with a short
// call's magic byte reaches the gRPC server with its first byte intact.
func TestPlainGRPCSharesTheSession(t *testing.T) {
	p := newPair(t, 1<<20)
	cc, err := grpc.NewClient("passthrough:///callee",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return p.caller.Open() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := grpc_health_v1.NewHealthClient(cc).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{Service: "down"})
	if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("plain gRPC: %v %v", resp, err)
	}
}

func TestGarbledRequestIsRefused(t *testing.T) {
	p := newPair(t, 1<<20)
	for name, frame := range map[string][]byte{
		"bad version":      {shortcall.Magic, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 'x'},
		"empty method":     {shortcall.Magic, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"huge method name": {shortcall.Magic, 1, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := p.caller.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(frame); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			answer, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("no clean end of the stream: %v", err)
			}
			if len(answer) < 8 || answer[0]|answer[1]|answer[2]|answer[3] == 0 {
				t.Fatalf("answer %x, want an error status", answer)
			}
		})
	}
}
