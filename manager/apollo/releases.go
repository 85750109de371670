package apollo

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/admq/admq-manager/internal/ids"
)

// Apollo's limits on a release's words.
const (
	MaxReleaseTitleLen   = 64
	MaxReleaseCommentLen = 256
	// maxHistoryPage caps a page of release history.
	maxHistoryPage = 500
)

// release is a release (a flush) of a namespace as the Open API shows it.
type release struct {
	ID        ids.ID
	ClusterID ids.ID
	Layer     ids.ID
	Component string
	File      string
	// Node is set for a release of one node's cluster (a flush of that
	// node); zero for one of the default cluster (a rolling flush of the
	// nodes whose file changed, or a rollback).
	Node     ids.ID
	NodeName string
	Number   int
	Rollback bool
	// RollbackOf is the release a rollback went back to.
	RollbackOf ids.ID
	Title      string
	Comment    string
	By         string
	CreatedAt  time.Time
	FinishedAt time.Time
	// State is pending, applying, applied or failed; Reason says why it
	// failed.
	State, Reason string
	// Config is the namespace's configuration as the release's cluster
	// sees it: the layer's effective items, or the node's.
	Config map[string]string
	// Nodes says how the release went on each node it went to.
	Nodes []releaseNode
}

// running is the release a node runs, and since when.
type running struct {
	Release ids.ID
	At      time.Time
}

// releaseNode is one node of a release.
type releaseNode struct {
	NodeID  ids.ID
	Name    string
	State   string
	Detail  string
	Applied time.Time
}

// Releases is the configuration model's releases as the Open API uses
// them.
type Releases interface {
	// Publish releases the target's namespace: for the default cluster a
	// gated rolling flush to every node of its component whose file
	// changes (a release with no change is recorded, restarting nothing),
	// for a node's cluster a flush of that node. It returns once the
	// release is recorded and its rollout started. A rollout holding one
	// of the nodes is errBusy.
	Publish(ctx context.Context, t Target, title, comment, by string) (release, error)
	// Latest returns the target's newest release that did not fail.
	Latest(ctx context.Context, t Target) (release, bool, error)
	// History returns up to limit of the target's releases, newest first,
	// after skipping offset, and the total.
	History(ctx context.Context, t Target, offset, limit int) ([]release, int, error)
	// Get returns a release by id, errReleaseNotFound.
	Get(ctx context.Context, id ids.ID) (release, error)
	// Running returns the release of the layer's file each of the nodes
	// is known to run, by node id; a node not known to run one is left
	// out.
	Running(ctx context.Context, layer ids.ID, nodeIDs []ids.ID) (map[ids.ID]running, error)
	// Rollback goes back from release from to the release before it (of
	// the same cluster), or to release to: a new release with that
	// content through the same gated rollout. errOtherNamespace when to
	// is not of from's namespace and cluster.
	Rollback(ctx context.Context, from release, to ids.ID, by string) (release, error)
}

// Errors of the releases model.
var (
	errReleaseNotFound = errors.New("release not found")
	errOtherNamespace  = errors.New("the release is of another namespace")
	errNoEarlier       = errors.New("there is no earlier release to roll back to")
	errBusy            = errors.New("a rollout of this namespace is under way")
)

// releaseCluster is the Apollo cluster a release belongs to.
func (r release) cluster() string {
	if r.Node.IsZero() {
		return DefaultCluster
	}
	return r.NodeName
}

func releaseDTO(app string, nsName string, r release) ReleaseDTO {
	cfg := r.Config
	if cfg == nil {
		cfg = map[string]string{}
	}
	return ReleaseDTO{
		ID: int64(r.ID), AppID: app, ClusterName: r.cluster(), NamespaceName: nsName, Name: r.Title,
		Configurations: cfg, Comment: r.Comment, baseDTO: base(r.By, r.By, r.CreatedAt, r.CreatedAt),
	}
}

