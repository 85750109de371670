package cluster

import (
	"errors"
	"fmt"

	"github.com/admq/admq-manager/internal/invalid"
)

// Errors callers branch on; transports map them to their own codes. Unknown
// servers are fleet.ErrServerNotFound, nested or colliding directories
// fleet.ErrDirsNested and unknown packages pkg.ErrPackageNotFound, each
// wrapped with the details.
var (
	ErrClusterExists         = errors.New("cluster name already exists")
	ErrClusterNotFound       = errors.New("cluster does not exist")
	ErrNodeNotFound          = errors.New("cluster node does not exist")
	ErrComponentNotInPackage = errors.New("the package does not provide the component")
	ErrServerRepeated        = errors.New("a server is given twice for one component")
	ErrPackageDisabled       = errors.New("the package is disabled")
	// ErrDirRefused: a node's dir is a system dir, a home dir, or
	// overlaps the manager's data dir or the agent's state dir (see
	// internal/nodedir).
	ErrDirRefused   = errors.New("directory may not hold a node")
	ErrTooManyNodes = errors.New("too many nodes")
	// ErrNoNodes: Create was given no node at all.
	ErrNoNodes error = &invalid.Error{Field: "nodes", Reason: "a cluster needs at least one node: coordinators, storage or brokers"}
	// ErrNoPackage is the Kind of a NodeError for a component that
	// neither NewCluster.Packages nor NewCluster.PackageID gives a
	// package.
	ErrNoPackage error = &invalid.Error{Field: "package", Reason: "no package is given for the nodes"}
	// ErrNotWithCluster is the Kind of a NodeError for a component that
	// NewCluster.Packages names but Create does not place: only
	// coordinators, storage and brokers are created with the cluster;
	// others are added with AddNodes.
	ErrNotWithCluster error = &invalid.Error{Field: "packages",
		Reason: "only coordinator, storage and broker nodes are created with the cluster; add the others with AddNodes"}
)

// Fields of a NodeSpec that a NodeError names.
const (
	FieldManagerIP  = "ManagerIP"
	FieldProgramDir = "ProgramDir"
	FieldDataDir    = "DataDir"
	FieldServerPort = "ServerPort"
)

// NodeError is a node of a Create or AddNodes request that cannot be
// placed: the Index-th (from 0) of the specs given for Component, or all
// of them when Index is -1. Field is the NodeSpec field at fault
// (FieldManagerIP, ...), or "" for the node as a whole. Kind is the error
// it is (ErrServerRepeated, fleet.ErrServerNotFound, ErrNoPackage, ...),
// or nil when the input is simply invalid; Reason says what is wrong.
// Transports name the node and the field in their own terms.
type NodeError struct {
	Component string
	Index     int
	Field     string
	Kind      error
	Reason    string
}

// Where names the node and the field: "coordinator nodes",
// "coordinator node 0", "coordinator node 0 DataDir".
func (e *NodeError) Where() string {
	w := e.Component + " nodes"
	if e.Index >= 0 {
		w = fmt.Sprintf("%s node %d", e.Component, e.Index)
	}
	if e.Field != "" {
		w += " " + e.Field
	}
	return w
}

func (e *NodeError) Error() string {
	var s string
	if e.Kind != nil {
		s = e.Kind.Error() + ": "
	}
	s += e.Where()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap returns Kind, or for invalid input an *invalid.Error whose field
// is Where.
func (e *NodeError) Unwrap() error {
	if e.Kind != nil {
		return e.Kind
	}
	return &invalid.Error{Field: e.Where(), Reason: e.Reason}
}

// nodeError returns a *NodeError for the i-th spec of g (-1: all of them).
func (g group) nodeError(i int, field string, kind error, format string, args ...any) error {
	return &NodeError{Component: g.component, Index: i, Field: field, Kind: kind, Reason: fmt.Sprintf(format, args...)}
}
