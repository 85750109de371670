package api

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
)

// flushRequest flushes one node's config file (seed 2.3.0.9).
type flushRequest struct {
	// ConfigFileID is the node's config file (GET /cluster/node/config/file).
	ConfigFileID ids.ID `json:"configFileId"`
	// ClusterID and NodeID, when given, must be the file's node's.
	ClusterID ids.ID `json:"clusterId"`
	NodeID    ids.ID `json:"nodeId"`
	// Title and Comment describe the release (at most 128 and 1024
	// characters).
	Title   string `json:"title,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// flushView is how a flush ended.
type flushView struct {
	// Outcome is applied (written, restarted, healthy), unchanged (the
	// node had the file: nothing done, no job), restored (unhealthy on the
	// new file: the previous one is back and the node restarted), failed
	// (not applied), interrupted (cut short: the node has the old or the
	// new file), or running (the call stopped waiting first).
	Outcome string `json:"outcome"`
	// Detail says what happened, with the node's last log lines when it
	// was unhealthy.
	Detail        string `json:"detail"`
	JobID         ids.ID `json:"jobId"`
	ReleaseID     ids.ID `json:"releaseId"`
	ReleaseNumber int    `json:"releaseNumber"`
	PidBefore     int    `json:"pidBefore"`
	PidAfter      int    `json:"pidAfter"`
	// Healthy is whether the node passed its health check after the
	// restart; null when it was not restarted.
	Healthy    *bool `json:"healthy"`
	DurationMs int64 `json:"durationMs"`
}

func (a *API) flushNodeConfig(c echo.Context) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	var r flushRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ConfigFileID.IsZero() {
		return invalid.Field("configFileId", "is required")
	}
	detail(c, "configFile=%s node=%s cluster=%s", r.ConfigFileID, r.NodeID, r.ClusterID)
	ctx, cancel := context.WithTimeout(c.Request().Context(), flushWait)
	defer cancel()
	res, err := eng.Flush(ctx, deploy.FlushRequest{NodeFileID: r.ConfigFileID, NodeID: r.NodeID, ClusterID: r.ClusterID,
		Title: r.Title, Comment: r.Comment, By: userOf(c).Username})
	if err != nil {
		return releaseFields(err)
	}
	v := flushView{Outcome: res.Outcome, Detail: res.Detail, JobID: res.Job.ID, ReleaseID: res.Release.ID, ReleaseNumber: res.Release.Number,
		PidBefore: res.Step.PIDBefore, PidAfter: res.Step.PIDAfter, Healthy: res.Step.Healthy, DurationMs: res.Step.Duration.Milliseconds()}
	detail(c, "configFile=%s outcome=%s job=%s release=%d", r.ConfigFileID, v.Outcome, v.JobID, v.ReleaseNumber)
	return ok(c, v)
}

// releaseFields renames the fields of config's release errors as the
// console names them.
func releaseFields(err error) error {
	if e, ok := invalid.As(err); ok {
		switch e.Field {
		case "nodes":
			return &invalid.Error{Field: "nodeIds", Reason: e.Reason}
		case "release":
			return &invalid.Error{Field: "releaseId", Reason: e.Reason}
		}
	}
	return err
}

// rolloutOptions are how a rollout goes.
type rolloutOptions struct {
	// NodeIDs are the nodes; empty: every node of the file's component
	// (of a rollback: of its release, still in the cluster).
	NodeIDs []ids.ID `json:"nodeIds,omitempty"`
	// BatchSize is how many nodes restart at once (default 1); AllAtOnce
	// takes every node in one batch. A quorum component (coordinators)
	// never has more than f of its 2f+1 nodes down, whatever is asked.
	BatchSize int  `json:"batchSize,omitempty"`
	AllAtOnce bool `json:"allAtOnce,omitempty"`
	// FailureBudget is how many nodes may fail (each gets its previous
	// file back) before the rollout stops; default 0: at the first.
	FailureBudget int `json:"failureBudget,omitempty"`
}

// releaseWords describe a release (at most 128 and 1024 characters).
type releaseWords struct {
	Title   string `json:"title,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// rolloutRequest rolls a config file out over nodes.
type rolloutRequest struct {
	ClusterID ids.ID `json:"clusterId"`
	// ConfigFileID is the cluster layer's file (GET /cluster/config/file).
	ConfigFileID ids.ID `json:"configFileId"`
	rolloutOptions
	releaseWords
}

// rollbackRequest rolls a config file back to an earlier release.
type rollbackRequest struct {
	ClusterID    ids.ID `json:"clusterId,omitempty"`
	ConfigFileID ids.ID `json:"configFileId"`
	// ReleaseID is the release to go back to; it must be of configFileId.
	ReleaseID ids.ID `json:"releaseId"`
	rolloutOptions
	releaseWords
}

// restartRequest restarts nodes one batch at a time.
type restartRequest struct {
	ClusterID ids.ID `json:"clusterId"`
	// Component names the nodes when NodeIDs does not (coordinator,
	// storage, broker, …).
	Component string `json:"component,omitempty"`
	rolloutOptions
}

// request is the rollout request the options and words make.
func (o rolloutOptions) request(clusterID, fileID ids.ID, w releaseWords) deploy.RolloutRequest {
	return deploy.RolloutRequest{ClusterID: clusterID, FileID: fileID, NodeIDs: o.NodeIDs, BatchSize: o.BatchSize,
		AllAtOnce: o.AllAtOnce, FailureBudget: o.FailureBudget, Title: w.Title, Comment: w.Comment}
}

// rolloutView is a rollout started, or why none was needed.
type rolloutView struct {
	// Outcome is "started" (follow jobId) or "unchanged" (every node has
	// this config already: nothing to do, no job).
	Outcome       string   `json:"outcome"`
	JobID         ids.ID   `json:"jobId"`
	ReleaseID     ids.ID   `json:"releaseId"`
	ReleaseNumber int      `json:"releaseNumber"`
	NodeIDs       []ids.ID `json:"nodeIds"`
}

func (a *API) startRollout(c echo.Context, r deploy.RolloutRequest) error {
	eng, err := a.deployer()
	if err != nil {
		return err
	}
	if r.ClusterID.IsZero() {
		return invalid.Field("clusterId", "is required")
	}
	r.By = userOf(c).Username
	detail(c, "cluster=%s file=%s rollbackTo=%s nodes=%d batch=%d", r.ClusterID, r.FileID, r.RollbackTo, len(r.NodeIDs), r.BatchSize)
	j, rel, err := eng.Rollout(c.Request().Context(), r)
	if errors.Is(err, config.ErrNoChange) {
		return ok(c, rolloutView{Outcome: "unchanged", NodeIDs: []ids.ID{}})
	}
	if err != nil {
		return releaseFields(err)
	}
	_, steps, err := eng.Job(c.Request().Context(), j.ID)
	if err != nil {
		return err
	}
	v := rolloutView{Outcome: "started", JobID: j.ID, ReleaseID: rel.ID, ReleaseNumber: rel.Number, NodeIDs: []ids.ID{}}
	for _, s := range steps {
		v.NodeIDs = append(v.NodeIDs, s.NodeID)
	}
	detail(c, "cluster=%s job=%s release=%d nodes=%d", r.ClusterID, j.ID, rel.Number, len(v.NodeIDs))
	return ok(c, v)
}

func (a *API) rolloutConfig(c echo.Context) error {
	var r rolloutRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ConfigFileID.IsZero() {
		return invalid.Field("configFileId", "is required")
	}
	return a.startRollout(c, r.request(r.ClusterID, r.ConfigFileID, r.releaseWords))
}

func (a *API) rollbackConfig(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	var r rollbackRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	switch {
	case r.ConfigFileID.IsZero():
		return invalid.Field("configFileId", "is required")
	case r.ReleaseID.IsZero():
		return invalid.Field("releaseId", "is required")
	}
	if r.ClusterID.IsZero() {
		f, err := svc.File(c.Request().Context(), r.ConfigFileID)
		if err != nil {
			return err
		}
		r.ClusterID = f.ClusterID
	}
	req := r.request(r.ClusterID, r.ConfigFileID, r.releaseWords)
	req.RollbackTo = r.ReleaseID
	return a.startRollout(c, req)
}

func (a *API) restartNodes(c echo.Context) error {
	var r restartRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	req := r.request(r.ClusterID, 0, releaseWords{})
	req.Component = r.Component
	return a.startRollout(c, req)
}

// releaseView is a release without its nodes' files.
type releaseView struct {
	ID         ids.ID  `json:"id"`
	Number     int     `json:"number"`
	FileID     ids.ID  `json:"configFileId"` // the cluster layer's file
	FileName   string  `json:"fileName"`
	Component  string  `json:"component"`
	ClusterID  ids.ID  `json:"clusterId"`
	Kind       string  `json:"kind"` // deploy, flush, rollout, rollback
	Title      string  `json:"title"`
	Comment    string  `json:"comment"`
	CreatedBy  string  `json:"createdBy"`
	CreateTime apiTime `json:"createTime"`
	JobID      ids.ID  `json:"jobId"`
	// RollbackOf is the release a rollback went back to.
	RollbackOf ids.ID `json:"rollbackOf"`
	// State is pending, applying, applied (every node has it) or failed.
	State      string  `json:"state"`
	Reason     string  `json:"reason"`
	FinishTime apiTime `json:"finishTime"`
}

func toReleaseView(r config.Release) releaseView {
	return releaseView{ID: r.ID, Number: r.Number, FileID: r.FileID, FileName: r.FileName, Component: r.Component, ClusterID: r.ClusterID,
		Kind: r.Kind, Title: r.Title, Comment: r.Comment, CreatedBy: r.CreatedBy, CreateTime: apiTime(r.CreatedAt), JobID: r.JobID,
		RollbackOf: r.RollbackOf, State: string(r.State), Reason: r.Reason, FinishTime: apiTime(r.FinishedAt)}
}

// releaseItemView is an item as a release keeps it.
type releaseItemView struct {
	ConfigKey   string `json:"configKey"`
	ConfigValue string `json:"configValue"`
	Effective   int    `json:"effective"`
	Describes   string `json:"describes,omitempty"`
	// Source is "cluster" or "node", for a node's item.
	Source string `json:"source,omitempty"`
}

// releaseNodeView is one node of a release.
type releaseNodeView struct {
	NodeID  ids.ID `json:"nodeId"`
	NodeDir string `json:"nodeDir"`
	// Path is where the file is written on the node.
	Path string `json:"path"`
	// State is pending, applying, applied, unchanged, restored, failed,
	// interrupted or cancelled.
	State      string            `json:"state"`
	Detail     string            `json:"detail"`
	SHA256     string            `json:"sha256"`
	Content    string            `json:"content"`
	Items      []releaseItemView `json:"items"`
	UpdateTime apiTime           `json:"updateTime"`
	FinishTime apiTime           `json:"finishTime"`
}

type releaseDetailView struct {
	releaseView
	// Items are the cluster layer's items as they were.
	Items []releaseItemView `json:"items"`
	Nodes []releaseNodeView `json:"nodes"`
}

func (a *API) listReleases(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	fid, err := requiredID(c, "configFileId")
	if err != nil {
		return err
	}
	nid, err := queryID(c, "nodeId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := svc.Releases(c.Request().Context(), fid, nid, p)
	if err != nil {
		return err
	}
	views := make([]releaseView, len(list))
	for i, r := range list {
		views[i] = toReleaseView(r)
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) releaseDetail(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	id, err := requiredID(c, "id")
	if err != nil {
		return err
	}
	r, nodes, err := svc.Release(c.Request().Context(), id)
	if err != nil {
		return err
	}
	v := releaseDetailView{releaseView: toReleaseView(r), Items: []releaseItemView{}, Nodes: []releaseNodeView{}}
	for _, it := range r.Items {
		v.Items = append(v.Items, releaseItemView{ConfigKey: it.Key, ConfigValue: it.Value, Effective: boolInt(it.Effective), Describes: it.Comment})
	}
	for _, n := range nodes {
		nv := releaseNodeView{NodeID: n.NodeID, NodeDir: n.NodeDir, Path: n.Path, State: string(n.State), Detail: n.Detail,
			SHA256: n.SHA256, Content: string(n.Content), Items: []releaseItemView{}, UpdateTime: apiTime(n.UpdatedAt), FinishTime: apiTime(n.FinishedAt)}
		for _, it := range n.Items {
			nv.Items = append(nv.Items, releaseItemView{ConfigKey: it.Key, ConfigValue: it.Value, Effective: boolInt(it.Effective),
				Describes: it.Comment, Source: it.Source()})
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return ok(c, v)
}

// keyChangeView is a key that differs between two releases.
type keyChangeView struct {
	ConfigKey string `json:"configKey"`
	// From and To are its value in each release (null where it lacks the
	// key), with its on/off.
	From          *string `json:"from"`
	To            *string `json:"to"`
	FromEffective *int    `json:"fromEffective"`
	ToEffective   *int    `json:"toEffective"`
}

type changesView struct {
	Added   []keyChangeView `json:"added"`
	Changed []keyChangeView `json:"changed"`
	Removed []keyChangeView `json:"removed"`
}

type nodeDiffView struct {
	NodeID  ids.ID `json:"nodeId"`
	NodeDir string `json:"nodeDir"`
	// In is "both", "from" or "to": which releases have the node.
	In    string      `json:"in"`
	Items changesView `json:"items"`
	// Lines is the rendered files' difference as a unified diff; "" when
	// they are the same.
	Lines string `json:"lines"`
}

type diffView struct {
	From  releaseView    `json:"from"`
	To    releaseView    `json:"to"`
	Layer changesView    `json:"layer"`
	Nodes []nodeDiffView `json:"nodes"`
}

func toChangesView(c config.Changes) changesView {
	conv := func(list []config.KeyChange) []keyChangeView {
		out := []keyChangeView{}
		for _, k := range list {
			v := keyChangeView{ConfigKey: k.Key}
			if k.FromHas {
				from, on := k.From, boolInt(k.FromOn)
				v.From, v.FromEffective = &from, &on
			}
			if k.ToHas {
				to, on := k.To, boolInt(k.ToOn)
				v.To, v.ToEffective = &to, &on
			}
			out = append(out, v)
		}
		return out
	}
	return changesView{Added: conv(c.Added), Changed: conv(c.Changed), Removed: conv(c.Removed)}
}

func (a *API) diffReleases(c echo.Context) error {
	svc, err := a.configs()
	if err != nil {
		return err
	}
	from, err := requiredID(c, "from")
	if err != nil {
		return err
	}
	to, err := requiredID(c, "to")
	if err != nil {
		return err
	}
	nid, err := queryID(c, "nodeId")
	if err != nil {
		return err
	}
	d, err := svc.Diff(c.Request().Context(), from, to, nid)
	if err != nil {
		return err
	}
	v := diffView{From: toReleaseView(d.From), To: toReleaseView(d.To), Layer: toChangesView(d.Layer), Nodes: []nodeDiffView{}}
	for _, n := range d.Nodes {
		v.Nodes = append(v.Nodes, nodeDiffView{NodeID: n.NodeID, NodeDir: n.NodeDir, In: n.In, Items: toChangesView(n.Items), Lines: n.Lines})
	}
	return ok(c, v)
}

// flushWait bounds how long a flush call waits for its outcome; the job
// goes on after it (outcome "running").
var flushWait = 15 * time.Minute
