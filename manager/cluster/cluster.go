// Package cluster owns ADMQ clusters and their nodes: one component of a
// package placed on one server, with its directories, port and ordinal.
// A node gets its config files (manager/config) when it is created: the
// cluster's layer of each file, imported from the package with the
// cluster's first node of the component, and the node's own copy.
//
// Placement rules. A node's programDir and dataDir may use the
// placeholders {cluster} (the cluster's name) and {nodeDir}
// ("<component>-<ordinal>", e.g. "coordinator-1", "broker-2"); they are
// expanded when the node is created and stored expanded. Ordinals count
// from 1 per component within a cluster, in the order nodes are given; a
// server keeps the ordinal it once had for a component in a cluster (so a
// ZooKeeper host keeps its myid) and an ordinal is never given to another
// server in that cluster. Coordinators' ordinals are their ZooKeeper myid
// and so stop at 255.
package cluster

import (
	"context"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

// Well-known components and their console types.
const (
	Coordinator = config.Coordinator // ZooKeeper
	Storage     = "storage"          // BookKeeper
	Broker      = "broker"
)

// Component types as the console shows them (componentType).
const (
	TypeOther       = 0
	TypeCoordinator = 1
	TypeStorage     = 2
	TypeBroker      = 3
)

// TypeOf returns the console type of a component name.
func TypeOf(component string) int {
	switch component {
	case Coordinator:
		return TypeCoordinator
	case Storage:
		return TypeStorage
	case Broker:
		return TypeBroker
	}
	return TypeOther
}

// MaxCoordinatorOrdinal is the largest ZooKeeper myid a coordinator gets.
const MaxCoordinatorOrdinal = 255

// Deploy states of a node.
const (
	DeployUndeployed = "undeployed"
	DeployDeploying  = "deploying"
	DeployDeployed   = "deployed"
	DeployFailed     = "failed"
)

// Run states of a node.
const (
	RunUnknown = "unknown"
	RunRunning = "running"
	RunStopped = "stopped"
	RunFailed  = "failed"
)

// Cluster is an ADMQ cluster.
type Cluster struct {
	ID          ids.ID
	Name        string
	Description string
	// NodeCount and Components (sorted, distinct) are filled by reads.
	NodeCount  int
	Components []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Node is one component of a package placed on one server.
type Node struct {
	ID            ids.ID
	ClusterID     ids.ID
	ServerID      ids.ID
	Component     string
	ComponentType int
	PackageID     ids.ID
	// ManagerIP and DataIP are the server's, copied when the node is made.
	ManagerIP string
	DataIP    string
	// ProgramDir and DataDir are absolute and clean, placeholders expanded.
	ProgramDir string
	DataDir    string
	// NodeDir is what {nodeDir} expanded to: "<component>-<ordinal>".
	NodeDir    string
	ServerPort int
	// Ordinal counts from 1 per component in the cluster; a coordinator's
	// is its ZooKeeper myid.
	Ordinal     int
	DeployState string
	RunState    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewNode is a node with the config files its package gives it, as the
// store writes them in one transaction.
type NewNode struct {
	Node   Node
	Config []config.Imported
	// By is the console user whose request imported the config: the
	// author of the layer items the import creates.
	By string
}

// ServerRef is what the cluster needs of a registered server.
type ServerRef struct {
	ID        ids.ID
	ManagerIP string
	DataIP    string
	// AgentStateDir is the state dir its agent reported ("": not yet);
	// no node dir may overlap it.
	AgentStateDir string
}

// Store is what cluster needs from persistence.
type Store interface {
	// ServerByManagerIP returns the server whose manager IP is ip, or
	// fleet.ErrServerNotFound.
	ServerByManagerIP(ctx context.Context, ip string) (ServerRef, error)
	// CreateCluster inserts c with its nodes, files and items in one
	// transaction, and records each node's ordinal. A taken name is
	// ErrClusterExists; a server or package that no longer exists is
	// fleet.ErrServerNotFound or pkg.ErrPackageNotFound.
	// newID gives the ids of the config records the store derives (layers
	// and node items).
	CreateCluster(ctx context.Context, c *Cluster, nodes []NewNode, newID func() ids.ID) error
	// AddNodes inserts nodes, their files and items into the cluster in one
	// transaction; ErrClusterNotFound, fleet.ErrServerNotFound and
	// pkg.ErrPackageNotFound as for CreateCluster. A node gets the layers
	// its component has in the cluster already.
	AddNodes(ctx context.Context, clusterID ids.ID, nodes []NewNode, now time.Time, newID func() ids.ID) error
	// Ordinals returns the ordinals ever given to servers for component
	// in the cluster (including nodes since removed), by server.
	Ordinals(ctx context.Context, clusterID ids.ID, component string) (map[ids.ID]int, error)
	Cluster(ctx context.Context, id ids.ID) (Cluster, error)
	// ClusterByName returns the cluster named name, or ErrClusterNotFound.
	ClusterByName(ctx context.Context, name string) (Cluster, error)
	Clusters(ctx context.Context, p paging.Page) ([]Cluster, int, error)
	// ClusterCounts returns how many clusters, nodes and config items exist.
	ClusterCounts(ctx context.Context) (clusters, nodes, items int, err error)
	// Nodes returns one page of the cluster's nodes, by component type then
	// ordinal, and the total.
	Nodes(ctx context.Context, clusterID ids.ID, p paging.Page) ([]Node, int, error)
	// AllNodes returns every node of the cluster, as Nodes orders them.
	AllNodes(ctx context.Context, clusterID ids.ID) ([]Node, error)
	// NodesOnServers returns every node, of any cluster, on those servers.
	NodesOnServers(ctx context.Context, serverIDs []ids.ID) ([]Node, error)
	// ClusterNamesOnServers returns, by server, the names of the clusters
	// with nodes on it, sorted.
	ClusterNamesOnServers(ctx context.Context, serverIDs []ids.ID) (map[ids.ID][]string, error)
	Node(ctx context.Context, id ids.ID) (Node, error)
	// DeleteCluster removes the cluster with its nodes, files, items and
	// ordinals in one transaction, or returns ErrClusterNotFound.
	DeleteCluster(ctx context.Context, id ids.ID) error
}
