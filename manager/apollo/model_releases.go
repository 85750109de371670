package apollo

import (
	"context"
	"errors"
	"fmt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/deploy"
	"github.com/admq/admq-manager/manager/paging"
)

// Rollouts starts gated rollouts of config files; *deploy.Engine
// implements it.
type Rollouts interface {
	Rollout(ctx context.Context, r deploy.RolloutRequest) (deploy.Job, config.Release, error)
}

// ReleaseReader reads releases and what nodes hold; *config.Service
// implements it.
type ReleaseReader interface {
	Release(ctx context.Context, id ids.ID) (config.Release, []config.ReleaseNode, error)
	Releases(ctx context.Context, fileID, nodeID ids.ID, p paging.Page) ([]config.Release, int, error)
	NodeFiles(ctx context.Context, nodeID ids.ID) ([]config.NodeFile, error)
	Applied(ctx context.Context, nodeIDs []ids.ID) (map[ids.ID]config.Applied, error)
}

// ReleaseClusters keeps which Apollo cluster (a node's) a release made
// through the Open API is of; the store implements it.
type ReleaseClusters interface {
	RecordReleaseCluster(ctx context.Context, releaseID ids.ID, clusterName string) error
	ReleaseClusters(ctx context.Context, releaseIDs []ids.ID) (map[ids.ID]string, error)
}

// ConfigReleases is the Releases model over manager/config's releases and
// manager/deploy's rollouts. A release belongs to the default cluster
// (a rolling flush of the layer, a rollback, a deployment's release)
// unless it is a flush of one node: made through the Open API on that
// node's cluster, or by the console's flush.
type ConfigReleases struct {
	rollouts Rollouts
	releases ReleaseReader
	clusters ReleaseClusters
}

// NewConfigReleases returns the model.
func NewConfigReleases(rollouts Rollouts, releases ReleaseReader, clusters ReleaseClusters) *ConfigReleases {
	return &ConfigReleases{rollouts: rollouts, releases: releases, clusters: clusters}
}

var _ Releases = (*ConfigReleases)(nil)

// rolloutError maps the rollout's refusals onto the model's errors.
func rolloutError(err error) error {
	switch {
	case errors.Is(err, deploy.ErrNodeHeld):
		return fmt.Errorf("%w: %v", errBusy, err)
	case errors.Is(err, config.ErrOtherFile):
		return fmt.Errorf("%w: %v", errOtherNamespace, err)
	case errors.Is(err, config.ErrReleaseNotFound):
		return fmt.Errorf("%w: %v", errReleaseNotFound, err)
	}
	return err
}

// Publish starts the rollout of the target's namespace.
func (m *ConfigReleases) Publish(ctx context.Context, t Target, title, comment, by string) (release, error) {
	req := deploy.RolloutRequest{ClusterID: t.ClusterID, FileID: t.Layer, Title: title, Comment: comment, By: by}
	if !t.Node.IsZero() {
		req.NodeIDs = []ids.ID{t.Node}
	}
	_, rel, err := m.rollouts.Rollout(ctx, req)
	if errors.Is(err, config.ErrNoChange) {
		// Apollo records a release of an unchanged namespace too.
		req.KeepUnchanged = true
		_, rel, err = m.rollouts.Rollout(ctx, req)
	}
	if err != nil {
		return release{}, rolloutError(err)
	}
	if !t.Node.IsZero() {
		if err := m.clusters.RecordReleaseCluster(context.WithoutCancel(ctx), rel.ID, t.NodeName); err != nil {
			return release{}, err
		}
	}
	return m.Get(ctx, rel.ID)
}

