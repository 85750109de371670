package apollo

import (
	"net/http"
	"strings"
)

// namespaceDTO describes ns as cluster x.node sees it, with its items when
// fill is set.
func (s *Server) namespaceDTO(x *call, ns *namespace, fill bool) (NamespaceDTO, error) {
	dto := NamespaceDTO{
		AppID: x.app.cluster.Name, ClusterName: x.clusterName(), NamespaceName: ns.name,
		Comment: ns.component + " " + ns.layer.Path, Format: ns.format, Items: []ItemDTO{},
		baseDTO: base("", "", ns.layer.CreatedAt, ns.layer.UpdatedAt),
	}
	if fill {
		items, err := s.d.Items.List(x.Request().Context(), x.targetOf(ns))
		if err != nil {
			return NamespaceDTO{}, err
		}
		for i, it := range items {
			dto.Items = append(dto.Items, itemDTO(it, i))
		}
	}
	return dto, nil
}

// fillItemDetail reads ?fillItemDetail=, true unless false, as Apollo has it.
func (x *call) fillItemDetail() (bool, error) {
	if x.QueryParam("fillItemDetail") == "" {
		return true, nil
	}
	return x.boolQuery("fillItemDetail")
}

func (s *Server) listNamespaces(x *call) error {
	fill, err := x.fillItemDetail()
	if err != nil {
		return err
	}
	out := []NamespaceDTO{}
	for _, ns := range x.app.namespacesOf(x.node) {
		if !x.covers(accessRead, x.app.cluster.Name, x.clusterName(), ns) {
			continue // reads are scoped: a namespace without a grant is not listed
		}
		dto, err := s.namespaceDTO(x, ns, fill)
		if err != nil {
			return err
		}
		out = append(out, dto)
	}
	return writeJSON(x, http.StatusOK, out)
}

func (s *Server) getNamespace(x *call) error {
	fill, err := x.fillItemDetail()
	if err != nil {
		return err
	}
	dto, err := s.namespaceDTO(x, x.ns, fill)
	if err != nil {
		return err
	}
	return writeJSON(x, http.StatusOK, dto)
}

func (s *Server) listAppNamespaces(x *call) error {
	out := []AppNamespaceDTO{}
	for _, ns := range x.app.namespaces {
		if !x.covers(accessRead, x.app.cluster.Name, DefaultCluster, ns) && !x.coversAnyCluster(x.app.cluster.Name, ns) {
			continue
		}
		out = append(out, AppNamespaceDTO{Name: ns.name, AppID: x.app.cluster.Name, Format: ns.format,
			Comment: ns.component + " " + ns.layer.Path, baseDTO: base("", "", ns.layer.CreatedAt, ns.layer.UpdatedAt)})
	}
	return writeJSON(x, http.StatusOK, out)
}

// coversAnyCluster reports whether a grant lets the token read ns in some
// cluster of the app.
func (x *call) coversAnyCluster(appID string, ns *namespace) bool {
	for _, g := range x.grants {
		if g.AppID == appID && (g.NamespaceName == "" || g.NamespaceName == ns.qualified()) {
			return true
		}
	}
	return false
}

func (s *Server) createAppNamespace(x *call) error {
	var r struct {
		Name                string `json:"name"`
		AppID               string `json:"appId"`
		DataChangeCreatedBy string `json:"dataChangeCreatedBy"`
	}
	if ok, err := x.decode(&r); err != nil {
		return err
	} else if !ok {
		return badRequest("app namespace payload can not be empty")
	}
	if r.AppID != x.app.cluster.Name {
		return badRequest("AppId not equal. AppId in path = %s, AppId in payload = %s", x.app.cluster.Name, truncate(r.AppID, 128))
	}
	if err := x.resolveOperator(r.DataChangeCreatedBy); err != nil {
		return err
	}
	if strings.TrimSpace(r.Name) == "" {
		return badRequest("name should not be null or empty")
	}
	return badRequest("namespaces are the config files that a package's manifest declares for a component; " +
		"they come with the component's nodes: add a file by uploading a package that declares it")
}

// instanceCount answers how many nodes hold the namespace's file: every
// node of its component for default, the one node for a node's cluster.
func (s *Server) instanceCount(x *call) error {
	n := 1
	if x.node == nil {
		n = 0
		for _, node := range x.app.nodes {
			if node.Component == x.ns.component {
				n++
			}
		}
	}
	return writeJSON(x, http.StatusOK, n)
}
