package apollo

import (
	"fmt"
	"net/http"
)

// route is one Open API endpoint: how it is served and how it is
// documented.
type route struct {
	method, path string // path under Prefix, echo style (":appId")
	summary      string
	access       access
	query        []queryParam
	body         any // request body type, nil for none
	// resp is the type of a 200 answer's body; nil: empty body.
	resp    any
	handler func(*call) error
}

type queryParam struct {
	name, kind, desc string
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Path prefixes of the routes.
const (
	nsPath = "/envs/:env/apps/:appId/clusters/:clusterName/namespaces/:namespaceName"
)

var operatorQuery = queryParam{"operator", "string", "the console user the call acts for (else the body's dataChangeCreatedBy/dataChangeLastModifiedBy/releasedBy); must exist"}

// routeTable lists every Open API route; New serves exactly these and the
// OpenAPI document describes exactly these.
func (s *Server) routeTable() []route {
	return []route{
		{method: http.MethodGet, path: "/openapi.json", access: accessPublic,
			summary: "This document: the Open API's routes and how Apollo's names map onto ADMQ",
			handler: s.openAPI},

		{method: http.MethodGet, path: "/envs", access: accessToken,
			summary: "The environments this manager serves: one, its --env (default PRO)",
			resp:    []string{}, handler: s.envs},
		{method: http.MethodGet, path: "/organizations", access: accessToken,
			summary: "Organizations: the manager's availability areas (orgId = area code, orgName = area name)",
			resp:    []OrganizationDTO{}, handler: s.organizations},
		{method: http.MethodGet, path: "/apps", access: accessToken,
			summary: "Apps: the ADMQ clusters the token holds a grant on (appId = cluster name); appIds, comma-separated, picks some",
			query:   []queryParam{{"appIds", "string", "comma-separated app ids; empty: every app the token may read"}},
			resp:    []AppDTO{}, handler: s.listApps},
		{method: http.MethodPost, path: "/apps", access: accessToken,
			summary: "Refused (400): an app is an ADMQ cluster; create clusters in the console",
			handler: s.createApp},
		{method: http.MethodGet, path: "/apps/authorized", access: accessToken,
			summary: "Exactly the apps the token holds a grant on",
			resp:    []AppDTO{}, handler: s.authorizedApps},
		{method: http.MethodGet, path: "/apps/:appId/envclusters", access: accessRead,
			summary: "The app's clusters in this manager's env: default (the cluster-wide layer) and each node's name ({nodeDir}) the token may read",
			resp:    []EnvClusterDTO{}, handler: s.envClusters},
		{method: http.MethodGet, path: "/envs/:env/apps/:appId/clusters/:clusterName", access: accessRead,
			summary: "One cluster: default, or a node by its name",
			resp:    ClusterDTO{}, handler: s.getCluster},
		{method: http.MethodPost, path: "/envs/:env/apps/:appId/clusters", access: accessModify,
			summary: "Refused (400) after its checks: the clusters of an app are default and the nodes of the ADMQ cluster; add nodes through the console",
			query:   []queryParam{operatorQuery},
			body:    clusterRequest{}, resp: ClusterDTO{}, handler: s.createCluster},

		{method: http.MethodGet, path: nsPath + "/lock", access: accessRead,
			summary: "Who holds the namespace's lock (--namespace-lock): the first editor since its last release; never locked when the lock is off",
			resp:    NamespaceLockDTO{}, handler: s.getLock},
	}
}
