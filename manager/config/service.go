package config

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
)

// Store is what the service needs from persistence.
type Store interface {
	ReleaseStore

	// NodeTopology returns the cluster of the node: its name and every
	// node; ErrNodeNotFound.
	NodeTopology(ctx context.Context, nodeID ids.ID) (Topology, error)
	// ClusterTopology returns the cluster's name and every node.
	ClusterTopology(ctx context.Context, clusterID ids.ID) (Topology, error)

	// Files returns the cluster's layer files, by component then name.
	Files(ctx context.Context, clusterID ids.ID) ([]File, error)
	// File returns the layer file with id, or ErrFileNotFound.
	File(ctx context.Context, id ids.ID) (File, error)
	// Items returns one page of a layer's items, newest first, and the
	// total.
	Items(ctx context.Context, fileID ids.ID, p paging.Page) ([]Item, int, error)
	// AllItems returns every item of the layer, in file order.
	AllItems(ctx context.Context, fileID ids.ID) ([]Item, error)
	// Item returns the layer item with id, or ErrItemNotFound.
	Item(ctx context.Context, id ids.ID) (Item, error)
	// CreateItem inserts it with a mirroring item, whose id newID gives,
	// in every node's file of the layer; a node that has the key of its
	// own keeps its value and on/off as its override. ErrFileNotFound;
	// ErrItemExists when the layer has the key.
	CreateItem(ctx context.Context, it Item, newID func() ids.ID) error
	// UpdateItem sets an item's value and comment; ErrItemNotFound.
	UpdateItem(ctx context.Context, id ids.ID, value, comment, by string, now time.Time) (Item, error)
	// DeleteItem removes a layer item. Nodes that override its value keep
	// the key as their own (with their value and on/off); the others lose
	// it. ErrItemNotFound.
	DeleteItem(ctx context.Context, id ids.ID, by string, now time.Time) error
	// SetItemsEffective sets effective on all the layer items or, if one
	// does not exist (ErrItemNotFound), on none.
	SetItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string, now time.Time) error

	// NodeFiles returns the node's files, in manifest order.
	NodeFiles(ctx context.Context, nodeID ids.ID) ([]NodeFile, error)
	// NodeFile returns the node file with id, or ErrFileNotFound.
	NodeFile(ctx context.Context, id ids.ID) (NodeFile, error)
	// NodeItems returns one page of a node file's effective items, newest
	// first, and the total.
	NodeItems(ctx context.Context, nodeFileID ids.ID, p paging.Page) ([]NodeItem, int, error)
	// AllNodeItems returns every item of the node file: the layer's in
	// file order, then the node's own keys.
	AllNodeItems(ctx context.Context, nodeFileID ids.ID) ([]NodeItem, error)
	// NodeItem returns the node item with id, or ErrItemNotFound.
	NodeItem(ctx context.Context, id ids.ID) (NodeItem, error)
	// CreateNodeItems inserts keys of the nodes' own, all or none:
	// ErrFileNotFound, ErrItemExists when a file has the key.
	CreateNodeItems(ctx context.Context, items []NodeItem) error
	// SetNodeItem overrides a node item's value (nil: leave it) and, for
	// a key of the node's own, its comment (nil: leave it). A value equal
	// to the layer's drops the override. ErrItemNotFound.
	SetNodeItem(ctx context.Context, id ids.ID, value, comment *string, by string, now time.Time) (NodeItem, error)
	// ResetNodeItem drops a mirroring item's overrides, or deletes a key
	// of the node's own; ErrItemNotFound.
	ResetNodeItem(ctx context.Context, id ids.ID, by string, now time.Time) error
	// SetNodeItemsEffective switches node items on or off (an override,
	// dropped where it equals the layer) for all of them or, if one does
	// not exist (ErrItemNotFound), none.
	SetNodeItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string, now time.Time) error

	// Atomically runs fn in one transaction: every write fn makes with
	// the context it is given takes effect, or none does.
	Atomically(ctx context.Context, fn func(ctx context.Context) error) error
}

// Packages is what the service needs of packages; *pkg.Service
// implements it.
type Packages interface {
	Package(ctx context.Context, id ids.ID) (pkg.Package, error)
}

// Service manages the config of clusters' nodes.
type Service struct {
	store    Store
	packages Packages
	gen      *ids.Generator
	now      func() time.Time
}

// NewService returns the service.
func NewService(store Store, packages Packages, gen *ids.Generator, now func() time.Time) *Service {
	return &Service{store: store, packages: packages, gen: gen, now: now}
}

