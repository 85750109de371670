package config

import (
	"context"
	"fmt"
	"slices"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/admq/admq-manager/internal/ids"
)

// KeyChange is a key that differs between two releases.
type KeyChange struct {
	Key string
	// From and To are the key's value and on/off in each; Has says
	// whether the release has the key.
	From, To             string
	FromOn, ToOn         bool
	FromHas, ToHas       bool
	FromSource, ToSource string
}

// Changes are the keys two sets of items differ in, each list by key.
type Changes struct {
	Added   []KeyChange
	Changed []KeyChange
	Removed []KeyChange
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Changed)+len(c.Removed) == 0 }

// NodeDiff is how one node's file differs between two releases.
type NodeDiff struct {
	NodeID  ids.ID
	NodeDir string
	// In says which of the two releases have the node: "both", "from" or
	// "to".
	In    string
	Items Changes
	// Lines is the rendered files' difference as a unified diff ("" when
	// they are the same).
	Lines string
}

// Diff is how two releases of a file differ: the cluster layer's keys and
// each node's file.
type Diff struct {
	From, To Release
	Layer    Changes
	Nodes    []NodeDiff
}

// Diff compares release from with release to (of the same file; else
// ErrOtherFile); with nodeID only that node's file.
func (s *Service) Diff(ctx context.Context, fromID, toID, nodeID ids.ID) (Diff, error) {
	from, fromNodes, err := s.Release(ctx, fromID)
	if err != nil {
		return Diff{}, fmt.Errorf("from: %w", err)
	}
	to, toNodes, err := s.Release(ctx, toID)
	if err != nil {
		return Diff{}, fmt.Errorf("to: %w", err)
	}
	if from.FileID != to.FileID {
		return Diff{}, fmt.Errorf("%w: release %s is #%d of %s (%s), release %s #%d of %s (%s)", ErrOtherFile,
			from.ID, from.Number, from.FileName, from.Component, to.ID, to.Number, to.FileName, to.Component)
	}
	return DiffReleases(from, fromNodes, to, toNodes, nodeID), nil
}

// DiffReleases compares two releases of a file and their nodes (all, or
// only nodeID's).
func DiffReleases(from Release, fromNodes []ReleaseNode, to Release, toNodes []ReleaseNode, nodeID ids.ID) Diff {
	d := Diff{From: from, To: to}
	layerItems := func(items []Item) []keyed {
		out := make([]keyed, len(items))
		for i, it := range items {
			out[i] = keyed{it.Key, it.Value, it.Effective, SourceCluster}
		}
		return out
	}
	d.Layer = changes(layerItems(from.Items), layerItems(to.Items))
	var order []ids.ID
	byNode := map[ids.ID][2]*ReleaseNode{}
	for i := range fromNodes {
		n := &fromNodes[i]
		pair := byNode[n.NodeID]
		pair[0] = n
		byNode[n.NodeID] = pair
		order = append(order, n.NodeID)
	}
	for i := range toNodes {
		n := &toNodes[i]
		pair := byNode[n.NodeID]
		pair[1] = n
		byNode[n.NodeID] = pair
		if !slices.Contains(order, n.NodeID) {
			order = append(order, n.NodeID)
		}
	}
	for _, id := range order {
		if !nodeID.IsZero() && id != nodeID {
			continue
		}
		a, b := byNode[id][0], byNode[id][1]
		nd := NodeDiff{NodeID: id, In: "both"}
		var aItems, bItems []keyed
		var aText, bText string
		if a != nil {
			nd.NodeDir, aItems, aText = a.NodeDir, nodeKeyed(a.Items), string(a.Content)
		} else {
			nd.In = "to"
		}
		if b != nil {
			nd.NodeDir, bItems, bText = b.NodeDir, nodeKeyed(b.Items), string(b.Content)
		} else {
			nd.In = "from"
		}
		nd.Items = changes(aItems, bItems)
		if aText != bText {
			nd.Lines = udiff.Unified(fmt.Sprintf("%s #%d", from.FileName, from.Number), fmt.Sprintf("%s #%d", to.FileName, to.Number), aText, bText)
		}
		d.Nodes = append(d.Nodes, nd)
	}
	return d
}

// keyed is an item as a diff compares it.
type keyed struct {
	key, value string
	on         bool
	source     string
}

func nodeKeyed(items []NodeItem) []keyed {
	out := make([]keyed, len(items))
	for i, it := range items {
		out[i] = keyed{it.Key, it.Value, it.Effective, it.Source()}
	}
	return out
}

// changes lists the keys added to, changed in and removed from a to b,
// in b's order (removed ones in a's).
func changes(a, b []keyed) Changes {
	var c Changes
	inA := map[string]keyed{}
	for _, it := range a {
		inA[it.key] = it
	}
	inB := map[string]bool{}
	for _, it := range b {
		inB[it.key] = true
		old, ok := inA[it.key]
		kc := KeyChange{Key: it.key, To: it.value, ToOn: it.on, ToHas: true, ToSource: it.source}
		switch {
		case !ok:
			c.Added = append(c.Added, kc)
		case old.value != it.value || old.on != it.on:
			kc.From, kc.FromOn, kc.FromHas, kc.FromSource = old.value, old.on, true, old.source
			c.Changed = append(c.Changed, kc)
		}
	}
	for _, it := range a {
		if !inB[it.key] {
			c.Removed = append(c.Removed, KeyChange{Key: it.key, From: it.value, FromOn: it.on, FromHas: true, FromSource: it.source})
		}
	}
	return c
}
