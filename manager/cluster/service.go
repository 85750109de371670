package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/nodedir"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
)

// Packages is what the service needs of the package store; *pkg.Service
// implements it.
type Packages interface {
	Package(ctx context.Context, id ids.ID) (pkg.Package, error)
	// Path is where the package's file is stored.
	Path(p pkg.Package) string
}

// Teardown stops a cluster's nodes and cleans their hosts before the
// cluster's records are deleted; the deploy engine implements it. It
// returns the nodes it could not clean (their records go anyway); an error
// stops the delete.
type Teardown interface {
	Teardown(ctx context.Context, c Cluster, nodes []Node) ([]Uncleaned, error)
}

// Uncleaned is a node a delete could not stop or clean, and why.
type Uncleaned struct {
	NodeID    ids.ID
	ManagerIP string
	Reason    string
	// Queued: the removal is queued and sent when the node's agent
	// reconnects.
	Queued bool
	// Dirs are the node's dirs left on its host although the node itself
	// was stopped and removed (Reason says why each was kept).
	Dirs []string
}

// Service manages clusters, nodes and their config.
type Service struct {
	store    Store
	packages Packages
	gen      *ids.Generator
	now      func() time.Time
	// protected are dirs no node dir may overlap, on any server, each
	// with what it is (the manager's data dir).
	protected map[string]string

	// mu serialises the changes that place nodes (ordinals, directory and
	// port checks read what is there, then write); the store's unique
	// keys are the backstop.
	mu sync.Mutex
}

// NewService returns the service.
func NewService(store Store, packages Packages, gen *ids.Generator, now func() time.Time) *Service {
	return &Service{store: store, packages: packages, gen: gen, now: now, protected: map[string]string{}}
}

// ProtectDir refuses node dirs that overlap dir, an absolute, clean path,
// on every server; what says what it is ("the manager's data dir"). The
// manager's data dir is refused everywhere, as nodes are placed by
// address and the manager's own host can be one of them.
func (s *Service) ProtectDir(dir, what string) { s.protected[dir] = what }

// NodeSpec places one node.
type NodeSpec struct {
	// ManagerIP names a registered server.
	ManagerIP string
	// ProgramDir and DataDir are absolute; {cluster} and {nodeDir} are
	// expanded.
	ProgramDir string
	DataDir    string
	// ServerPort overrides the component's port from the manifest (0: keep).
	ServerPort int
}