// Render renders the node's config files from its effective items with
// its variables: what deploy writes, and what a flush releases.
func (s *Service) Render(ctx context.Context, nodeID ids.ID) (NodeConfig, error) {
	t, err := s.store.NodeTopology(ctx, nodeID)
	if err != nil {
		return NodeConfig{}, err
	}
	n, ok := t.Member(nodeID)
	if !ok {
		return NodeConfig{}, fmt.Errorf("%w: %s", ErrNodeNotFound, nodeID)
	}
	comp, err := s.component(ctx, n)
	if err != nil {
		return NodeConfig{}, err
	}
	files, err := s.store.NodeFiles(ctx, nodeID)
	if err != nil {
		return NodeConfig{}, err
	}
	in := make([]FileEntries, len(files))
	for i, f := range files {
		items, err := s.store.AllNodeItems(ctx, f.ID)
		if err != nil {
			return NodeConfig{}, err
		}
		in[i] = FileEntries{File: f, Entries: nodeEntries(items)}
	}
	return RenderFiles(t, n, comp.Peer, in)
}

// Vars returns the node's variables, which fill its start command and
// health check as they fill its files.
func (s *Service) Vars(ctx context.Context, nodeID ids.ID) (Vars, error) {
	t, err := s.store.NodeTopology(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	n, ok := t.Member(nodeID)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNodeNotFound, nodeID)
	}
	comp, err := s.component(ctx, n)
	if err != nil {
		return nil, err
	}
	return VarsFor(t, n, comp.Peer)
}

// component returns the manifest's component the node runs.
func (s *Service) component(ctx context.Context, n Member) (manifest.Component, error) {
	p, err := s.packages.Package(ctx, n.PackageID)
	if err != nil {
		return manifest.Component{}, fmt.Errorf("node %s: %w", n.NodeDir, err)
	}
	comp, ok := p.Manifest.Components[n.Component]
	if !ok {
		return manifest.Component{}, fmt.Errorf("%w: package %s does not provide %s", ErrRender, p.FileName, n.Component)
	}
	return comp, nil
}

func nodeEntries(items []NodeItem) []Entry {
	out := make([]Entry, len(items))
	for i, it := range items {
		out[i] = it.Entry()
	}
	return out
}

// Files returns the cluster's config files (their layers).
func (s *Service) Files(ctx context.Context, clusterID ids.ID) ([]File, error) {
	return s.store.Files(ctx, clusterID)
}

// File returns the layer file with id, or ErrFileNotFound.
func (s *Service) File(ctx context.Context, id ids.ID) (File, error) { return s.store.File(ctx, id) }

// Items returns one page of the layer's items, newest first, and the
// total, or ErrFileNotFound.
func (s *Service) Items(ctx context.Context, fileID ids.ID, p paging.Page) ([]Item, int, error) {
	if _, err := s.store.File(ctx, fileID); err != nil {
		return nil, 0, err
	}
	return s.store.Items(ctx, fileID, p)
}

// AllItems returns every item of the layer, in file order.
func (s *Service) AllItems(ctx context.Context, fileID ids.ID) ([]Item, error) {
	if _, err := s.store.File(ctx, fileID); err != nil {
		return nil, err
	}
	return s.store.AllItems(ctx, fileID)
}

// Item returns the layer item with id, or ErrItemNotFound.
func (s *Service) Item(ctx context.Context, id ids.ID) (Item, error) { return s.store.Item(ctx, id) }

// NewItem is a key to add.
type NewItem struct {
	Key     string
	Value   string
	Comment string
	// By is who adds it: a console user's or an Open API operator's name.
	By string
}

// AddItem adds an effective key to the cluster layer of a file, which
// every node of the layer gets (a node that had the key of its own keeps
// its value as an override). ErrFileNotFound; ErrItemExists when the
// layer has the key; an *invalid.Error for a key or value the file cannot
// hold.
func (s *Service) AddItem(ctx context.Context, fileID ids.ID, n NewItem) (Item, error) {
	f, err := s.store.File(ctx, fileID)
	if err != nil {
		return Item{}, err
	}
	key, err := checkNewItem(f.Name, f.Format, n)
	if err != nil {
		return Item{}, err
	}
	now := s.now()
	it := Item{ID: s.gen.Next(), FileID: fileID, Key: key, Value: n.Value, Comment: n.Comment, Effective: true,
		CreatedAt: now, UpdatedAt: now, CreatedBy: n.By, UpdatedBy: n.By}
	if err := s.store.CreateItem(ctx, it, s.gen.Next); err != nil {
		return Item{}, err
	}
	return it, nil
}

// Change is an edit of an item: nil fields are left as they are.
type Change struct {
	Value   *string
	Comment *string
	// By is who makes the change.
	By string
}

