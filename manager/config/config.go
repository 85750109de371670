// Package config owns the configuration of cluster nodes: their config
// files and items, the variables filled in per node, rendering, and
// releases. The console API and the Apollo-compatible Open API are thin
// adapters over it; deployment, flush and rollouts render through it.
//
// Layers. A cluster's config file — one per component and file name, e.g.
// the coordinators' zoo.cfg — has a cluster-wide layer (a File and its
// Items), imported from the package once, when the cluster's first node of
// that component is created. Each node of the component has its own copy
// of the file (a NodeFile) whose items (NodeItems) mirror the layer's, one
// for one, and may override the layer's value or switch the key off for
// that node; a node may also have keys of its own. A node's effective file
// is the layer overlaid key by key with its overrides, rendered with the
// node's variables (VarsFor): one edit of the layer reaches every node, an
// override makes an exception of one.
//
// Rendering. Render(ctx, nodeID) is the one way a node's files are made:
// deployment's configure step, flushes and the tests' workload builder all
// come through RenderFiles. A properties file is written as
// java.util.Properties reads it (internal/properties); a raw file is its
// one "content" item. Values are templates: {myid}, {zkEnsemble} and the
// other manifest.Variables are filled in per node; "{{" and "}}" are
// literal braces.
//
// Validation errors are *invalid.Error naming fields in this package's
// terms — "key", "value", "comment", "file" — which each adapter maps to
// its own field names.
package config

import (
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
)

// Errors callers branch on; transports map them to their own codes.
var (
	ErrFileNotFound = errors.New("config file does not exist")
	ErrItemNotFound = errors.New("config item does not exist")
	ErrItemExists   = errors.New("config item already exists in the file")
	ErrNodeNotFound = errors.New("cluster node does not exist")
	// ErrRender: a config file cannot be rendered for a node (an unknown
	// variable, a bad template).
	ErrRender = errors.New("config file cannot be rendered")
)

// Formats of config files (manifest.FormatProperties is the default).
const (
	FormatProperties = manifest.FormatProperties
	FormatRaw        = manifest.FormatRaw
)

// RawKey is the key of the one item that holds a raw file's content.
const RawKey = "content"

// Limits of what an item may hold. A raw file's content is bounded by
// MaxFileSize instead of MaxValueLen.
const (
	MaxKeyLen     = 128
	MaxValueLen   = 20000
	MaxCommentLen = 256
	// MaxFileSize caps a config file read out of a package, and a raw
	// file's content.
	MaxFileSize = 1 << 20
)

// File is the cluster layer of a config file: one per cluster, component
// and file name.
type File struct {
	ID        ids.ID
	ClusterID ids.ID
	Component string
	// Name is the manifest's name for the file (the Apollo namespace).
	Name string
	// Path is the file's path in the package, relative.
	Path string
	// Format is FormatProperties or FormatRaw.
	Format string
	// Target is where the file is written on a node, as the manifest's
	// ConfigFile.Target says it after defaults: a clean relative path
	// (under the program dir), or "{programDir}/…" or "{dataDir}/…".
	Target string
	// PackageID is the package the layer was imported from.
	PackageID ids.ID
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Item is one key of a cluster layer. Effective false leaves it out of
// every node's file (unless a node switches it on).
type Item struct {
	ID     ids.ID
	FileID ids.ID
	Key    string
	Value  string
	// Comment is the comment lines above the key in the package's file,
	// or the operator's description.
	Comment   string
	Effective bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// CreatedBy and UpdatedBy name who added the key and who last changed
	// it: a console user or an Open API operator, and for a key imported
	// from the package the console user whose request imported it (who
	// created the cluster or added the nodes). Empty when not recorded: a
	// key imported before the manager recorded it (Author answers
	// ImportAuthor for it).
	CreatedBy string
	UpdatedBy string
}

// ImportAuthor is the author the APIs answer for a key whose author was
// not recorded: one imported from a package by a manager older than the
// record of who imported it.
const ImportAuthor = "admq-import"

// Author is the author to answer for a recorded author by: by, or
// ImportAuthor when none was recorded.
func Author(by string) string {
	if by == "" {
		return ImportAuthor
	}
	return by
}

// NodeFile is one node's copy of a layer's file.
type NodeFile struct {
	ID     ids.ID
	NodeID ids.ID
	// FileID is the cluster layer's File.
	FileID ids.ID
	Name   string
	Path   string
	Format string
	// Target is where the file is written on this node as the agent takes
	// it: relative to the program dir, or absolute in the data dir;
	// resolved once, when the node was created.
	Target    string
	CreatedAt time.Time
	UpdatedAt time.Time
	// ItemsVersion, filled by reads, changes with every change of the
	// file's items as NodeItems shows them (its own, and the layer items
	// they mirror).
	ItemsVersion int64
}

// NodeItem is one key of a node's effective file: a layer item as the
// node sees it, or a key of the node's own.
type NodeItem struct {
	ID         ids.ID
	NodeFileID ids.ID
	// ItemID is the layer item this one mirrors; zero for a key of the
	// node's own.
	ItemID ids.ID
	Key    string
	// Value, Comment and Effective are what the node's file gets: the
	// layer's, unless the node overrides them.
	Value     string
	Comment   string
	Effective bool
	// ValueSet and EffectiveSet say that the node overrides the layer's
	// value, or its on/off; always true for a key of the node's own.
	ValueSet     bool
	EffectiveSet bool
	CreatedAt    time.Time
	// UpdatedAt and UpdatedBy are the later of the node's and the layer's
	// change of the key: what the node's file last changed by.
	UpdatedAt time.Time
	CreatedBy string
	UpdatedBy string
}

// Sources of a node's item.
const (
	SourceCluster = "cluster" // as the cluster layer has it
	SourceNode    = "node"    // overridden on the node, or the node's own key
)

// Source says where the item's value and on/off come from.
func (it NodeItem) Source() string {
	if it.ItemID.IsZero() || it.ValueSet || it.EffectiveSet {
		return SourceNode
	}
	return SourceCluster
}

// Entry is a key as rendering takes it.
type Entry struct {
	Key       string
	Value     string
	Comment   string
	Effective bool
}

// Entry returns the item as rendering takes it.
func (it Item) Entry() Entry {
	return Entry{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective}
}

// Entry returns the item as rendering takes it.
func (it NodeItem) Entry() Entry {
	return Entry{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective}
}
