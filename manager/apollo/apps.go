package apollo

import (
	"strings"

	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/paging"
)

func (s *Server) envs(x *call) error {
	return writeJSON(x, 200, []string{s.d.Env})
}

func (s *Server) organizations(x *call) error {
	var out []OrganizationDTO
	for p := (paging.Page{Num: 1, Size: paging.MaxSize}); ; p.Num++ {
		list, total, err := s.d.Areas.Areas(x.Request().Context(), p)
		if err != nil {
			return err
		}
		for _, a := range list {
			out = append(out, OrganizationDTO{OrgID: a.Code, OrgName: a.Name})
		}
		if len(list) == 0 || len(out) >= total {
			break
		}
	}
	if out == nil {
		out = []OrganizationDTO{}
	}
	return writeJSON(x, 200, out)
}

func toAppDTO(c cluster.Cluster) AppDTO {
	name := c.Description
	if name == "" {
		name = c.Name
	}
	return AppDTO{Name: name, AppID: c.Name, baseDTO: base("", "", c.CreatedAt, c.UpdatedAt)}
}

// grantedApps lists the apps the token holds a grant on, restricted to
// only when it is not empty.
func (s *Server) grantedApps(x *call, only map[string]bool) ([]AppDTO, error) {
	all, err := s.d.Catalog.apps(x.Request().Context())
	if err != nil {
		return nil, err
	}
	out := []AppDTO{}
	for _, c := range all {
		if x.hasApp(c.Name) && (len(only) == 0 || only[c.Name]) {
			out = append(out, toAppDTO(c))
		}
	}
	return out, nil
}

func (s *Server) listApps(x *call) error {
	only := map[string]bool{}
	for _, id := range strings.Split(x.QueryParam("appIds"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			only[id] = true
		}
	}
	apps, err := s.grantedApps(x, only)
	if err != nil {
		return err
	}
	return writeJSON(x, 200, apps)
}

func (s *Server) authorizedApps(x *call) error {
	apps, err := s.grantedApps(x, nil)
	if err != nil {
		return err
	}
	return writeJSON(x, 200, apps)
}

func (s *Server) createApp(x *call) error {
	return badRequest("apps are ADMQ clusters: create a cluster in the console (POST /admq-manager/admq/cluster)")
}

func (s *Server) envClusters(x *call) error {
	names := []string{}
	for _, n := range x.app.clusterNames() {
		if x.coversCluster(accessRead, x.app.cluster.Name, n) {
			names = append(names, n)
		}
	}
	return writeJSON(x, 200, []EnvClusterDTO{{Env: s.d.Env, Clusters: names}})
}

func (s *Server) clusterDTO(a *app, node *cluster.Node) ClusterDTO {
	if node == nil {
		return ClusterDTO{ID: int64(a.cluster.ID), Name: DefaultCluster, AppID: a.cluster.Name, baseDTO: base("", "", a.cluster.CreatedAt, a.cluster.UpdatedAt)}
	}
	return ClusterDTO{ID: int64(node.ID), Name: node.NodeDir, AppID: a.cluster.Name, baseDTO: base("", "", node.CreatedAt, node.UpdatedAt)}
}

func (s *Server) getCluster(x *call) error {
	return writeJSON(x, 200, s.clusterDTO(x.app, x.node))
}

func (s *Server) createCluster(x *call) error {
	var r clusterRequest
	if _, err := x.decode(&r); err != nil {
		return err
	}
	if r.AppID != x.app.cluster.Name {
		return badRequest("AppId not equal. AppId in path = %s, AppId in payload = %s", x.app.cluster.Name, truncate(r.AppID, 128))
	}
	if err := x.resolveOperator(r.DataChangeCreatedBy); err != nil {
		return err
	}
	if strings.TrimSpace(r.Name) == "" {
		return badRequest("name and dataChangeCreatedBy should not be null or empty")
	}
	if n, _ := x.app.resolveCluster(r.Name); n != nil || r.Name == DefaultCluster {
		return badRequest("cluster %s already exists in app %s", truncate(r.Name, 128), x.app.cluster.Name)
	}
	return badRequest("clusters are the nodes of an ADMQ cluster; add nodes through the console (POST /admq-manager/admq/cluster/node)")
}
