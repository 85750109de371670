package config

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors of releases.
var (
	ErrReleaseNotFound = errors.New("config release does not exist")
	// ErrNoChange: no node's file would change; nothing was released.
	ErrNoChange = errors.New("the nodes have this config already")
	// ErrOtherFile: a rollback names a release of another config file.
	ErrOtherFile = errors.New("the release is of another config file")
)

// Release kinds: what made the release.
const (
	KindDeploy   = "deploy"   // a deployment's configure step
	KindFlush    = "flush"    // a flush of one node's file
	KindRollout  = "rollout"  // a rolling flush of a file over nodes
	KindRollback = "rollback" // a rollback to an earlier release
)

// ReleaseState is where a release stands.
type ReleaseState string

// Release states. A release is pending until its first node is applied,
// applying until every node is settled, then applied (every node has
// it) or failed (at least one node does not).
const (
	ReleasePending  ReleaseState = "pending"
	ReleaseApplying ReleaseState = "applying"
	ReleaseApplied  ReleaseState = "applied"
	ReleaseFailed   ReleaseState = "failed"
)

// NodeState is where one node of a release stands.
type NodeState string

// Node states of a release.
const (
	// NodePending: not applied yet.
	NodePending NodeState = "pending"
	// NodeApplying: sent to the node's agent.
	NodeApplying NodeState = "applying"
	// NodeApplied: the node has the release's file and was healthy.
	NodeApplied NodeState = "applied"
	// NodeUnchanged: the node had this file already; nothing was done.
	NodeUnchanged NodeState = "unchanged"
	// NodeRestored: the node was unhealthy on the release's file and got
	// its previous file back.
	NodeRestored NodeState = "restored"
	// NodeFailed: the node does not have the release's file, and what it
	// has is known (the agent refused, or the write failed and was undone).
	NodeFailed NodeState = "failed"
	// NodeInterrupted: the apply was cut short (the agent or the manager
	// went away); the file on the node is its old or its new version.
	NodeInterrupted NodeState = "interrupted"
	// NodeCancelled: never sent, because the rollout stopped first.
	NodeCancelled NodeState = "cancelled"
)

// settled are the final node states.
var settled = []NodeState{NodeApplied, NodeUnchanged, NodeRestored, NodeFailed, NodeInterrupted, NodeCancelled}

// Settled reports whether s is final.
func (s NodeState) Settled() bool { return slices.Contains(settled, s) }

// nodeMoves are the node state transitions a release allows.
var nodeMoves = map[NodeState][]NodeState{
	NodePending:  {NodeApplying, NodeCancelled, NodeUnchanged},
	NodeApplying: {NodeApplied, NodeUnchanged, NodeRestored, NodeFailed, NodeInterrupted},
	// An interrupted apply is settled when its agent says how it ended.
	NodeInterrupted: {NodeApplied, NodeUnchanged, NodeRestored, NodeFailed},
}

// CanMove reports whether a release's node may go from state from to to.
func CanMove(from, to NodeState) bool { return slices.Contains(nodeMoves[from], to) }

// ReleaseStateOf is the state of a release whose nodes are in states.
func ReleaseStateOf(states []NodeState) ReleaseState {
	state, begun := ReleaseApplied, false
	for _, s := range states {
		switch s {
		case NodePending:
			if begun {
				return ReleaseApplying
			}
			state = ReleasePending
		case NodeApplying:
			return ReleaseApplying
		case NodeApplied, NodeUnchanged:
			begun = true
			if state == ReleasePending {
				return ReleaseApplying
			}
		default: // restored, failed, interrupted, cancelled
			begun = true
			if state == ReleasePending {
				return ReleaseApplying
			}
			state = ReleaseFailed
		}
	}
	return state
}