// convert makes a release of r: its cluster and configuration. A node
// release shows the node's items; a default one the layer's.
func convert(r config.Release, nodes []config.ReleaseNode, nodeCluster string) release {
	out := release{
		ID: r.ID, ClusterID: r.ClusterID, Layer: r.FileID, Component: r.Component, File: r.FileName,
		Number: r.Number, Rollback: r.Kind == config.KindRollback, RollbackOf: r.RollbackOf,
		Title: r.Title, Comment: r.Comment, By: r.CreatedBy, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
		State: string(r.State), Reason: r.Reason, Config: map[string]string{},
	}
	if nodeCluster == "" && r.Kind == config.KindFlush && len(nodes) == 1 {
		nodeCluster = nodes[0].NodeDir
	}
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, releaseNode{NodeID: n.NodeID, Name: n.NodeDir, State: string(n.State), Detail: n.Detail, Applied: n.FinishedAt})
		if nodeCluster != "" && n.NodeDir == nodeCluster {
			out.Node, out.NodeName = n.NodeID, n.NodeDir
			for _, it := range n.Items {
				if it.Effective {
					out.Config[it.Key] = it.Value
				}
			}
		}
	}
	if out.Node.IsZero() {
		for _, it := range r.Items {
			if it.Effective {
				out.Config[it.Key] = it.Value
			}
		}
	}
	return out
}

// Get returns a release by id.
func (m *ConfigReleases) Get(ctx context.Context, id ids.ID) (release, error) {
	r, nodes, err := m.releases.Release(ctx, id)
	if err != nil {
		return release{}, rolloutError(err)
	}
	names, err := m.clusters.ReleaseClusters(ctx, []ids.ID{id})
	if err != nil {
		return release{}, err
	}
	return convert(r, nodes, names[id]), nil
}

// listed is a page of a target's releases with the Apollo clusters
// recorded for them.
type listed struct {
	list  []config.Release
	names map[ids.ID]string
	total int
}

// nodeOrigin reports whether r is a release of one node's cluster.
func (l listed) nodeOrigin(r config.Release) bool {
	return l.names[r.ID] != "" || r.Kind == config.KindFlush
}

// page reads releases of the target newest first: the layer's for
// default, those that reached the node for a node's cluster.
func (m *ConfigReleases) page(ctx context.Context, t Target, p paging.Page) (listed, error) {
	list, total, err := m.releases.Releases(ctx, t.Layer, t.Node, p)
	if err != nil {
		return listed{}, err
	}
	idsOf := make([]ids.ID, len(list))
	for i, r := range list {
		idsOf[i] = r.ID
	}
	names, err := m.clusters.ReleaseClusters(ctx, idsOf)
	if err != nil {
		return listed{}, err
	}
	return listed{list: list, names: names, total: total}, nil
}

// view loads a listed release's nodes and shows it as t's cluster sees
// it: a release of the layer seen from a node shows the node's items.
func (m *ConfigReleases) view(ctx context.Context, t Target, l listed, r config.Release) (release, error) {
	_, nodes, err := m.releases.Release(ctx, r.ID)
	if err != nil {
		return release{}, err
	}
	rel := convert(r, nodes, l.names[r.ID])
	if !t.Node.IsZero() && rel.Node.IsZero() {
		rel = convert(r, nodes, t.NodeName)
		rel.Node, rel.NodeName = 0, ""
	}
	return rel, nil
}

// History returns up to limit releases after offset, newest first.
func (m *ConfigReleases) History(ctx context.Context, t Target, offset, limit int) ([]release, int, error) {
	var out []release
	total := 0
	// Read in pages of the model's size until the window is filled.
	size := paging.MaxSize
	for num := offset/size + 1; len(out) < limit; num++ {
		l, err := m.page(ctx, t, paging.Page{Num: num, Size: size})
		if err != nil {
			return nil, 0, err
		}
		total = l.total
		start := 0
		if num == offset/size+1 {
			start = offset % size
		}
		for i := start; i < len(l.list) && len(out) < limit; i++ {
			rel, err := m.view(ctx, t, l, l.list[i])
			if err != nil {
				return nil, 0, err
			}
			out = append(out, rel)
		}
		if len(l.list) < size {
			break
		}
	}
	return out, total, nil
}

