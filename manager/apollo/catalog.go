package apollo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

// DefaultCluster is the Apollo cluster that stands for the cluster-wide
// layer of an ADMQ cluster's config files.
const DefaultCluster = "default"

// Clusters is what the catalog reads of ADMQ clusters; the store
// implements it.
type Clusters interface {
	Cluster(ctx context.Context, id ids.ID) (cluster.Cluster, error)
	ClusterByName(ctx context.Context, name string) (cluster.Cluster, error)
	Clusters(ctx context.Context, p paging.Page) ([]cluster.Cluster, int, error)
	AllNodes(ctx context.Context, clusterID ids.ID) ([]cluster.Node, error)
}

// Files lists a cluster's config files (their cluster layers);
// config.Service implements it.
type Files interface {
	Files(ctx context.Context, clusterID ids.ID) ([]config.File, error)
}

// Catalog maps Apollo's apps, clusters and namespaces onto ADMQ clusters,
// their layers and their config files.
//
// Namespaces. A config file belongs to a component (coordinator, broker,
// …) and has a file name (zoo.cfg). Its namespace name is the file name
// when no other component of the cluster has a file of that name, and is
// always reachable as "<component>.<file name>" (component names hold no
// dot), e.g. coordinator.zoo.cfg. When two components share a file name
// (storage and broker both with log4j.properties) the namespaces are listed
// as storage.log4j.properties and broker.log4j.properties, and the bare
// name is refused with a 400 that names both. Grants keep the qualified
// name, so adding a component later never widens or narrows one.
type Catalog struct {
	clusters Clusters
	files    Files
}

// NewCatalog returns a catalog over clusters and their config files.
func NewCatalog(clusters Clusters, files Files) *Catalog {
	return &Catalog{clusters: clusters, files: files}
}

// app is an ADMQ cluster with its nodes and namespaces.
type app struct {
	cluster    cluster.Cluster
	nodes      []cluster.Node // by component type, then ordinal
	namespaces []*namespace   // by display name
}

// namespace is one config file of a component: its cluster layer, which
// the component's nodes each have a copy of.
type namespace struct {
	layer     config.File
	component string
	file      string
	// format is Apollo's: "properties" for key=value files, "txt" for raw
	// ones (one item, "content").
	format string
	// name is how it is listed: the file name, or component.file when
	// another component has a file of that name.
	name string
}

// qualified is the name that always reaches the namespace.
func (n *namespace) qualified() string { return n.component + "." + n.file }

// isProperties reports whether the namespace holds key=value items.
func (n *namespace) isProperties() bool { return n.format == "properties" }

// apolloFormat maps a manifest format onto Apollo's.
func apolloFormat(f string) string {
	if f == manifest.FormatRaw {
		return "txt"
	}
	return "properties"
}