// UpdateItem changes a layer item's value or comment: ErrItemNotFound, or
// an *invalid.Error for a value the file cannot hold.
func (s *Service) UpdateItem(ctx context.Context, id ids.ID, c Change) (Item, error) {
	it, err := s.store.Item(ctx, id)
	if err != nil {
		return Item{}, err
	}
	f, err := s.store.File(ctx, it.FileID)
	if err != nil {
		return Item{}, err
	}
	value, comment := it.Value, it.Comment
	if c.Value != nil {
		value = *c.Value
	}
	if c.Comment != nil {
		comment = *c.Comment
	}
	if err := checkValue(f.Format, it.Key, value); err != nil {
		return Item{}, err
	}
	if err := checkComment(comment); err != nil {
		return Item{}, err
	}
	return s.store.UpdateItem(ctx, id, value, comment, c.By, s.now())
}

// DeleteItem removes a key from the cluster layer: nodes that override its
// value keep it as their own key (changed by by), the others lose it.
// ErrItemNotFound; a raw file's content cannot be deleted.
func (s *Service) DeleteItem(ctx context.Context, id ids.ID, by string) error {
	it, err := s.store.Item(ctx, id)
	if err != nil {
		return err
	}
	f, err := s.store.File(ctx, it.FileID)
	if err != nil {
		return err
	}
	if f.Format == FormatRaw {
		return invalid.Field("item", "%s is a raw file: its %q cannot be deleted; edit or disable it", f.Name, RawKey)
	}
	return s.store.DeleteItem(ctx, id, by, s.now())
}

// SetItemsEffective switches layer items on or off, as by: all of them,
// or none if one does not exist (ErrItemNotFound).
func (s *Service) SetItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string) error {
	if err := checkIDs(itemIDs); err != nil {
		return err
	}
	return s.store.SetItemsEffective(ctx, itemIDs, effective, by, s.now())
}

// NodeFiles returns the node's config files.
func (s *Service) NodeFiles(ctx context.Context, nodeID ids.ID) ([]NodeFile, error) {
	return s.store.NodeFiles(ctx, nodeID)
}

// NodeFile returns the node file with id, or ErrFileNotFound.
func (s *Service) NodeFile(ctx context.Context, id ids.ID) (NodeFile, error) {
	return s.store.NodeFile(ctx, id)
}

// NodeItems returns one page of a node file's effective items, newest
// first, and the total, or ErrFileNotFound.
func (s *Service) NodeItems(ctx context.Context, nodeFileID ids.ID, p paging.Page) ([]NodeItem, int, error) {
	if _, err := s.store.NodeFile(ctx, nodeFileID); err != nil {
		return nil, 0, err
	}
	return s.store.NodeItems(ctx, nodeFileID, p)
}

// AllNodeItems returns every effective item of the node file, in file
// order.
func (s *Service) AllNodeItems(ctx context.Context, nodeFileID ids.ID) ([]NodeItem, error) {
	if _, err := s.store.NodeFile(ctx, nodeFileID); err != nil {
		return nil, err
	}
	return s.store.AllNodeItems(ctx, nodeFileID)
}

// NodeItem returns the node item with id, or ErrItemNotFound.
func (s *Service) NodeItem(ctx context.Context, id ids.ID) (NodeItem, error) {
	return s.store.NodeItem(ctx, id)
}

// AddNodeItem adds a key of their own to the named node files, all or
// none: ErrFileNotFound, ErrItemExists when a file has the key (from its
// layer or its own), an *invalid.Error for a key or value that cannot be
// written.
func (s *Service) AddNodeItem(ctx context.Context, nodeFileIDs []ids.ID, n NewItem) ([]NodeItem, error) {
	if len(nodeFileIDs) == 0 {
		return nil, invalid.Field("file", "name at least one node file")
	}
	if len(nodeFileIDs) > maxIDs {
		return nil, invalid.Field("file", "at most %d files at once", maxIDs)
	}
	now := s.now()
	var out []NodeItem
	seen := map[ids.ID]bool{}
	for _, id := range nodeFileIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		f, err := s.store.NodeFile(ctx, id)
		if err != nil {
			return nil, err
		}
		key, err := checkNewItem(f.Name, f.Format, n)
		if err != nil {
			return nil, err
		}
		out = append(out, NodeItem{ID: s.gen.Next(), NodeFileID: id, Key: key, Value: n.Value, Comment: n.Comment,
			Effective: true, ValueSet: true, EffectiveSet: true, CreatedAt: now, UpdatedAt: now, CreatedBy: n.By, UpdatedBy: n.By})
	}
	if err := s.store.CreateNodeItems(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateNodeItem changes a node item: a mirrored key gets the value as the
// node's override (the layer's value drops it); a key of the node's own
// gets the value and comment. ErrItemNotFound, or an *invalid.Error.
func (s *Service) UpdateNodeItem(ctx context.Context, id ids.ID, c Change) (NodeItem, error) {
	it, err := s.store.NodeItem(ctx, id)
	if err != nil {
		return NodeItem{}, err
	}
	f, err := s.store.NodeFile(ctx, it.NodeFileID)
	if err != nil {
		return NodeItem{}, err
	}
	if c.Value != nil {
		if err := checkValue(f.Format, it.Key, *c.Value); err != nil {
			return NodeItem{}, err
		}
	}
	if c.Comment != nil {
		if !it.ItemID.IsZero() {
			return NodeItem{}, invalid.Field("comment", "%s comes from the cluster layer: edit its comment there", it.Key)
		}
		if err := checkComment(*c.Comment); err != nil {
			return NodeItem{}, err
		}
	}
	return s.store.SetNodeItem(ctx, id, c.Value, c.Comment, c.By, s.now())
}

// ResetNodeItem drops a node's overrides of a cluster key (it follows the
// layer again), as by, or deletes a key of the node's own.
// ErrItemNotFound.
func (s *Service) ResetNodeItem(ctx context.Context, id ids.ID, by string) error {
	return s.store.ResetNodeItem(ctx, id, by, s.now())
}

// SetNodeItemsEffective switches node items on or off for their nodes, as
// by: all of them, or none if one does not exist (ErrItemNotFound).
func (s *Service) SetNodeItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string) error {
	if err := checkIDs(itemIDs); err != nil {
		return err
	}
	return s.store.SetNodeItemsEffective(ctx, itemIDs, effective, by, s.now())
}

