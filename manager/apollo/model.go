package apollo

import (
	"context"
	"fmt"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
)

// Layers is what the Open API edits through manager/config;
// *config.Service implements it.
type Layers interface {
	AllItems(ctx context.Context, fileID ids.ID) ([]config.Item, error)
	AddItem(ctx context.Context, fileID ids.ID, n config.NewItem) (config.Item, error)
	UpdateItem(ctx context.Context, id ids.ID, c config.Change) (config.Item, error)
	DeleteItem(ctx context.Context, id ids.ID, by string) error
	SetItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string) error
	NodeFiles(ctx context.Context, nodeID ids.ID) ([]config.NodeFile, error)
	AllNodeItems(ctx context.Context, nodeFileID ids.ID) ([]config.NodeItem, error)
	AddNodeItem(ctx context.Context, nodeFileIDs []ids.ID, n config.NewItem) ([]config.NodeItem, error)
	UpdateNodeItem(ctx context.Context, id ids.ID, c config.Change) (config.NodeItem, error)
	ResetNodeItem(ctx context.Context, id ids.ID, by string) error
	SetNodeItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string) error
	Atomically(ctx context.Context, fn func(ctx context.Context) error) error
}

// ConfigItems is the Items model over manager/config: the default
// cluster is a file's cluster layer, a node's cluster is that node's copy
// of it (the layer overlaid with the node's overrides and own keys).
// Items switched off are not shown; an Apollo delete on a node's cluster
// switches a layer key off for that node.
type ConfigItems struct {
	layers Layers
}

// NewConfigItems returns the model over layers.
func NewConfigItems(layers Layers) *ConfigItems { return &ConfigItems{layers: layers} }

var _ Items = (*ConfigItems)(nil)

// nodeFile finds the node's copy of the target's layer.
func (m *ConfigItems) nodeFile(ctx context.Context, t Target) (config.NodeFile, error) {
	files, err := m.layers.NodeFiles(ctx, t.Node)
	if err != nil {
		return config.NodeFile{}, err
	}
	for _, f := range files {
		if f.FileID == t.Layer {
			return f, nil
		}
	}
	return config.NodeFile{}, fmt.Errorf("%w: node %s has no %s", config.ErrFileNotFound, t.NodeName, t.File)
}

// List returns the effective items of the namespace in the cluster.
func (m *ConfigItems) List(ctx context.Context, t Target) ([]item, error) {
	var out []item
	if t.Node.IsZero() {
		items, err := m.layers.AllItems(ctx, t.Layer)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.Effective {
				out = append(out, item{Key: it.Key, Value: it.Value, Comment: it.Comment, CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,
					CreatedBy: it.CreatedBy, UpdatedBy: it.UpdatedBy})
			}
		}
		return out, nil
	}
	nf, err := m.nodeFile(ctx, t)
	if err != nil {
		return nil, err
	}
	items, err := m.layers.AllNodeItems(ctx, nf.ID)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if it.Effective {
			out = append(out, item{Key: it.Key, Value: it.Value, Comment: it.Comment, CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,
				CreatedBy: it.CreatedBy, UpdatedBy: it.UpdatedBy})
		}
	}
	return out, nil
}

// Apply makes the changes in one transaction, as the operator by: all of
// them, or none. Each change names another key (the handlers see to it),
// so each sees the items as they were before the call.
func (m *ConfigItems) Apply(ctx context.Context, t Target, by string, changes []itemChange) error {
	return m.layers.Atomically(ctx, func(ctx context.Context) error {
		for _, c := range changes {
			var err error
			if t.Node.IsZero() {
				err = m.applyLayer(ctx, t, by, c)
			} else {
				err = m.applyNode(ctx, t, by, c)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (m *ConfigItems) applyLayer(ctx context.Context, t Target, by string, c itemChange) error {
	items, err := m.layers.AllItems(ctx, t.Layer)
	if err != nil {
		return err
	}
	var cur *config.Item
	for i := range items {
		if items[i].Key == c.item.Key {
			cur = &items[i]
		}
	}
	visible := cur != nil && cur.Effective
	switch {
	case c.delete && !visible:
		return fmt.Errorf("%w: %s in namespace %s of cluster default", errItemNotFound, c.item.Key, t.File)
	case c.delete:
		return m.layers.DeleteItem(ctx, cur.ID, by)
	case c.create && visible:
		return fmt.Errorf("%w: %s in namespace %s of cluster default", errItemExists, c.item.Key, t.File)
	case !c.create && !c.upsert && !visible:
		return fmt.Errorf("%w: %s in namespace %s of cluster default", errItemNotFound, c.item.Key, t.File)
	case cur == nil:
		_, err := m.layers.AddItem(ctx, t.Layer, config.NewItem{Key: c.item.Key, Value: c.item.Value, Comment: c.item.Comment, By: by})
		return err
	}
	if _, err := m.layers.UpdateItem(ctx, cur.ID, config.Change{Value: &c.item.Value, Comment: &c.item.Comment, By: by}); err != nil {
		return err
	}
	if !cur.Effective {
		return m.layers.SetItemsEffective(ctx, []ids.ID{cur.ID}, true, by)
	}
	return nil
}

func (m *ConfigItems) applyNode(ctx context.Context, t Target, by string, c itemChange) error {
	nf, err := m.nodeFile(ctx, t)
	if err != nil {
		return err
	}
	items, err := m.layers.AllNodeItems(ctx, nf.ID)
	if err != nil {
		return err
	}
	var cur *config.NodeItem
	for i := range items {
		if items[i].Key == c.item.Key {
			cur = &items[i]
		}
	}
	visible := cur != nil && cur.Effective
	where := func(e error) error {
		return fmt.Errorf("%w: %s in namespace %s of cluster %s", e, c.item.Key, t.File, t.NodeName)
	}
	switch {
	case c.delete && !visible:
		return where(errItemNotFound)
	case c.delete && cur.ItemID.IsZero():
		return m.layers.ResetNodeItem(ctx, cur.ID, by) // the node's own key goes
	case c.delete:
		return m.layers.SetNodeItemsEffective(ctx, []ids.ID{cur.ID}, false, by) // a layer key is switched off here
	case c.create && visible:
		return where(errItemExists)
	case !c.create && !c.upsert && !visible:
		return where(errItemNotFound)
	case cur == nil:
		_, err := m.layers.AddNodeItem(ctx, []ids.ID{nf.ID}, config.NewItem{Key: c.item.Key, Value: c.item.Value, Comment: c.item.Comment, By: by})
		return err
	}
	ch := config.Change{Value: &c.item.Value, By: by}
	if cur.ItemID.IsZero() {
		ch.Comment = &c.item.Comment // a layer key's comment is the layer's
	}
	if _, err := m.layers.UpdateNodeItem(ctx, cur.ID, ch); err != nil {
		return err
	}
	if !cur.Effective {
		return m.layers.SetNodeItemsEffective(ctx, []ids.ID{cur.ID}, true, by)
	}
	return nil
}
