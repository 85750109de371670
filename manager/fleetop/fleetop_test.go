package fleetop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
)

// fakeFleet is n servers; some offline, some failing, some slow.
type fakeFleet struct {
	servers []fleet.Server
	offline map[ids.ID]bool
	failing map[ids.ID]bool
	hang    map[ids.ID]bool

	inflight, peak atomic.Int64
}

func (f *fakeFleet) Servers(_ context.Context, flt fleet.ServerFilter, p paging.Page) ([]fleet.Server, int, error) {
	var sel []fleet.Server
	for _, s := range f.servers {
		if flt.AreaID.IsZero() || s.AreaID == flt.AreaID {
			sel = append(sel, s)
		}
	}
	lo := min((p.Num-1)*p.Size, len(sel))
	hi := min(lo+p.Size, len(sel))
	return sel[lo:hi], len(sel), nil
}

func (f *fakeFleet) Server(_ context.Context, id ids.ID) (fleet.Server, error) {
	for _, s := range f.servers {
		if s.ID == id {
			return s, nil
		}
	}
	return fleet.Server{}, fleet.ErrServerNotFound
}

func (f *fakeFleet) Online(id ids.ID) bool { return !f.offline[id] }

func (f *fakeFleet) call(ctx context.Context, id ids.ID) error {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(time.Millisecond)
	switch {
	case f.hang[id]:
		<-ctx.Done()
		return ctx.Err()
	case f.failing[id]:
		return errors.New("agent said no")
	}
	return nil
}

func (f *fakeFleet) Ping(ctx context.Context, id ids.ID) (time.Duration, string, error) {
	return time.Millisecond, "v1", f.call(ctx, id)
}

func (f *fakeFleet) Facts(ctx context.Context, id ids.ID) (fleet.Facts, error) {
	return fleet.Facts{Hostname: "h-" + id.String()}, f.call(ctx, id)
}

func newFake(n int) *fakeFleet {
	f := &fakeFleet{offline: map[ids.ID]bool{}, failing: map[ids.ID]bool{}, hang: map[ids.ID]bool{}}
	for i := range n {
		f.servers = append(f.servers, fleet.Server{ID: ids.ID(1000 + i), AreaID: ids.ID(1 + i%2)})
	}
	return f
}

func newTestService(t *testing.T, f *fakeFleet) *Service {
	t.Helper()
	gen, _ := ids.NewGenerator(1)
	s := NewService(Deps{
		Servers: f, Agents: f, IDs: gen,
		ClusterNodes: func(context.Context, ids.ID) ([]TargetNode, error) {
			return []TargetNode{{ID: 1, ServerID: 1000, Component: "broker"}, {ID: 2, ServerID: 1001, Component: "coordinator"}}, nil
		},
		Node: func(_ context.Context, id ids.ID) (TargetNode, error) { return TargetNode{ID: id, ServerID: 1000}, nil },
		NodeCommand: func(ctx context.Context, id ids.ID, cmd string) (NodeResult, error) {
			return NodeResult{RunState: "running", PID: 42}, nil
		},
		NodeLog: func(context.Context, ids.ID, int) ([]byte, error) { return []byte("a\nb\nc"), nil },
	})
	t.Cleanup(s.Close)
	return s
}

func wait(t *testing.T, s *Service, id ids.ID) (Operation, []Result) {
	t.Helper()
	for {
		info, rs, ch, err := s.Get(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if info.State == StateDone {
			return info, rs
		}
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatal("operation did not end")
		}
	}
}

