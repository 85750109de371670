package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/config"
)

func (a *API) clusters() (*cluster.Service, error) {
	if a.d.Clusters == nil {
		return nil, errors.New("api: no cluster service configured")
	}
	return a.d.Clusters, nil
}

// clusterNodeRequest places one node (seed 2.3.0.1 zkList[] and the like).
type clusterNodeRequest struct {
	ManagerIP string `json:"managerIp"`
	// DataDir and ProgramDir are absolute; {cluster} is the cluster's name
	// and {nodeDir} "<component>-<ordinal>", e.g. coordinator-1.
	DataDir    string `json:"dataDir"`
	ProgramDir string `json:"programDir"`
	// ServerPort overrides the component's port from the package manifest.
	ServerPort int `json:"serverPort,omitempty"`
}

// clusterRequest creates a cluster (seed 2.3.0.1).
type clusterRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// PackageID provides every component that Packages does not name.
	PackageID ids.ID `json:"packageId,omitempty"`
	// Packages gives a package per component: coordinator, storage, broker.
	Packages    map[string]ids.ID    `json:"packages,omitempty"`
	ZkList      []clusterNodeRequest `json:"zkList"`
	StorageList []clusterNodeRequest `json:"storageList"`
	BrokerList  []clusterNodeRequest `json:"brokerList"`
}

// addNodesRequest adds nodes of one component to a cluster.
type addNodesRequest struct {
	ClusterID ids.ID `json:"clusterId"`
	// Component is coordinator, storage, broker or another component the
	// package provides.
	Component string               `json:"component"`
	PackageID ids.ID               `json:"packageId"`
	Nodes     []clusterNodeRequest `json:"nodes"`
}