// Latest returns the newest release of the target's cluster that did not
// fail: for default, the newest of the layer's own; for a node, the
// newest that reached it.
func (m *ConfigReleases) Latest(ctx context.Context, t Target) (release, bool, error) {
	return m.find(ctx, t, 0, func(l listed, r config.Release) bool {
		return r.State != config.ReleaseFailed && (!t.Node.IsZero() || !l.nodeOrigin(r))
	})
}

// find returns, as t sees it, the first release of t, newest first, past
// release after (when set), that ok accepts.
func (m *ConfigReleases) find(ctx context.Context, t Target, after ids.ID, ok func(listed, config.Release) bool) (release, bool, error) {
	const size = 50
	passed := after.IsZero()
	for num := 1; ; num++ {
		l, err := m.page(ctx, t, paging.Page{Num: num, Size: size})
		if err != nil {
			return release{}, false, err
		}
		for _, r := range l.list {
			if !passed {
				passed = r.ID == after
				continue
			}
			if ok(l, r) {
				rel, err := m.view(ctx, t, l, r)
				return rel, err == nil, err
			}
		}
		if len(l.list) < size {
			return release{}, false, nil
		}
	}
}

// Rollback rolls back from release from: to release to, or to the newest
// release of from's cluster before it that did not fail.
func (m *ConfigReleases) Rollback(ctx context.Context, from release, to ids.ID, by string) (release, error) {
	t := Target{ClusterID: from.ClusterID, Layer: from.Layer, Node: from.Node, NodeName: from.NodeName}
	if to.IsZero() {
		prev, ok, err := m.find(ctx, t, from.ID, func(l listed, r config.Release) bool {
			return r.State != config.ReleaseFailed && l.nodeOrigin(r) == !from.Node.IsZero()
		})
		if err != nil {
			return release{}, err
		}
		if !ok {
			return release{}, fmt.Errorf("%w: release %d is the first of its cluster", errNoEarlier, from.ID)
		}
		to = prev.ID
	} else {
		target, err := m.Get(ctx, to)
		if err != nil {
			return release{}, err
		}
		if target.Layer != from.Layer || target.Node != from.Node {
			return release{}, fmt.Errorf("%w: release %d is of %s.%s of cluster %s, release %d of %s.%s of cluster %s",
				errOtherNamespace, to, target.Component, target.File, target.cluster(), from.ID, from.Component, from.File, from.cluster())
		}
	}
	req := deploy.RolloutRequest{ClusterID: from.ClusterID, FileID: from.Layer, RollbackTo: to, By: by,
		Title: fmt.Sprintf("rollback to release %d", to)}
	if !from.Node.IsZero() {
		req.NodeIDs = []ids.ID{from.Node}
	}
	_, rel, err := m.rollouts.Rollout(ctx, req)
	if errors.Is(err, config.ErrNoChange) {
		req.KeepUnchanged = true
		_, rel, err = m.rollouts.Rollout(ctx, req)
	}
	if err != nil {
		return release{}, rolloutError(err)
	}
	if !from.Node.IsZero() {
		if err := m.clusters.RecordReleaseCluster(context.WithoutCancel(ctx), rel.ID, from.NodeName); err != nil {
			return release{}, err
		}
	}
	return m.Get(ctx, rel.ID)
}

// Running returns the release of the layer's file each node is known to
// run: the one last applied to the node's copy of the file. A node whose
// copy never got a release, or whose last apply was cut short (it has the
// old or the new file), is left out.
func (m *ConfigReleases) Running(ctx context.Context, layer ids.ID, nodeIDs []ids.ID) (map[ids.ID]running, error) {
	applied, err := m.releases.Applied(ctx, nodeIDs)
	if err != nil {
		return nil, err
	}
	out := map[ids.ID]running{}
	for _, n := range nodeIDs {
		files, err := m.releases.NodeFiles(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if a, ok := applied[f.ID]; ok && f.FileID == layer && !a.Unknown && !a.ReleaseID.IsZero() {
				out[n] = running{Release: a.ReleaseID, At: a.At}
			}
		}
	}
	return out, nil
}