func TestPingFleet(t *testing.T) {
	f := newFake(300)
	f.offline[1003], f.offline[1004] = true, true
	f.failing[1005] = true
	f.hang[1006] = true
	s := newTestService(t, f)
	op, err := s.Start(t.Context(), Request{Kind: KindPing, Target: Target{All: true}, Concurrency: 8, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	info, rs := wait(t, s, op.ID)
	want := Summary{Total: 300, Done: 300, OK: 296, Failed: 2, Offline: 2}
	if info.Summary != want {
		t.Fatalf("summary %+v, want %+v", info.Summary, want)
	}
	if p := f.peak.Load(); p > 8 {
		t.Fatalf("%d calls at once, concurrency was 8", p)
	}
	byServer := map[ids.ID]Result{}
	for i, r := range rs {
		if r.Seq != i+1 {
			t.Fatalf("result %d has seq %d", i, r.Seq)
		}
		byServer[r.ServerID] = r
	}
	if r := byServer[1006]; r.Status != StatusFailed || r.Reason == "" {
		t.Fatalf("hanging agent: %+v", r)
	}
	if r := byServer[1003]; r.Status != StatusOffline {
		t.Fatalf("offline agent: %+v", r)
	}
	if r := byServer[1000]; r.Status != StatusOK || r.AgentVersion != "v1" {
		t.Fatalf("good agent: %+v", r)
	}
}

func TestNodeOperations(t *testing.T) {
	f := newFake(2)
	s := newTestService(t, f)
	for _, tc := range []struct {
		req  Request
		want int
	}{
		{Request{Kind: KindCommand, Command: "restart", Target: Target{ClusterID: 9}}, 2},
		{Request{Kind: KindCommand, Command: "stop", Target: Target{ClusterID: 9, Component: "broker"}}, 1},
		{Request{Kind: KindLogLines, Target: Target{NodeIDs: []ids.ID{1, 1, 2}}}, 2},
	} {
		t.Run(fmt.Sprint(tc.req.Kind, tc.req.Command, tc.req.Target.Component), func(t *testing.T) {
			op, err := s.Start(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			info, rs := wait(t, s, op.ID)
			if info.Summary.OK != tc.want || len(rs) != tc.want {
				t.Fatalf("summary %+v, %d results; want %d ok", info.Summary, len(rs), tc.want)
			}
			if tc.req.Kind == KindLogLines && rs[0].Lines != 3 {
				t.Fatalf("lines %d, want 3", rs[0].Lines)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	s := newTestService(t, newFake(2))
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"unknown kind", Request{Kind: "reboot", Target: Target{All: true}}},
		{"command without verb", Request{Kind: KindCommand, Target: Target{ClusterID: 1}}},
		{"ping with command", Request{Kind: KindPing, Command: "stop", Target: Target{All: true}}},
		{"no target", Request{Kind: KindPing}},
		{"two targets", Request{Kind: KindPing, Target: Target{All: true, AreaID: 1}}},
		{"ping on nodes", Request{Kind: KindPing, Target: Target{ClusterID: 1}}},
		{"command on servers", Request{Kind: KindCommand, Command: "stop", Target: Target{All: true}}},
		{"component alone", Request{Kind: KindCommand, Command: "stop", Target: Target{NodeIDs: []ids.ID{1}, Component: "broker"}}},
		{"concurrency", Request{Kind: KindPing, Target: Target{All: true}, Concurrency: 5000}},
		{"timeout", Request{Kind: KindPing, Target: Target{All: true}, Timeout: time.Hour}},
		{"empty area", Request{Kind: KindPing, Target: Target{AreaID: 77}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Start(t.Context(), tc.req)
			if _, ok := invalid.As(err); !ok {
				t.Fatalf("Start = %v, want an *invalid.Error", err)
			}
		})
	}
	if _, err := s.Start(t.Context(), Request{Kind: KindPing, Target: Target{ServerIDs: []ids.ID{5}}}); !errors.Is(err, fleet.ErrServerNotFound) {
		t.Fatalf("unknown server: %v", err)
	}
	if len(s.List()) != 0 {
		t.Fatal("a refused request left an operation")
	}
}

func TestCloseEndsRunningOperation(t *testing.T) {
	f := newFake(50)
	for _, srv := range f.servers {
		f.hang[srv.ID] = true
	}
	s := newTestService(t, f)
	op, err := s.Start(t.Context(), Request{Kind: KindPing, Target: Target{All: true}, Concurrency: 4, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	once.Do(s.Close)
	info, _, _, _ := s.Get(op.ID, 0)
	if info.State != StateDone || info.Summary.Done != 50 || info.Summary.Failed != 50 {
		t.Fatalf("after Close: %+v", info)
	}
}