// loadApp reads an ADMQ cluster by name: cluster.ErrClusterNotFound when
// there is none.
func (c *Catalog) loadApp(ctx context.Context, name string) (*app, error) {
	cl, err := c.clusters.ClusterByName(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	return c.load(ctx, cl)
}

// appByID reads an ADMQ cluster by id.
func (c *Catalog) appByID(ctx context.Context, id ids.ID) (*app, error) {
	cl, err := c.clusters.Cluster(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", id, err)
	}
	return c.load(ctx, cl)
}

// load reads the nodes and files of cluster cl.
func (c *Catalog) load(ctx context.Context, cl cluster.Cluster) (*app, error) {
	name := cl.Name
	nodes, err := c.clusters.AllNodes(ctx, cl.ID)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	files, err := c.files.Files(ctx, cl.ID)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	a := &app{cluster: cl, nodes: nodes}
	fileOwners := map[string]int{} // file name → components that have it
	for _, f := range files {
		a.namespaces = append(a.namespaces, &namespace{layer: f, component: f.Component, file: f.Name, format: apolloFormat(f.Format)})
		fileOwners[f.Name]++
	}
	for _, ns := range a.namespaces {
		ns.name = ns.file
		if fileOwners[ns.file] > 1 {
			ns.name = ns.qualified()
		}
	}
	sort.Slice(a.namespaces, func(i, j int) bool { return a.namespaces[i].name < a.namespaces[j].name })
	return a, nil
}

// apps lists every ADMQ cluster's name, oldest first.
func (c *Catalog) apps(ctx context.Context) ([]cluster.Cluster, error) {
	var all []cluster.Cluster
	for p := (paging.Page{Num: 1, Size: paging.MaxSize}); ; p.Num++ {
		list, total, err := c.clusters.Clusters(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("list apps: %w", err)
		}
		all = append(all, list...)
		if len(list) == 0 || len(all) >= total {
			break
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all, nil
}

// clusterNames are the Apollo clusters of a: default, then every node.
func (a *app) clusterNames() []string {
	names := []string{DefaultCluster}
	for _, n := range a.nodes {
		names = append(names, n.NodeDir)
	}
	return names
}

// node returns the node named name (its {nodeDir}), or nil.
func (a *app) node(name string) *cluster.Node {
	for i := range a.nodes {
		if a.nodes[i].NodeDir == name {
			return &a.nodes[i]
		}
	}
	return nil
}

// errClusterNotFound: the app has no such cluster (neither default nor a
// node).
var errClusterNotFound = errors.New("cluster not found")

// cluster checks that name is one of a's clusters: nil for default, the
// node otherwise.
func (a *app) resolveCluster(name string) (*cluster.Node, error) {
	if name == DefaultCluster {
		return nil, nil
	}
	if n := a.node(name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("%w: app %s has no cluster %s (its clusters are default and its nodes: %s)",
		errClusterNotFound, a.cluster.Name, name, strings.Join(a.clusterNames()[1:], ", "))
}

// errNamespaceNotFound: the app (or the node) has no such namespace.
var errNamespaceNotFound = errors.New("namespace not found")

// errNamespaceAmbiguous: a bare file name two components share.
var errNamespaceAmbiguous = errors.New("namespace name is ambiguous")

// resolveNamespace finds the namespace called name in a, as seen from node
// (nil: the default cluster, where every namespace is).
func (a *app) resolveNamespace(node *cluster.Node, name string) (*namespace, error) {
	var byFile []*namespace
	for _, ns := range a.namespaces {
		if ns.file == name {
			byFile = append(byFile, ns)
		}
	}
	var found *namespace
	switch {
	case len(byFile) == 1:
		found = byFile[0]
	case len(byFile) > 1:
		if node != nil { // a node has one component: no doubt which file
			for _, ns := range byFile {
				if ns.component == node.Component {
					return ns, nil
				}
			}
		}
		var names []string
		for _, ns := range byFile {
			names = append(names, ns.qualified())
		}
		return nil, fmt.Errorf("%w: %s is a file of several components of app %s; name one of %s",
			errNamespaceAmbiguous, name, a.cluster.Name, strings.Join(names, ", "))
	default:
		if comp, file, ok := strings.Cut(name, "."); ok {
			for _, ns := range a.namespaces {
				if ns.component == comp && ns.file == file {
					found = ns
				}
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: app %s has no namespace %s", errNamespaceNotFound, a.cluster.Name, name)
	}
	if node != nil && found.component != node.Component {
		return nil, fmt.Errorf("%w: cluster %s of app %s (a %s) has no namespace %s", errNamespaceNotFound,
			node.NodeDir, a.cluster.Name, node.Component, name)
	}
	return found, nil
}

// namespacesOf lists the namespaces of a as seen from node (nil: default).
func (a *app) namespacesOf(node *cluster.Node) []*namespace {
	if node == nil {
		return a.namespaces
	}
	var out []*namespace
	for _, ns := range a.namespaces {
		if ns.component == node.Component {
			out = append(out, ns)
		}
	}
	return out
}

// CanonicalScope checks a grant's scope against what exists and returns it
// with the namespace in its qualified form (component.file). Empty cluster
// or namespace names stand for all of them and stay empty. An unknown app
// is cluster.ErrClusterNotFound; an unknown cluster or namespace is bad
// input naming the field.
func (c *Catalog) CanonicalScope(ctx context.Context, appID, clusterName, namespaceName string) (string, string, error) {
	a, err := c.loadApp(ctx, appID)
	if err != nil {
		return "", "", err
	}
	var node *cluster.Node
	if clusterName != "" {
		if node, err = a.resolveCluster(clusterName); err != nil {
			return "", "", invalid.Field("clusterName", "%v", err)
		}
	}
	if namespaceName == "" {
		return clusterName, "", nil
	}
	ns, err := a.resolveNamespace(node, namespaceName)
	if err != nil {
		return "", "", invalid.Field("namespaceName", "%v", err)
	}
	return clusterName, ns.qualified(), nil
}

// Target is a namespace as one Apollo cluster sees it: what the
// configuration model needs to find its items.
type Target struct {
	ClusterID ids.ID // the ADMQ cluster (the app)
	App       string
	// Node is the node of a node's cluster; zero: the default cluster,
	// the cluster-wide layer.
	Node     ids.ID
	NodeName string
	// Layer is the config file's cluster layer.
	Layer     ids.ID
	Component string
	File      string
}

// target is the namespace the call's path names.
func (x *call) target() Target {
	return x.targetOf(x.ns)
}

// targetOf is namespace ns as the call's cluster sees it.
func (x *call) targetOf(ns *namespace) Target {
	t := Target{ClusterID: x.app.cluster.ID, App: x.app.cluster.Name, Layer: ns.layer.ID, Component: ns.component, File: ns.file}
	if x.node != nil {
		t.Node, t.NodeName = x.node.ID, x.node.NodeDir
	}
	return t
}