// Atomically runs fn, whose edits of items and node items through the
// service (with the context fn is given) all take effect or, when fn
// fails, none: one store transaction. Reads inside fn see the config as
// it was before fn; fn should edit each item at most once. The Open API's
// batch item calls are made of it.
func (s *Service) Atomically(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.store.Atomically(ctx, fn)
}

// maxIDs caps the ids of one call.
const maxIDs = 10000

func checkIDs(itemIDs []ids.ID) error {
	if len(itemIDs) == 0 {
		return invalid.Field("items", "give at least one item id")
	}
	if len(itemIDs) > maxIDs {
		return invalid.Field("items", "at most %d ids at once", maxIDs)
	}
	for i, id := range itemIDs {
		if id.IsZero() {
			return invalid.Field("items", "entry %d is empty", i)
		}
	}
	return nil
}

// checkNewItem checks a key to add to a file and returns it trimmed.
func checkNewItem(fileName, format string, n NewItem) (string, error) {
	key := strings.TrimSpace(n.Key)
	if format == FormatRaw {
		return "", invalid.Field("key", "%s is a raw file: edit its %q item instead", fileName, RawKey)
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	if err := checkValue(format, key, n.Value); err != nil {
		return "", err
	}
	return key, checkComment(n.Comment)
}

// checkKey refuses a key that a properties file cannot hold as written:
// empty, too long, not UTF-8, or with a control character (a line break
// in a key would be escaped, but no reader of the file expects one).
func checkKey(key string) error {
	switch {
	case key == "":
		return invalid.Field("key", "is required")
	case !utf8.ValidString(key):
		return invalid.Field("key", "%q is not UTF-8 text", key)
	case utf8.RuneCountInString(key) > MaxKeyLen:
		return invalid.Field("key", "%q is longer than %d characters", truncate(key, 40), MaxKeyLen)
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return invalid.Field("key", "%q holds a control character (a line break, tab or NUL) that would corrupt the file", key)
	case strings.HasPrefix(key, "{") && strings.HasSuffix(key, "}"):
		return invalid.Field("key", "%q: a key may not be a {variable} line; those come from the package", key)
	}
	return nil
}

// checkValue refuses a value that is too long, not text, or a malformed
// template.
func checkValue(format, key, value string) error {
	limit := MaxValueLen
	if format == FormatRaw {
		limit = MaxFileSize
	}
	switch {
	case !utf8.ValidString(value):
		return invalid.Field("value", "the value of %s is not UTF-8 text", key)
	case utf8.RuneCountInString(value) > limit:
		return invalid.Field("value", "the value of %s is longer than %d characters", key, limit)
	}
	if _, err := manifest.Refs(value); err != nil {
		return invalid.Field("value", "the value of %s: %v (write {{ and }} for literal braces)", key, err)
	}
	return nil
}

func checkComment(c string) error {
	switch {
	case !utf8.ValidString(c):
		return invalid.Field("comment", "is not UTF-8 text")
	case utf8.RuneCountInString(c) > MaxCommentLen:
		return invalid.Field("comment", "is longer than %d characters", MaxCommentLen)
	case strings.ContainsRune(c, 0):
		return invalid.Field("comment", "holds a NUL character")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