type clusterView struct {
	ID          ids.ID   `json:"id"`
	CreateTime  apiTime  `json:"createTime"`
	UpdateTime  apiTime  `json:"updateTime"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	NodeCount   int      `json:"nodeCount"`
	Components  []string `json:"components"`
	// Nodes are given when the cluster is created.
	Nodes []nodeView `json:"nodes,omitempty"`
}

func toClusterView(c cluster.Cluster) clusterView {
	comps := c.Components
	if comps == nil {
		comps = []string{}
	}
	return clusterView{ID: c.ID, CreateTime: apiTime(c.CreatedAt), UpdateTime: apiTime(c.UpdatedAt), Name: c.Name,
		Description: c.Description, NodeCount: c.NodeCount, Components: comps}
}

// nodeView has the seed's node fields (2.3.0.4) plus where the node lives.
type nodeView struct {
	ID            ids.ID  `json:"id"`
	CreateTime    apiTime `json:"createTime"`
	UpdateTime    apiTime `json:"updateTime"`
	ClusterID     ids.ID  `json:"clusterId"`
	ServerID      ids.ID  `json:"serverId"`
	ManagerIP     string  `json:"managerIp"`
	DataIP        string  `json:"dataIp"`
	Component     string  `json:"component"`
	ComponentType int     `json:"componentType"` // 1 coordinator, 2 storage, 3 broker, 0 other
	// ComponentTypeStr is "admq协调器", "admq存储", "admq代理", or the name.
	ComponentTypeStr string `json:"componentTypeStr"`
	ServerPort       int    `json:"serverPort"`
	DeployStatus     string `json:"deployStatus"` // undeployed, deploying, deployed, failed
	RunStatus        string `json:"runStatus"`    // unknown, running, stopped, failed
	// Pid, StartTime, Restarts and LastExit are the agent's supervisor's
	// view of the node's process, asked live like RunStatus: pid 0 and
	// null startTime when nothing runs or the agent does not answer.
	Pid       int     `json:"pid"`
	StartTime apiTime `json:"startTime"`
	Restarts  int     `json:"restarts"`
	LastExit  string  `json:"lastExit"`
	// SyncNodeConfigStatus says whether the node's draft config is what
	// is applied on it: 0 in sync; 1 the draft differs, a flush (restart)
	// is required; 2 unknown, an apply was cut short (the node has the old
	// or the new file): flush again; 3 nothing applied yet (never deployed,
	// or deployed by a manager before config releases).
	SyncNodeConfigStatus int `json:"syncNodeConfigStatus"`
	// Mode is 1 when the node runs normally — deployed, running as its
	// agent reports it now, its config in sync — and 0 otherwise.
	Mode int `json:"mode"`
	// DeployAgreementType is the seed's deployment protocol: 0, the
	// agent's tunnel, for every node.
	DeployAgreementType int `json:"deployAgreementType"`
	// The seed's AMP/KOP monitoring links: 0 and "" until a monitoring
	// platform is linked (none is yet).
	AmpFacilityID    int    `json:"ampFacilityId"`
	AmpMonitorID     int    `json:"ampMonitorId"`
	AmpKopMonitorID  int    `json:"ampKopMonitorId"`
	AmpKopFacilityID int    `json:"ampKopFacilityId"`
	AmpURL           string `json:"ampUrl"`
	ProgramDir       string `json:"programDir"`
	DataDir          string `json:"dataDir"`
	NodeDir          string `json:"nodeDir"`
	// Myid is the node's ordinal in its component; a coordinator's
	// ZooKeeper myid.
	Myid        int             `json:"myid"`
	PackageID   ids.ID          `json:"packageId"`
	ConfigFiles []configFileRef `json:"configFiles"`
}

type configFileRef struct {
	ID   ids.ID `json:"id"`
	Name string `json:"name"`
}

func componentTypeStr(n cluster.Node) string {
	switch n.ComponentType {
	case cluster.TypeCoordinator:
		return "admq协调器"
	case cluster.TypeStorage:
		return "admq存储"
	case cluster.TypeBroker:
		return "admq代理"
	}
	return n.Component
}

func toNodeView(n cluster.Node, files []config.NodeFile) nodeView {
	refs := make([]configFileRef, len(files))
	for i, f := range files {
		refs[i] = configFileRef{ID: f.ID, Name: f.Name}
	}
	return nodeView{
		ID: n.ID, CreateTime: apiTime(n.CreatedAt), UpdateTime: apiTime(n.UpdatedAt), ClusterID: n.ClusterID,
		ServerID: n.ServerID, ManagerIP: n.ManagerIP, DataIP: n.DataIP, Component: n.Component,
		ComponentType: n.ComponentType, ComponentTypeStr: componentTypeStr(n), ServerPort: n.ServerPort,
		DeployStatus: n.DeployState, RunStatus: n.RunState, SyncNodeConfigStatus: config.SyncNeverApplied,
		ProgramDir: n.ProgramDir, DataDir: n.DataDir, NodeDir: n.NodeDir, Myid: n.Ordinal, PackageID: n.PackageID,
		ConfigFiles: refs,
	}
}

// clusterLists names the list of a component's nodes in a clusterRequest.
var clusterLists = map[string]string{cluster.Coordinator: "zkList", cluster.Storage: "storageList", cluster.Broker: "brokerList"}

// nodeFields names a node spec's fields as clusterNodeRequest does.
var nodeFields = map[string]string{
	cluster.FieldManagerIP: "managerIp", cluster.FieldProgramDir: "programDir", cluster.FieldDataDir: "dataDir", cluster.FieldServerPort: "serverPort",
}

// consoleNodes restates cluster's errors about the nodes of a request in
// the request's terms (zkList[0].managerIp), as consoleFields does for
// config's; list names the request's list of a component's nodes.
func consoleNodes(err error, list func(component string) string) error {
	if errors.Is(err, cluster.ErrNoNodes) {
		return invalid.Field("zkList", "a cluster needs at least one node (zkList, storageList or brokerList)")
	}
	var ne *cluster.NodeError
	if !errors.As(err, &ne) {
		return err
	}
	switch {
	case errors.Is(ne.Kind, cluster.ErrNoPackage):
		return invalid.Field("packageId", "is required (or packages.%s) for the nodes in %s", ne.Component, list(ne.Component))
	case errors.Is(ne.Kind, cluster.ErrNotWithCluster):
		return invalid.Field("packages", "%q: only coordinator, storage and broker nodes are created with the cluster; add others with POST /admq/cluster/node", ne.Component)
	}
	field := list(ne.Component)
	if ne.Index >= 0 {
		field += fmt.Sprintf("[%d]", ne.Index)
	}
	if f, ok := nodeFields[ne.Field]; ok {
		field += "." + f
	}
	if ne.Kind == nil {
		return &invalid.Error{Field: field, Reason: ne.Reason}
	}
	return fmt.Errorf("%w: %s: %s", ne.Kind, field, ne.Reason)
}

func toSpecs(list []clusterNodeRequest) []cluster.NodeSpec {
	out := make([]cluster.NodeSpec, len(list))
	for i, n := range list {
		out[i] = cluster.NodeSpec{ManagerIP: n.ManagerIP, ProgramDir: n.ProgramDir, DataDir: n.DataDir, ServerPort: n.ServerPort}
	}
	return out
}

func ipsOf(list []clusterNodeRequest) string {
	s := make([]string, len(list))
	for i, n := range list {
		s[i] = n.ManagerIP
	}
	return strings.Join(s, ",")
}

func (a *API) createCluster(c echo.Context) error {
	svc, err := a.clusters()
	if err != nil {
		return err
	}
	var r clusterRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	detail(c, "cluster=%q zk=%s storage=%s broker=%s", truncate(r.Name, 64), ipsOf(r.ZkList), ipsOf(r.StorageList), ipsOf(r.BrokerList))
	cl, nodes, err := svc.Create(c.Request().Context(), cluster.NewCluster{
		Name: r.Name, Description: r.Description, PackageID: r.PackageID, Packages: r.Packages,
		Coordinators: toSpecs(r.ZkList), Storage: toSpecs(r.StorageList), Brokers: toSpecs(r.BrokerList),
		By: userOf(c).Username,
	})
	if err != nil {
		return consoleNodes(err, func(component string) string { return clusterLists[component] })
	}
	detail(c, "cluster=%s (%s) nodes=%d", cl.Name, cl.ID, len(nodes))
	v := toClusterView(cl)
	if v.Nodes, err = a.nodeViews(c, svc, nodes); err != nil {
		return err
	}
	return ok(c, v)
}

func (a *API) nodeViews(c echo.Context, svc *cluster.Service, nodes []cluster.Node) ([]nodeView, error) {
	views := make([]nodeView, len(nodes))
	for i, n := range nodes {
		var files []config.NodeFile
		if a.d.Config != nil {
			var err error
			if files, err = a.d.Config.NodeFiles(c.Request().Context(), n.ID); err != nil {
				return nil, err
			}
		}
		views[i] = toNodeView(n, files)
	}
	return views, nil
}

func (a *API) addClusterNodes(c echo.Context) error {
	svc, err := a.clusters()
	if err != nil {
		return err
	}
	var r addNodesRequest
	if err := decode(c, &r); err != nil {
		return err
	}
	if r.ClusterID.IsZero() {
		return invalid.Field("clusterId", "is required")
	}
	detail(c, "cluster=%s component=%q package=%s nodes=%s", r.ClusterID, truncate(r.Component, 32), r.PackageID, ipsOf(r.Nodes))
	nodes, err := svc.AddNodes(c.Request().Context(), r.ClusterID, r.Component, r.PackageID, toSpecs(r.Nodes), userOf(c).Username)
	if err != nil {
		return consoleNodes(err, func(string) string { return "nodes" })
	}
	views, err := a.nodeViews(c, svc, nodes)
	if err != nil {
		return err
	}
	return ok(c, views)
}

func (a *API) listClusters(c echo.Context) error {
	svc, err := a.clusters()
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := svc.Clusters(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]clusterView, len(list))
	for i, cl := range list {
		views[i] = toClusterView(cl)
	}
	return ok(c, newPage(p, total, views))
}

// requiredID reads a required id query parameter.
func requiredID(c echo.Context, name string) (ids.ID, error) {
	id, err := queryID(c, name)
	if err != nil {
		return 0, err
	}
	if id.IsZero() {
		return 0, invalid.Field(name, "is required")
	}
	return id, nil
}

func (a *API) listClusterNodes(c echo.Context) error {
	svc, err := a.clusters()
	if err != nil {
		return err
	}
	cid, err := requiredID(c, "clusterId")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	list, total, err := svc.Nodes(c.Request().Context(), cid, p)
	if err != nil {
		return err
	}
	views, err := a.nodeViews(c, svc, list)
	if err != nil {
		return err
	}
	a.liveRunStatus(c, list, views)
	if err := a.syncStatus(c, list, views); err != nil {
		return err
	}
	return ok(c, newPage(p, total, views))
}

func (a *API) deleteCluster(c echo.Context) error {
	svc, err := a.clusters()
	if err != nil {
		return err
	}
	id, err := idOf(c)
	if err != nil {
		return err
	}
	detail(c, "cluster=%s", id)
	// The deploy engine stops the nodes and cleans their hosts first;
	// without one only the records go.
	del := func(ctx context.Context, id ids.ID) (cluster.Cluster, []cluster.Uncleaned, error) {
		return svc.Delete(ctx, id, nil)
	}
	if a.d.Deploy != nil {
		del = a.d.Deploy.DeleteCluster
	}
	cl, notCleaned, err := del(c.Request().Context(), id)
	if err != nil {
		return err
	}
	detail(c, "cluster=%s (%s) nodes=%d notCleaned=%d", cl.Name, cl.ID, cl.NodeCount, len(notCleaned))
	return ok(c, toDeleteClusterView(notCleaned))
}

// syncStatus fills each node's syncNodeConfigStatus from the config
// service and its mode from that and its states.
func (a *API) syncStatus(c echo.Context, nodes []cluster.Node, views []nodeView) error {
	if a.d.Config == nil || len(nodes) == 0 {
		return nil
	}
	sync, err := a.d.Config.SyncStatus(c.Request().Context(), nodeIDsOf(nodes))
	if err != nil {
		return err
	}
	for i, n := range nodes {
		views[i].SyncNodeConfigStatus = sync[n.ID]
		if views[i].DeployStatus == cluster.DeployDeployed && views[i].RunStatus == cluster.RunRunning && sync[n.ID] == config.SyncInSync {
			views[i].Mode = 1
		}
	}
	return nil
}

func nodeIDsOf(nodes []cluster.Node) []ids.ID {
	out := make([]ids.ID, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}
