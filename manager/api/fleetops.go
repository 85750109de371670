package api

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/fleetop"
)

// fleetOpRequest starts one operation on many servers or nodes.
type fleetOpRequest struct {
	// Kind is ping, facts (servers), command or log_lines (nodes).
	Kind string `json:"kind"`
	// Command is start, stop or restart, for kind command.
	Command string `json:"command,omitempty"`
	// Servers: serverIds, or areaId, or all.
	ServerIDs []ids.ID `json:"serverIds,omitempty"`
	AreaID    ids.ID   `json:"areaId,omitempty"`
	All       bool     `json:"all,omitempty"`
	// Nodes: nodeIds, or clusterId with an optional component.
	NodeIDs   []ids.ID `json:"nodeIds,omitempty"`
	ClusterID ids.ID   `json:"clusterId,omitempty"`
	Component string   `json:"component,omitempty"`
	// Concurrency: targets at once, 1-1024 (default 64); timeoutMs: per
	// target, 1-600000 (default 10000).
	Concurrency int   `json:"concurrency,omitempty"`
	TimeoutMs   int64 `json:"timeoutMs,omitempty"`
}

type fleetOpView struct {
	ID          ids.ID  `json:"id"`
	Kind        string  `json:"kind"`
	Command     string  `json:"command,omitempty"`
	State       string  `json:"state"`
	Concurrency int     `json:"concurrency"`
	TimeoutMs   int64   `json:"timeoutMs"`
	CreateBy    string  `json:"createBy"`
	CreateTime  apiTime `json:"createTime"`
	FinishTime  apiTime `json:"finishTime"`
	ElapsedMs   int64   `json:"elapsedMs"`
	Total       int     `json:"total"`
	Done        int     `json:"done"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	Offline     int     `json:"offline"`
}

type fleetOpResultView struct {
	Seq          int          `json:"seq"`
	ServerID     ids.ID       `json:"serverId"`
	NodeID       *ids.ID      `json:"nodeId,omitempty"`
	Status       string       `json:"status"`
	Reason       string       `json:"reason,omitempty"`
	ElapsedMs    float64      `json:"elapsedMs"`
	RttMs        *float64     `json:"rttMs,omitempty"`
	AgentVersion string       `json:"agentVersion,omitempty"`
	Facts        *fleet.Facts `json:"facts,omitempty"`
	RunStatus    string       `json:"runStatus,omitempty"`
	Pid          int          `json:"pid,omitempty"`
	Lines        *int         `json:"lines,omitempty"`
	Truncated    bool         `json:"truncated,omitempty"`
}

type fleetOpDetailView struct {
	Operation fleetOpView                 `json:"operation"`
	Results   pageView[fleetOpResultView] `json:"results"`
}

func toFleetOpView(o fleetop.Operation, now time.Time) fleetOpView {
	end := o.FinishedAt
	if end.IsZero() {
		end = now
	}
	v := fleetOpView{
		ID: o.ID, Kind: o.Kind, Command: o.Command, State: o.State, Concurrency: o.Concurrency,
		TimeoutMs: o.Timeout.Milliseconds(), CreateBy: o.By, CreateTime: apiTime(o.CreatedAt),
		ElapsedMs: end.Sub(o.CreatedAt).Milliseconds(),
		Total:     o.Summary.Total, Done: o.Summary.Done, OK: o.Summary.OK, Failed: o.Summary.Failed, Offline: o.Summary.Offline,
	}
	v.FinishTime = apiTime(o.FinishedAt) // null while running
	return v
}

func toFleetOpResultView(r fleetop.Result, kind string) fleetOpResultView {
	v := fleetOpResultView{
		Seq: r.Seq, ServerID: r.ServerID, Status: r.Status, Reason: r.Reason,
		ElapsedMs: float64(r.Elapsed.Microseconds()) / 1000,
	}
	if !r.NodeID.IsZero() {
		id := r.NodeID
		v.NodeID = &id
	}
	if r.Status != fleetop.StatusOK {
		return v
	}
	switch kind {
	case fleetop.KindPing:
		rtt := float64(r.RTT.Microseconds()) / 1000
		v.RttMs, v.AgentVersion = &rtt, r.AgentVersion
	case fleetop.KindFacts:
		v.Facts = r.Facts
	case fleetop.KindCommand:
		v.RunStatus, v.Pid = r.RunState, r.PID
	case fleetop.KindLogLines:
		n := r.Lines
		v.Lines, v.Truncated = &n, r.Truncated
	}
	return v
}

func (a *API) fleetOps() (*fleetop.Service, error) {
	if a.d.FleetOps == nil {
		return nil, newError(codeError, "fleet operations are not available on this manager")
	}
	return a.d.FleetOps, nil
}

func (a *API) startFleetOp(c echo.Context) error {
	svc, err := a.fleetOps()
	if err != nil {
		return err
	}
	var r fleetOpRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.TimeoutMs < 0 || r.TimeoutMs > fleetop.MaxTimeout.Milliseconds() {
		return invalid.Field("timeoutMs", "must be 1 to %d", fleetop.MaxTimeout.Milliseconds())
	}
	detail(c, "kind=%q command=%q servers=%d area=%s all=%t nodes=%d cluster=%s component=%q",
		truncate(r.Kind, 16), truncate(r.Command, 16), len(r.ServerIDs), r.AreaID, r.All, len(r.NodeIDs), r.ClusterID, truncate(r.Component, 32))
	op, err := svc.Start(c.Request().Context(), fleetop.Request{
		Kind: r.Kind, Command: r.Command,
		Target: fleetop.Target{
			ServerIDs: r.ServerIDs, AreaID: r.AreaID, All: r.All,
			NodeIDs: r.NodeIDs, ClusterID: r.ClusterID, Component: r.Component,
		},
		Concurrency: r.Concurrency, Timeout: time.Duration(r.TimeoutMs) * time.Millisecond,
		By: userOf(c).Username,
	})
	if err != nil {
		return err
	}
	return ok(c, toFleetOpView(op, a.d.Now()))
}

func (a *API) fleetOpDetail(c echo.Context) error {
	svc, err := a.fleetOps()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	status := c.QueryParam("status")
	switch status {
	case "", fleetop.StatusOK, fleetop.StatusFailed, fleetop.StatusOffline:
	default:
		return invalid.Field("status", "%q: must be ok, failed or offline", truncate(status, 16))
	}
	op, rs, _, err := svc.Get(id, 0)
	if err != nil {
		return err
	}
	var sel []fleetop.Result
	for _, r := range rs {
		if status == "" || r.Status == status {
			sel = append(sel, r)
		}
	}
	lo := min((p.Num-1)*p.Size, len(sel))
	hi := min(lo+p.Size, len(sel))
	list := make([]fleetOpResultView, 0, hi-lo)
	for _, r := range sel[lo:hi] {
		list = append(list, toFleetOpResultView(r, op.Kind))
	}
	return ok(c, fleetOpDetailView{Operation: toFleetOpView(op, a.d.Now()), Results: newPage(p, len(sel), list)})
}

func (a *API) listFleetOps(c echo.Context) error {
	svc, err := a.fleetOps()
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	all := svc.List()
	lo := min((p.Num-1)*p.Size, len(all))
	hi := min(lo+p.Size, len(all))
	now := a.d.Now()
	list := make([]fleetOpView, 0, hi-lo)
	for _, o := range all[lo:hi] {
		list = append(list, toFleetOpView(o, now))
	}
	return ok(c, newPage(p, len(all), list))
}

// fleetOpEvents streams an operation: an "operation" event, a "result"
// event per target as it arrives (those already in first), and "done"
// with the final summary.
func (a *API) fleetOpEvents(c echo.Context) error {
	svc, err := a.fleetOps()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	op, rs, changed, err := svc.Get(id, 0)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	events := startEvents(c)
	send := events.write
	if err := send("operation", toFleetOpView(op, a.d.Now())); err != nil {
		return nil
	}
	sent := 0
	for {
		for _, r := range rs {
			if err := send("result", toFleetOpResultView(r, op.Kind)); err != nil {
				return nil
			}
		}
		sent += len(rs)
		events.flush()
		if op.State == fleetop.StateDone {
			_ = events.send("done", toFleetOpView(op, a.d.Now()))
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.stopping:
			return nil
		case <-changed:
		}
		// Results come in bursts: gather a moment's worth per write.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil
		}
		if op, rs, changed, err = svc.Get(id, sent); err != nil {
			return nil
		}
	}
}
