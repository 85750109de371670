// Package cluster owns ADMQ clusters: their nodes (one component of a
// package placed on one server, with its directories, port and ordinal),
// each node's config files, imported from the package when the node is
// created, and their config items, which operators edit and a later flush
// renders (Render) and ships to the node.
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
	"errors"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/paging"
)

// Errors callers branch on; transports map them to their own codes. Unknown
// servers are fleet.ErrServerNotFound, nested or colliding directories
// fleet.ErrDirsNested and unknown packages pkg.ErrPackageNotFound, each
// wrapped with the details.
var (
	ErrClusterExists         = errors.New("cluster name already exists")
	ErrClusterNotFound       = errors.New("cluster does not exist")
	ErrNodeNotFound          = errors.New("cluster node does not exist")
	ErrConfigFileNotFound    = errors.New("config file does not exist")
	ErrConfigItemNotFound    = errors.New("config item does not exist")
	ErrConfigItemExists      = errors.New("config item already exists in the file")
	ErrComponentNotInPackage = errors.New("the package does not provide the component")
	ErrServerRepeated        = errors.New("a server is given twice for one component")
	ErrPackageDisabled       = errors.New("the package is disabled")
	// ErrDirRefused: a node's dir is a system dir, a home dir, or
	// overlaps the manager's data dir or the agent's state dir (see
	// internal/nodedir).
	ErrDirRefused   = errors.New("directory may not hold a node")
	ErrTooManyNodes = errors.New("too many nodes")
	// ErrRender: a config file cannot be rendered for a node (an unknown
	// variable, a bad template).
	ErrRender = errors.New("config file cannot be rendered")
)

// Well-known components and their console types.
const (
	Coordinator = "coordinator" // ZooKeeper
	Storage     = "storage"     // BookKeeper
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
	Ordinal              int
	DeployState          string
	RunState             string
	SyncNodeConfigStatus int
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

// ConfigFile is one config file of a node.
type ConfigFile struct {
	ID     ids.ID
	NodeID ids.ID
	// Name is the manifest's name for the file (the Apollo namespace).
	Name string
	// Path is the file's path in the package, relative.
	Path string
	// Format is manifest.FormatProperties or manifest.FormatRaw.
	Format    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RawKey is the key of the one item that holds a raw-format file's content.
const RawKey = "content"

// ConfigItem is one key=value of a config file.
type ConfigItem struct {
	ID     ids.ID
	FileID ids.ID
	Key    string
	Value  string
	// Comment is the comment lines above the key in the package's file, or
	// the operator's description (the seed's describes).
	Comment   string
	Effective bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewNode is a node with its config files and their items, as written by
// the store in one transaction.
type NewNode struct {
	Node  Node
	Files []NewFile
}

// NewFile is a config file with its items.
type NewFile struct {
	File  ConfigFile
	Items []ConfigItem
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
	CreateCluster(ctx context.Context, c *Cluster, nodes []NewNode) error
	// AddNodes inserts nodes, their files and items into the cluster in one
	// transaction; ErrClusterNotFound, fleet.ErrServerNotFound and
	// pkg.ErrPackageNotFound as for CreateCluster.
	AddNodes(ctx context.Context, clusterID ids.ID, nodes []NewNode, now time.Time) error
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
	Node(ctx context.Context, id ids.ID) (Node, error)
	ConfigFiles(ctx context.Context, nodeID ids.ID) ([]ConfigFile, error)
	ConfigFile(ctx context.Context, id ids.ID) (ConfigFile, error)
	// ConfigItems returns one page of the file's items, newest first, and
	// the total.
	ConfigItems(ctx context.Context, fileID ids.ID, p paging.Page) ([]ConfigItem, int, error)
	// AllConfigItems returns every item of the file, in import order.
	AllConfigItems(ctx context.Context, fileID ids.ID) ([]ConfigItem, error)
	// CreateConfigItem inserts it: ErrConfigFileNotFound, or
	// ErrConfigItemExists when the file has the key.
	CreateConfigItem(ctx context.Context, it *ConfigItem) error
	// SetConfigItemsEffective sets effective on all the items or, if one
	// does not exist (ErrConfigItemNotFound), on none.
	SetConfigItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, now time.Time) error
	// DeleteCluster removes the cluster with its nodes, files, items and
	// ordinals in one transaction, or returns ErrClusterNotFound.
	DeleteCluster(ctx context.Context, id ids.ID) error
}