// Release is an immutable, numbered version of a config file: the cluster
// layer's items and, per node, the node's items and the rendered file, as
// they were when it was made; and how applying it went.
type Release struct {
	ID        ids.ID
	FileID    ids.ID // the cluster layer's File
	ClusterID ids.ID
	Component string
	FileName  string
	// Number counts a file's releases from 1.
	Number    int
	Kind      string
	Title     string
	Comment   string
	CreatedBy string
	CreatedAt time.Time
	// JobID is the job that applies it.
	JobID ids.ID
	// RollbackOf is the release a rollback went back to.
	RollbackOf ids.ID
	State      ReleaseState
	Reason     string
	FinishedAt time.Time
	// Items are the cluster layer's items as they were.
	Items []Item
}

// ReleaseNode is one node of a release.
type ReleaseNode struct {
	ReleaseID  ids.ID
	NodeID     ids.ID
	NodeFileID ids.ID
	NodeDir    string
	// Path is where the file is written on the node.
	Path string
	// Items are the node's effective items as they were.
	Items   []NodeItem
	Content []byte
	SHA256  string
	State   NodeState
	// Detail says how the apply went: the health check's answer, why it
	// failed, the node's last log lines.
	Detail     string
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// NewRelease is what NewRelease makes a release of.
type NewRelease struct {
	// FileID is the cluster layer's file.
	FileID ids.ID
	// NodeIDs are the nodes to release to; empty: every node of the layer.
	NodeIDs []ids.ID
	Kind    string
	Title   string
	Comment string
	By      string
	JobID   ids.ID
	// All keeps the nodes whose file would not change (a rollout that
	// restarts every node); otherwise they are left out, and a release
	// with no node left is ErrNoChange.
	All bool
	// RollbackTo is an earlier release of the file whose content the
	// release takes, and whose draft it restores; NodeIDs then default to
	// that release's nodes.
	RollbackTo ids.ID
}

// Applied is what a node file holds on its node, as far as the manager
// knows.
type Applied struct {
	NodeFileID ids.ID
	ReleaseID  ids.ID
	SHA256     string
	// Unknown: an apply was cut short; the node has the old or the new
	// file.
	Unknown bool
	At      time.Time
}

// Outcome is how applying a release to a node ended.
type Outcome struct {
	State  NodeState
	Detail string
	At     time.Time
}

// Limits of a release's words.
const (
	MaxTitleLen = 128
	MaxNoteLen  = 1024
)

// ReleaseStore is what releases need from persistence.
type ReleaseStore interface {
	// CreateRelease stores r with its nodes, numbering it after the file's
	// last release; with restoreDraft it also sets the layer's items and
	// the nodes' items to the release's (newID gives new items their ids).
	CreateRelease(ctx context.Context, r *Release, nodes []ReleaseNode, restoreDraft bool, newID func() ids.ID) error
	// DeleteRelease removes a release none of whose nodes began;
	// ErrReleaseNotFound.
	DeleteRelease(ctx context.Context, id ids.ID) error
	// Release returns the release with id, or ErrReleaseNotFound.
	Release(ctx context.Context, id ids.ID) (Release, error)
	// ReleaseNodes returns the release's nodes, in the order they were
	// given.
	ReleaseNodes(ctx context.Context, id ids.ID) ([]ReleaseNode, error)
	// Releases returns one page of the layer file's releases, newest
	// first, and the total; with nodeID only those that include the node.
	Releases(ctx context.Context, fileID, nodeID ids.ID, p paging.Page) ([]Release, int, error)
	// SetReleaseNode moves a release's node to out.State (refusing a move
	// CanMove does not allow), sets the node file's Applied record as the
	// outcome implies, and the release's state (ReleaseStateOf), in one
	// transaction.
	SetReleaseNode(ctx context.Context, releaseID, nodeID ids.ID, out Outcome) (Release, error)
	// FinishRelease cancels the release's pending nodes with reason and
	// settles the release.
	FinishRelease(ctx context.Context, id ids.ID, reason string, now time.Time) (Release, error)
	// FailUnfinishedReleases marks every node left applying interrupted
	// and its node file's content unknown, cancels pending nodes, and
	// fails those releases with reason.
	FailUnfinishedReleases(ctx context.Context, reason string, now time.Time) ([]Release, error)
	// InterruptedNodes returns the release nodes left interrupted on the
	// given nodes.
	InterruptedNodes(ctx context.Context, nodeIDs []ids.ID) ([]ReleaseNode, error)
	// AppliedFiles returns what the manager knows is on the nodes.
	AppliedFiles(ctx context.Context, nodeIDs []ids.ID) (map[ids.ID]Applied, error)
	// RecordApplied notes that node files hold content written outside a
	// release (a deployment that found nothing to release).
	RecordApplied(ctx context.Context, applied []Applied) error
}

// NewRelease renders the file for the nodes (or, for a rollback, takes the
// earlier release's content), and stores a pending release of the nodes
// whose file would change. ErrNoChange when none would.
func (s *Service) NewRelease(ctx context.Context, n NewRelease) (Release, []ReleaseNode, error) {
	if err := checkWords(n.Title, n.Comment); err != nil {
		return Release{}, nil, err
	}
	f, err := s.store.File(ctx, n.FileID)
	if err != nil {
		return Release{}, nil, err
	}
	r := Release{FileID: f.ID, ClusterID: f.ClusterID, Component: f.Component, FileName: f.Name, Kind: n.Kind, Title: n.Title,
		Comment: n.Comment, CreatedBy: n.By, CreatedAt: s.now(), JobID: n.JobID, State: ReleasePending}
	var nodes []ReleaseNode
	if !n.RollbackTo.IsZero() {
		nodes, err = s.rollbackNodes(ctx, &r, n)
	} else if r.Items, err = s.store.AllItems(ctx, f.ID); err == nil {
		nodes, err = s.renderNodes(ctx, f, n)
	}
	if err != nil {
		return Release{}, nil, err
	}
	if !n.All {
		applied, err := s.store.AppliedFiles(ctx, nodeIDsOf(nodes))
		if err != nil {
			return Release{}, nil, err
		}
		nodes = slices.DeleteFunc(nodes, func(rn ReleaseNode) bool {
			a, ok := applied[rn.NodeFileID]
			return ok && !a.Unknown && a.SHA256 == rn.SHA256
		})
	}
	if len(nodes) == 0 {
		return Release{}, nil, fmt.Errorf("%w: %s", ErrNoChange, f.Name)
	}
	r.ID = s.gen.Next()
	for i := range nodes {
		nodes[i].ReleaseID, nodes[i].State, nodes[i].UpdatedAt = r.ID, NodePending, r.CreatedAt
	}
	if err := s.store.CreateRelease(ctx, &r, nodes, !n.RollbackTo.IsZero(), s.gen.Next); err != nil {
		return Release{}, nil, err
	}
	return r, nodes, nil
}

func nodeIDsOf(nodes []ReleaseNode) []ids.ID {
	out := make([]ids.ID, len(nodes))
	for i, n := range nodes {
		out[i] = n.NodeID
	}
	return out
}

// renderNodes renders the layer file for each node of n (all nodes of the
// layer when none are named), with the items it is made of.
func (s *Service) renderNodes(ctx context.Context, f File, n NewRelease) ([]ReleaseNode, error) {
	var out []ReleaseNode
	members, err := s.layerMembers(ctx, f, n.NodeIDs)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		nc, err := s.Render(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		files, err := s.store.NodeFiles(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(files, func(nf NodeFile) bool { return nf.FileID == f.ID })
		if i < 0 {
			return nil, fmt.Errorf("%w: node %s has no %s", ErrFileNotFound, m.NodeDir, f.Name)
		}
		nodeItems, err := s.store.AllNodeItems(ctx, files[i].ID)
		if err != nil {
			return nil, err
		}
		rf := nc.Files[i]
		out = append(out, ReleaseNode{NodeID: m.ID, NodeFileID: files[i].ID, NodeDir: m.NodeDir, Path: rf.Path,
			Items: nodeItems, Content: rf.Content, SHA256: rf.SHA256()})
	}
	return out, nil
}

// layerMembers returns the nodes of the layer's component in its cluster,
// in topology order, or those of ids, each of which must be one.
func (s *Service) layerMembers(ctx context.Context, f File, nodeIDs []ids.ID) ([]Member, error) {
	t, err := s.store.ClusterTopology(ctx, f.ClusterID)
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, m := range t.Members {
		if m.Component == f.Component && (len(nodeIDs) == 0 || slices.Contains(nodeIDs, m.ID)) {
			out = append(out, m)
		}
	}
	for _, id := range nodeIDs {
		if !slices.ContainsFunc(out, func(m Member) bool { return m.ID == id }) {
			if _, ok := t.Member(id); ok {
				return nil, invalid.Field("nodes", "node %s is not a %s node: %s is not its file", id, f.Component, f.Name)
			}
			return nil, fmt.Errorf("%w: %s is not a node of the cluster", ErrNodeNotFound, id)
		}
	}
	if len(out) == 0 {
		return nil, invalid.Field("nodes", "the cluster has no %s node to release %s to", f.Component, f.Name)
	}
	return out, nil
}

// rollbackNodes are the nodes of the release a rollback goes back to that
// are still in the cluster (or those of n.NodeIDs), with its content.
func (s *Service) rollbackNodes(ctx context.Context, r *Release, n NewRelease) ([]ReleaseNode, error) {
	to, err := s.store.Release(ctx, n.RollbackTo)
	if err != nil {
		return nil, err
	}
	if to.FileID != n.FileID {
		return nil, fmt.Errorf("%w: release %s is #%d of %s (%s), not of file %s", ErrOtherFile, to.ID, to.Number, to.FileName, to.Component, n.FileID)
	}
	old, err := s.store.ReleaseNodes(ctx, to.ID)
	if err != nil {
		return nil, err
	}
	members, err := s.layerMembers(ctx, File{ID: to.FileID, ClusterID: to.ClusterID, Component: to.Component, Name: to.FileName}, n.NodeIDs)
	if err != nil {
		return nil, err
	}
	r.RollbackOf, r.Items = to.ID, to.Items
	var out []ReleaseNode
	for _, m := range members {
		i := slices.IndexFunc(old, func(o ReleaseNode) bool { return o.NodeID == m.ID })
		if i < 0 {
			if len(n.NodeIDs) > 0 {
				return nil, invalid.Field("nodes", "node %s (%s) is not in release #%d", m.NodeDir, m.ID, to.Number)
			}
			continue
		}
		o := old[i]
		out = append(out, ReleaseNode{NodeID: o.NodeID, NodeFileID: o.NodeFileID, NodeDir: o.NodeDir, Path: o.Path,
			Items: o.Items, Content: o.Content, SHA256: o.SHA256})
	}
	if len(out) == 0 {
		return nil, invalid.Field("release", "no node of release #%d is in the cluster any more", to.Number)
	}
	return out, nil
}

// Applying notes that the release's node was sent to its agent.
func (s *Service) Applying(ctx context.Context, releaseID, nodeID ids.ID) error {
	_, err := s.store.SetReleaseNode(ctx, releaseID, nodeID, Outcome{State: NodeApplying, At: s.now()})
	return err
}

// Settle records how applying the release to the node ended, what the
// node's file now holds, and the release's state.
func (s *Service) Settle(ctx context.Context, releaseID, nodeID ids.ID, state NodeState, detail string) (Release, error) {
	return s.store.SetReleaseNode(ctx, releaseID, nodeID, Outcome{State: state, Detail: truncate(detail, 16<<10), At: s.now()})
}

// FinishRelease cancels the nodes of the release not applied (the rollout
// stopped: reason) and returns the release settled.
func (s *Service) FinishRelease(ctx context.Context, id ids.ID, reason string) (Release, error) {
	return s.store.FinishRelease(ctx, id, truncate(reason, 16<<10), s.now())
}

// AbandonRelease deletes a release none of whose nodes began (its job
// could not be created).
func (s *Service) AbandonRelease(ctx context.Context, id ids.ID) error {
	return s.store.DeleteRelease(ctx, id)
}

// RecoverReleases settles what a previous run of the manager left: nodes
// it was applying become interrupted (their agents are asked later, by
// Reconcile, how the apply ended), pending ones cancelled, and those
// releases failed with reason.
func (s *Service) RecoverReleases(ctx context.Context, reason string) ([]Release, error) {
	return s.store.FailUnfinishedReleases(ctx, reason, s.now())
}

// Interrupted returns the release nodes left interrupted on the nodes.
func (s *Service) Interrupted(ctx context.Context, nodeIDs []ids.ID) ([]ReleaseNode, error) {
	if len(nodeIDs) == 0 {
		return nil, nil
	}
	return s.store.InterruptedNodes(ctx, nodeIDs)
}

// RecordApplied notes what a deployment wrote on nodes without a release
// (their files did not change).
func (s *Service) RecordApplied(ctx context.Context, nodeFiles map[ids.ID]string) error {
	var out []Applied
	now := s.now()
	for id, sha := range nodeFiles {
		out = append(out, Applied{NodeFileID: id, SHA256: sha, At: now})
	}
	return s.store.RecordApplied(ctx, out)
}

// Release returns the release with id and its nodes.
func (s *Service) Release(ctx context.Context, id ids.ID) (Release, []ReleaseNode, error) {
	r, err := s.store.Release(ctx, id)
	if err != nil {
		return Release{}, nil, err
	}
	nodes, err := s.store.ReleaseNodes(ctx, id)
	return r, nodes, err
}

// Releases returns one page of a layer file's releases, newest first, and
// the total; with nodeID only those that include that node.
func (s *Service) Releases(ctx context.Context, fileID, nodeID ids.ID, p paging.Page) ([]Release, int, error) {
	if _, err := s.store.File(ctx, fileID); err != nil {
		return nil, 0, err
	}
	return s.store.Releases(ctx, fileID, nodeID, p)
}

func checkWords(title, comment string) error {
	if err := checkText("title", title, MaxTitleLen); err != nil {
		return err
	}
	return checkText("comment", comment, MaxNoteLen)
}

func checkText(field, v string, max int) error {
	switch {
	case !utf8.ValidString(v):
		return invalid.Field(field, "is not UTF-8 text")
	case utf8.RuneCountInString(v) > max:
		return invalid.Field(field, "is longer than %d characters", max)
	case strings.ContainsRune(v, 0):
		return invalid.Field(field, "holds a NUL character")
	}
	return nil
}

// Values of a node's sync status (the console's syncNodeConfigStatus).
const (
	// SyncInSync: every file on the node is what its draft renders to.
	SyncInSync = 0
	// SyncDiffers: the draft differs from what is applied on the node: a
	// flush (and restart) is required.
	SyncDiffers = 1
	// SyncUnknown: an apply was cut short; the node has the old or the
	// new file of at least one: flush again.
	SyncUnknown = 2
	// SyncNeverApplied: the node was never deployed, nothing is applied.
	SyncNeverApplied = 3
)

// Applied returns what the manager knows is on the nodes' files, by node
// file id: the release each holds (zero when its content came without
// one) and when it was applied, or Unknown after an apply cut short. A
// node file never applied is not in the map.
func (s *Service) Applied(ctx context.Context, nodeIDs []ids.ID) (map[ids.ID]Applied, error) {
	return s.store.AppliedFiles(ctx, nodeIDs)
}

// SyncStatus says, for each node, whether its draft is what is applied
// on it (SyncInSync and the other Sync values). A node whose files cannot
// be rendered differs.
func (s *Service) SyncStatus(ctx context.Context, nodeIDs []ids.ID) (map[ids.ID]int, error) {
	applied, err := s.store.AppliedFiles(ctx, nodeIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[ids.ID]int, len(nodeIDs))
	for _, id := range nodeIDs {
		nc, err := s.Render(ctx, id)
		if err != nil {
			if errors.Is(err, ErrRender) {
				out[id] = SyncDiffers
				continue
			}
			return nil, err
		}
		status := SyncInSync
		for _, f := range nc.Files {
			a, ok := applied[f.NodeFileID]
			switch {
			case ok && a.Unknown:
				status = SyncUnknown
			case !ok && status != SyncUnknown:
				status = SyncNeverApplied
			case ok && a.SHA256 != f.SHA256() && status == SyncInSync:
				status = SyncDiffers
			}
		}
		out[id] = status
	}
	return out, nil
}