func (s *Server) publish(x *call) error {
	var r releaseRequest
	if ok, err := x.decode(&r); err != nil {
		return err
	} else if !ok {
		return badRequest("release payload can not be empty")
	}
	switch {
	case strings.TrimSpace(r.ReleaseTitle) == "":
		return badRequest("Params(releaseTitle) can not be empty")
	case utf8.RuneCountInString(r.ReleaseTitle) > MaxReleaseTitleLen:
		return badRequest("releaseTitle too long: at most %d characters", MaxReleaseTitleLen)
	case utf8.RuneCountInString(r.ReleaseComment) > MaxReleaseCommentLen:
		return badRequest("releaseComment too long: at most %d characters", MaxReleaseCommentLen)
	}
	if err := x.resolveOperator(r.ReleasedBy); err != nil {
		return err
	}
	if err := x.checkReleaseLock(r.IsEmergencyPublish); err != nil {
		return err
	}
	x.detail("publish %s of %s: %s", x.ns.name, x.clusterName(), truncate(r.ReleaseTitle, 64))
	rel, err := s.d.Releases.Publish(x.Request().Context(), x.target(), r.ReleaseTitle, r.ReleaseComment, x.operator)
	if err != nil {
		return releaseError(err)
	}
	if err := x.releaseLock(); err != nil {
		return err
	}
	x.detail("publish %s of %s: release %d", x.ns.name, x.clusterName(), rel.ID)
	return writeJSON(x, http.StatusOK, releaseDTO(x.app.cluster.Name, x.ns.name, rel))
}

// releaseError maps the releases model's errors onto Apollo's statuses.
func releaseError(err error) error {
	switch {
	case errors.Is(err, errReleaseNotFound):
		return notFound("%v", err)
	case errors.Is(err, errOtherNamespace), errors.Is(err, errNoEarlier), errors.Is(err, errBusy):
		return badRequest("%v", err)
	}
	return err
}

func (s *Server) latestRelease(x *call) error {
	rel, ok, err := s.d.Releases.Latest(x.Request().Context(), x.target())
	if err != nil {
		return err
	}
	if !ok {
		return writeEmpty(x) // never released: Apollo answers 200 with nothing
	}
	return writeJSON(x, http.StatusOK, releaseDTO(x.app.cluster.Name, x.ns.name, rel))
}

// releaseByID reads the {releaseId} of the path as Apollo does: a number.
func (x *call) releaseByID(name string) (release, error) {
	v := x.Param(name)
	if v == "" {
		v = x.QueryParam(name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return release{}, badRequest("%s must be a release id (a positive number), got %q", name, truncate(v, 32))
	}
	return x.release(ids.ID(n))
}

// release loads a release and checks that a grant lets the token read it
// (or release it, when need is accessRelease); the caller's app is set.
func (x *call) release(id ids.ID) (release, error) {
	rel, err := x.s.d.Releases.Get(x.Request().Context(), id)
	if err != nil {
		return release{}, releaseError(err)
	}
	a, err := x.s.d.Catalog.appByID(x.Request().Context(), rel.ClusterID)
	if err != nil || !x.hasApp(a.cluster.Name) {
		// A release of an app the token has no grant on reads as absent.
		return release{}, notFound("release not found: %d", id)
	}
	x.app = a
	return rel, nil
}

// namespaceOf is the namespace a release is of, in x.app.
func (x *call) namespaceOf(rel release) *namespace {
	for _, ns := range x.app.namespaces {
		if ns.layer.ID == rel.Layer {
			return ns
		}
	}
	return &namespace{component: rel.Component, file: rel.File, name: rel.Component + "." + rel.File}
}

// allowed checks the token's grant on a release's namespace and cluster.
func (x *call) allowed(rel release, need access) error {
	ns := x.namespaceOf(rel)
	if !x.covers(need, x.app.cluster.Name, rel.cluster(), ns) {
		return forbidden("Access is denied: the token has no %s grant on namespace %s of cluster %s of app %s", need, ns.name, rel.cluster(), x.app.cluster.Name)
	}
	return nil
}

func (s *Server) getRelease(x *call) error {
	rel, err := x.releaseByID("releaseId")
	if err != nil {
		return err
	}
	if err := x.allowed(rel, accessRead); err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, releaseDTO(x.app.cluster.Name, x.namespaceOf(rel).name, rel))
}

func (s *Server) compareReleases(x *call) error {
	var sides [2]map[string]string
	for i, name := range []string{"baseReleaseId", "toCompareReleaseId"} {
		if x.QueryParam(name) == "0" { // Apollo: 0 stands for no release
			sides[i] = map[string]string{}
			continue
		}
		rel, err := x.releaseByID(name)
		if err != nil {
			return err
		}
		if err := x.allowed(rel, accessRead); err != nil {
			return err
		}
		sides[i] = rel.Config
	}
	return writeJSON(x, http.StatusOK, ReleaseDiffDTO{Changes: diffConfigs(sides[0], sides[1])})
}