// NewCluster is what Create needs.
type NewCluster struct {
	Name        string
	Description string
	// PackageID provides every component that Packages does not name.
	PackageID ids.ID
	// Packages gives a package per component ("coordinator", ...).
	Packages     map[string]ids.ID
	Coordinators []NodeSpec
	Storage      []NodeSpec
	Brokers      []NodeSpec
	// By is the console user creating the cluster: the author of the
	// config items imported from the packages.
	By string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// maxNodes caps the nodes of one request.
const maxNodes = 512

// group is the nodes of one component in a request.
type group struct {
	component string
	packageID ids.ID
	specs     []NodeSpec
}

// Create validates and stores a new cluster with its nodes and their
// imported config in one transaction: on any error nothing is stored.
func (s *Service) Create(ctx context.Context, n NewCluster) (Cluster, []Node, error) {
	if !nameRE.MatchString(n.Name) {
		return Cluster{}, nil, invalid.Field("name", "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
	}
	if err := invalid.Text("description", n.Description, 0, 512); err != nil {
		return Cluster{}, nil, err
	}
	var groups []group
	for _, g := range []group{{component: Coordinator, specs: n.Coordinators}, {component: Storage, specs: n.Storage}, {component: Broker, specs: n.Brokers}} {
		if len(g.specs) == 0 {
			continue
		}
		g.packageID = n.PackageID
		if id, ok := n.Packages[g.component]; ok && !id.IsZero() {
			g.packageID = id
		}
		if g.packageID.IsZero() {
			return Cluster{}, nil, g.nodeError(-1, "", ErrNoPackage, "give PackageID or Packages[%q]", g.component)
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return Cluster{}, nil, ErrNoNodes
	}
	for c := range n.Packages {
		if c != Coordinator && c != Storage && c != Broker {
			return Cluster{}, nil, (group{component: c}).nodeError(-1, "", ErrNotWithCluster, "")
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked first for a clear answer; the store's unique key is the
	// backstop.
	switch old, err := s.store.ClusterByName(ctx, n.Name); {
	case err == nil:
		return Cluster{}, nil, fmt.Errorf("%w: %s (id %s)", ErrClusterExists, n.Name, old.ID)
	case !errors.Is(err, ErrClusterNotFound):
		return Cluster{}, nil, err
	}
	now := s.now()
	c := Cluster{ID: s.gen.Next(), Name: n.Name, Description: n.Description, CreatedAt: now, UpdatedAt: now}
	nodes, err := s.plan(ctx, c, nil, groups, n.By, now)
	if err != nil {
		return Cluster{}, nil, err
	}
	if err := s.store.CreateCluster(ctx, &c, nodes, s.gen.Next); err != nil {
		return Cluster{}, nil, err
	}
	return s.result(ctx, c.ID, nodes)
}

// AddNodes places more nodes of one component in a cluster, with their
// imported config, in one transaction; by is the console user asking, the
// author of the config items the import creates.
func (s *Service) AddNodes(ctx context.Context, clusterID ids.ID, component string, packageID ids.ID, specs []NodeSpec, by string) ([]Node, error) {
	if !componentRE.MatchString(component) {
		return nil, invalid.Field("component", "must be a component name such as coordinator, storage or broker")
	}
	if packageID.IsZero() {
		return nil, invalid.Field("packageId", "is required")
	}
	if len(specs) == 0 {
		return nil, invalid.Field("nodes", "give at least one node")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.store.Cluster(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	existing, err := s.store.AllNodes(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	nodes, err := s.plan(ctx, c, existing, []group{{component: component, packageID: packageID, specs: specs}}, by, now)
	if err != nil {
		return nil, err
	}
	if err := s.store.AddNodes(ctx, clusterID, nodes, now, s.gen.Next); err != nil {
		return nil, err
	}
	_, out, err := s.result(ctx, clusterID, nodes)
	return out, err
}

var componentRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func (s *Service) result(ctx context.Context, clusterID ids.ID, nodes []NewNode) (Cluster, []Node, error) {
	c, err := s.store.Cluster(ctx, clusterID)
	if err != nil {
		return Cluster{}, nil, err
	}
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		out[i] = n.Node
	}
	return c, out, nil
}

// plan checks the groups and builds their nodes, files and items.
func (s *Service) plan(ctx context.Context, c Cluster, existing []Node, groups []group, by string, now time.Time) ([]NewNode, error) {
	total := 0
	for _, g := range groups {
		total += len(g.specs)
	}
	if total > maxNodes {
		return nil, fmt.Errorf("%w: %d nodes in one request; at most %d", ErrTooManyNodes, total, maxNodes)
	}
	var (
		out      []NewNode
		servers  = map[string]ServerRef{}
		imported = map[string][]config.Imported{} // by package id and component
	)
	for _, g := range groups {
		p, err := s.packages.Package(ctx, g.packageID)
		if err != nil {
			if errors.Is(err, pkg.ErrPackageNotFound) {
				return nil, g.nodeError(-1, "", pkg.ErrPackageNotFound, "package %s", g.packageID)
			}
			return nil, err
		}
		comp, ok := p.Manifest.Components[g.component]
		if !ok {
			return nil, g.nodeError(-1, "", ErrComponentNotInPackage, "package %s (%s) provides %s, not %s",
				p.FileName, p.ID, strings.Join(p.Manifest.ComponentNames(), ", "), g.component)
		}
		if !p.Effective {
			return nil, g.nodeError(-1, "", ErrPackageDisabled, "package %s (%s) is disabled; enable it first", p.FileName, p.ID)
		}
		key := p.ID.String() + "/" + g.component
		files, ok := imported[key]
		if !ok {
			if files, err = config.ImportPackage(s.packages.Path(p), p.Ext, comp.ConfigFiles); err != nil {
				return nil, err
			}
			imported[key] = files
		}

		ordinals, err := s.store.Ordinals(ctx, c.ID, g.component)
		if err != nil {
			return nil, err
		}
		next := 0
		for _, o := range ordinals {
			next = max(next, o)
		}
		used := map[ids.ID]bool{}
		for _, e := range existing {
			if e.Component == g.component {
				used[e.ServerID] = true
			}
		}
		for i, spec := range g.specs {
			ip := strings.TrimSpace(spec.ManagerIP)
			if ip == "" {
				return nil, g.nodeError(i, FieldManagerIP, nil, "is required")
			}
			srv, ok := servers[ip]
			if !ok {
				srv, err = s.store.ServerByManagerIP(ctx, ip)
				if errors.Is(err, fleet.ErrServerNotFound) {
					return nil, g.nodeError(i, FieldManagerIP, fleet.ErrServerNotFound, "no server is registered with manager IP %s", ip)
				}
				if err != nil {
					return nil, err
				}
				servers[ip] = srv
			}
			if used[srv.ID] {
				return nil, g.nodeError(i, FieldManagerIP, ErrServerRepeated, "%s already has a %s node in cluster %s", ip, g.component, c.Name)
			}
			used[srv.ID] = true
			ord, ok := ordinals[srv.ID]
			if !ok {
				next++
				ord = next
			}
			if g.component == Coordinator && ord > MaxCoordinatorOrdinal {
				return nil, fmt.Errorf("%w: a cluster's coordinators take ZooKeeper ids 1 to %d, and they are used up", ErrTooManyNodes, MaxCoordinatorOrdinal)
			}
			port := comp.ServerPort
			if spec.ServerPort != 0 {
				port = spec.ServerPort
			}
			if port < 1 || port > 65535 {
				return nil, g.nodeError(i, FieldServerPort, nil, "%d is not a TCP port", spec.ServerPort)
			}
			nodeDir := fmt.Sprintf("%s-%d", g.component, ord)
			prog, why := expandDir(spec.ProgramDir, c.Name, nodeDir)
			if why != "" {
				return nil, g.nodeError(i, FieldProgramDir, nil, "%s", why)
			}
			data, why := expandDir(spec.DataDir, c.Name, nodeDir)
			if why != "" {
				return nil, g.nodeError(i, FieldDataDir, nil, "%s", why)
			}
			if within(prog, data) || within(data, prog) {
				return nil, g.nodeError(i, "", fleet.ErrDirsNested, "programDir %s and dataDir %s", prog, data)
			}
			for _, d := range []struct{ field, path string }{{FieldProgramDir, prog}, {FieldDataDir, data}} {
				if err := s.checkDir(d.path, srv); err != nil {
					return nil, g.nodeError(i, d.field, ErrDirRefused, "%v", err)
				}
			}
			n := Node{
				ID: s.gen.Next(), ClusterID: c.ID, ServerID: srv.ID, Component: g.component, ComponentType: TypeOf(g.component),
				PackageID: p.ID, ManagerIP: srv.ManagerIP, DataIP: srv.DataIP, ProgramDir: prog, DataDir: data,
				NodeDir: nodeDir, ServerPort: port, Ordinal: ord, DeployState: DeployUndeployed, RunState: RunUnknown,
				CreatedAt: now, UpdatedAt: now,
			}
			nn := NewNode{Node: n, Config: files, By: by}
			out = append(out, nn)
		}
	}
	if err := s.checkPlacement(ctx, c, existing, out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkPlacement refuses nodes whose directories nest in, or whose port is
// the port of, another node on the same server, of any cluster.
func (s *Service) checkPlacement(ctx context.Context, c Cluster, existing []Node, planned []NewNode) error {
	var serverIDs []ids.ID
	for _, n := range planned {
		if !slices.Contains(serverIDs, n.Node.ServerID) {
			serverIDs = append(serverIDs, n.Node.ServerID)
		}
	}
	others, err := s.store.NodesOnServers(ctx, serverIDs)
	if err != nil {
		return err
	}
	all := others
	for _, n := range planned {
		all = append(all, n.Node)
	}
	label := func(n Node) string {
		name := c.Name
		if n.ClusterID != c.ID {
			name = "cluster " + n.ClusterID.String()
		}
		return fmt.Sprintf("%s node %s of %s", n.ManagerIP, n.NodeDir, name)
	}
	for i, a := range planned {
		for j, b := range all {
			if j >= len(others) && j-len(others) <= i { // each planned pair once
				continue
			}
			if a.Node.ServerID != b.ServerID {
				continue
			}
			for _, da := range []string{a.Node.ProgramDir, a.Node.DataDir} {
				for _, db := range []string{b.ProgramDir, b.DataDir} {
					if within(da, db) || within(db, da) {
						return fmt.Errorf("%w: %s uses %s and %s uses %s", fleet.ErrDirsNested, label(a.Node), da, label(b), db)
					}
				}
			}
			if a.Node.ServerPort == b.ServerPort {
				return invalid.Field("serverPort", "%s and %s would both serve port %d", label(a.Node), label(b), b.ServerPort)
			}
		}
	}
	return nil
}

// checkDir applies internal/nodedir's rules to a node's dir p on server
// srv: no system or home dir, nothing overlapping the manager's protected
// dirs or the agent's state dir.
func (s *Service) checkDir(p string, srv ServerRef) error {
	if err := nodedir.Check(p); err != nil {
		return err
	}
	if err := nodedir.CheckProtected(p, s.protected); err != nil {
		return err
	}
	return nodedir.CheckProtected(p, map[string]string{srv.AgentStateDir: "the agent's state dir on " + srv.ManagerIP})
}

// expandDir fills {cluster} and {nodeDir} in v and checks the result; why
// says what is wrong with v.
func expandDir(v, cluster, nodeDir string) (dir, why string) {
	if v == "" {
		return "", "is required"
	}
	out := strings.NewReplacer("{cluster}", cluster, "{nodeDir}", nodeDir).Replace(v)
	if strings.ContainsAny(out, "{}") {
		return "", fmt.Sprintf("%q: only the placeholders {cluster} and {nodeDir} may be used", v)
	}
	if len(out) > 1024 || !filepath.IsAbs(out) || strings.ContainsAny(out, "\x00\n\r") {
		return "", fmt.Sprintf("%q must be an absolute path", v)
	}
	for _, part := range strings.Split(out, "/") {
		if part == ".." {
			return "", fmt.Sprintf("%q must not contain '..'", v)
		}
	}
	clean := filepath.Clean(out)
	if clean == "/" {
		return "", "must not be the root directory"
	}
	return clean, ""
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// Clusters returns one page of clusters, newest first, and the total.
func (s *Service) Clusters(ctx context.Context, p paging.Page) ([]Cluster, int, error) {
	return s.store.Clusters(ctx, p)
}

// Cluster returns the cluster with id, or ErrClusterNotFound.
func (s *Service) Cluster(ctx context.Context, id ids.ID) (Cluster, error) {
	return s.store.Cluster(ctx, id)
}

// Nodes returns one page of the cluster's nodes and the total, or
// ErrClusterNotFound.
func (s *Service) Nodes(ctx context.Context, clusterID ids.ID, p paging.Page) ([]Node, int, error) {
	if _, err := s.store.Cluster(ctx, clusterID); err != nil {
		return nil, 0, err
	}
	return s.store.Nodes(ctx, clusterID, p)
}

// AllNodes returns every node of the cluster.
func (s *Service) AllNodes(ctx context.Context, clusterID ids.ID) ([]Node, error) {
	return s.store.AllNodes(ctx, clusterID)
}

// NodesOnServers returns every node, of any cluster, on the servers.
func (s *Service) NodesOnServers(ctx context.Context, serverIDs []ids.ID) ([]Node, error) {
	return s.store.NodesOnServers(ctx, serverIDs)
}

// ClusterNamesOnServers returns, by server, the sorted names of the
// clusters with nodes on it.
func (s *Service) ClusterNamesOnServers(ctx context.Context, serverIDs []ids.ID) (map[ids.ID][]string, error) {
	return s.store.ClusterNamesOnServers(ctx, serverIDs)
}

// Node returns the node with id, or ErrNodeNotFound.
func (s *Service) Node(ctx context.Context, id ids.ID) (Node, error) { return s.store.Node(ctx, id) }

// Delete removes the cluster and everything it holds, and returns it with
// the nodes t could not clean. t, when not nil, first stops the nodes and
// cleans their hosts (the deploy engine's DeleteCluster passes itself);
// without one only the records go.
func (s *Service) Delete(ctx context.Context, id ids.ID, t Teardown) (Cluster, []Uncleaned, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.store.Cluster(ctx, id)
	if err != nil {
		return Cluster{}, nil, err
	}
	var uncleaned []Uncleaned
	if t != nil {
		nodes, err := s.store.AllNodes(ctx, id)
		if err != nil {
			return Cluster{}, nil, err
		}
		if uncleaned, err = t.Teardown(ctx, c, nodes); err != nil {
			return Cluster{}, nil, err
		}
	}
	if err := s.store.DeleteCluster(ctx, id); err != nil {
		return Cluster{}, nil, err
	}
	return c, uncleaned, nil
}