// diffConfigs lists what changes from base to other, by key.
func diffConfigs(base, other map[string]string) []ReleaseChangeDTO {
	out := []ReleaseChangeDTO{}
	for k, v := range other {
		old, ok := base[k]
		switch {
		case !ok:
			out = append(out, ReleaseChangeDTO{ChangeType: "ADDED", Key: k, NewValue: v})
		case old != v:
			out = append(out, ReleaseChangeDTO{ChangeType: "MODIFIED", Key: k, OldValue: old, NewValue: v})
		}
	}
	for k, v := range base {
		if _, ok := other[k]; !ok {
			out = append(out, ReleaseChangeDTO{ChangeType: "DELETED", Key: k, OldValue: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (s *Server) rollback(x *call) error {
	rel, err := x.releaseByID("releaseId")
	if err != nil {
		return err
	}
	var to ids.ID
	if v := x.QueryParam("toReleaseId"); v != "" && v != "-1" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return badRequest("toReleaseId must be a release id (a positive number), got %q", truncate(v, 32))
		}
		to = ids.ID(n)
	}
	if err := x.resolveOperator(""); err != nil {
		return err
	}
	if err := x.allowed(rel, accessRelease); err != nil {
		return err
	}
	x.detail("rollback release %d to %d", rel.ID, to)
	back, err := s.d.Releases.Rollback(x.Request().Context(), rel, to, x.operator)
	if err != nil {
		return releaseError(err)
	}
	x.detail("rollback release %d: release %d", rel.ID, back.ID)
	return writeEmpty(x)
}

// ReleaseHistoryDTO is Apollo's ReleaseHistoryBO: one release in a
// namespace's history. operationContext adds how it went: state, reason,
// number and, per node, its state.
type ReleaseHistoryDTO struct {
	ID                 int64          `json:"id"`
	AppID              string         `json:"appId"`
	ClusterName        string         `json:"clusterName"`
	NamespaceName      string         `json:"namespaceName"`
	BranchName         string         `json:"branchName"`
	Operator           string         `json:"operator,omitempty"`
	ReleaseID          int64          `json:"releaseId"`
	ReleaseTitle       string         `json:"releaseTitle,omitempty"`
	ReleaseComment     string         `json:"releaseComment,omitempty"`
	ReleaseTime        gsonTime       `json:"releaseTime,omitzero"`
	Configuration      []EntityPair   `json:"configuration"`
	IsReleaseAbandoned bool           `json:"isReleaseAbandoned"`
	PreviousReleaseID  int64          `json:"previousReleaseId"`
	Operation          int            `json:"operation"`
	OperationContext   map[string]any `json:"operationContext"`
}

// EntityPair is Apollo's EntityPair: a key and a value.
type EntityPair struct {
	FirstEntity  string `json:"firstEntity"`
	SecondEntity string `json:"secondEntity"`
}

// Apollo's release operations.
const (
	opNormalRelease = 0
	opRollback      = 1
)

func historyDTO(app, nsName string, r release, previous ids.ID) ReleaseHistoryDTO {
	h := ReleaseHistoryDTO{
		ID: int64(r.ID), AppID: app, ClusterName: r.cluster(), NamespaceName: nsName, BranchName: r.cluster(),
		Operator: r.By, ReleaseID: int64(r.ID), ReleaseTitle: r.Title, ReleaseComment: r.Comment,
		ReleaseTime: gsonTime(r.CreatedAt), Configuration: []EntityPair{}, IsReleaseAbandoned: r.State == "failed",
		PreviousReleaseID: int64(previous), Operation: opNormalRelease,
	}
	if r.Rollback {
		h.Operation = opRollback
	}
	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Configuration = append(h.Configuration, EntityPair{FirstEntity: k, SecondEntity: r.Config[k]})
	}
	nodes := make([]map[string]any, 0, len(r.Nodes))
	for _, n := range r.Nodes {
		nodes = append(nodes, map[string]any{"node": n.Name, "state": n.State, "detail": n.Detail})
	}
	h.OperationContext = map[string]any{"state": r.State, "number": r.Number, "nodes": nodes}
	if r.Reason != "" {
		h.OperationContext["reason"] = r.Reason
	}
	if !r.RollbackOf.IsZero() {
		h.OperationContext["rollbackTo"] = int64(r.RollbackOf)
	}
	return h
}

func (s *Server) releaseHistory(x *call) error {
	page, err := x.intQuery("page", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	size, err := x.intQuery("size", 10, 1, maxHistoryPage)
	if err != nil {
		return err
	}
	// One more than the page: the previous release of the page's last.
	list, _, err := s.d.Releases.History(x.Request().Context(), x.target(), page*size, size+1)
	if err != nil {
		return err
	}
	out := []ReleaseHistoryDTO{}
	for i, r := range list {
		if i == size {
			break
		}
		var prev ids.ID
		if i+1 < len(list) {
			prev = list[i+1].ID
		}
		out = append(out, historyDTO(x.app.cluster.Name, x.ns.name, r, prev))
	}
	return writeJSON(x, http.StatusOK, out)
}
