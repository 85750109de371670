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
	// scopeInQuery: appId, clusterName and namespaceName are required
	// query parameters (list them in query), checked like path ones.
	scopeInQuery bool
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

var (
	pageQuery         = queryParam{"page", "integer", "page number from 0 (default 0)"}
	instanceSizeQuery = queryParam{"size", "integer", "page size, 1-10000 (default 20)"}
)

// scopeQuery are the query parameters of a route with scopeInQuery.
func scopeQuery() []queryParam {
	return []queryParam{{"appId", "string", "the app (ADMQ cluster)"}, {"clusterName", "string", "default, or a node's name"},
		{"namespaceName", "string", "the namespace (config file)"}}
}

var fillItemDetailQuery = queryParam{"fillItemDetail", "boolean", "include the items (default true)"}

var operatorQuery = queryParam{"operator", "string", "the console user the call acts for (else the body's dataChangeCreatedBy/dataChangeLastModifiedBy/releasedBy); must exist"}

// routeTable lists every Open API route; New serves exactly these and the
// OpenAPI document describes exactly these.
func (s *Server) routeTable() []route {
	routes := []route{
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

		{method: http.MethodGet, path: "/envs/:env/apps/:appId/clusters/:clusterName/namespaces", access: accessRead,
			summary: "The namespaces (config files) of a cluster the token may read: every file for default, the files of the node's component for a node",
			query:   []queryParam{fillItemDetailQuery},
			resp:    []NamespaceDTO{}, handler: s.listNamespaces},
		{method: http.MethodGet, path: nsPath, access: accessRead,
			summary: "One namespace; comment says its component and path in the package, format is properties or txt (a raw file: one item, content)",
			query:   []queryParam{fillItemDetailQuery},
			resp:    NamespaceDTO{}, handler: s.getNamespace},
		{method: http.MethodGet, path: "/apps/:appId/appnamespaces", access: accessRead,
			summary: "The app's namespaces the token may read",
			resp:    []AppNamespaceDTO{}, handler: s.listAppNamespaces},
		{method: http.MethodPost, path: "/apps/:appId/appnamespaces", access: accessModify,
			summary: "Refused (400) after its checks: a namespace is a config file a package's manifest declares, and comes with the nodes of its component",
			query:   []queryParam{operatorQuery},
			body:    AppNamespaceDTO{}, resp: AppNamespaceDTO{}, handler: s.createAppNamespace},
		{method: http.MethodGet, path: nsPath + "/instances", access: accessRead,
			summary: "How many nodes hold the file: every node of its component for default, 1 for a node",
			resp:    0, handler: s.instanceCount},
		{method: http.MethodGet, path: nsPath + "/lock", access: accessRead,
			summary: "Who holds the namespace's lock (--namespace-lock): the first editor since its last release; never locked when the lock is off",
			resp:    NamespaceLockDTO{}, handler: s.getLock},

		{method: http.MethodGet, path: nsPath + "/items", access: accessRead,
			summary: "A page of the namespace's items in file order: {content, page, size, total}",
			query:   []queryParam{{"page", "integer", "page number from 0 (default 0)"}, {"size", "integer", "page size, 1-10000 (default 50)"}},
			resp:    ItemPageDTO{}, handler: s.listItems},
		{method: http.MethodGet, path: nsPath + "/items/:key", access: accessRead,
			summary: "One item; 404 when the key is not there",
			resp:    ItemDTO{}, handler: s.getItem},
		{method: http.MethodGet, path: nsPath + "/encodedItems/:key", access: accessRead,
			summary: "One item whose key (holding / or \\) is given as standard base64",
			resp:    ItemDTO{}, handler: s.getItem},
		{method: http.MethodPost, path: nsPath + "/items", access: accessModify,
			summary: "Add an item (key ≤ 128, value ≤ 20000, comment ≤ 256 characters); the operator is ?operator= or dataChangeCreatedBy. " +
				"An item of a node's cluster is that node's own key (or, for a key of the cluster layer switched off there, switches it on with this value)",
			query: []queryParam{operatorQuery},
			body:  itemRequest{}, resp: ItemDTO{}, handler: s.createItem},
		{method: http.MethodPut, path: nsPath + "/items/:key", access: accessModify,
			summary: "Change an item; the body's key must be the path's. createIfNotExists=true adds it when missing. " +
				"On a node's cluster the value overrides the layer's for that node (a layer key's comment is kept)",
			query: []queryParam{operatorQuery, {"createIfNotExists", "boolean", "add the item when the key is missing"}},
			body:  itemRequest{}, handler: s.updateItem},
		{method: http.MethodPut, path: nsPath + "/encodedItems/:key", access: accessModify,
			summary: "Change an item whose key is given as standard base64",
			query:   []queryParam{operatorQuery, {"createIfNotExists", "boolean", "add the item when the key is missing"}},
			body:    itemRequest{}, handler: s.updateItem},
		{method: http.MethodDelete, path: nsPath + "/items/:key", access: accessModify,
			summary: "Delete an item (operator required). On a node's cluster a key of the layer is switched off for that node; a node's own key is deleted",
			query:   []queryParam{operatorQuery}, handler: s.deleteItem},
		{method: http.MethodDelete, path: nsPath + "/encodedItems/:key", access: accessModify,
			summary: "Delete an item whose key is given as standard base64",
			query:   []queryParam{operatorQuery}, handler: s.deleteItem},
		{method: http.MethodPost, path: nsPath + "/items/batch-create", access: accessModify,
			summary: "Add a list of items: all of them or, when one is refused, none",
			query:   []queryParam{operatorQuery},
			body:    []itemRequest{}, handler: s.batchItems},
		{method: http.MethodPost, path: nsPath + "/items/batch-update", access: accessModify,
			summary: "Change a list of items: all of them or none",
			query:   []queryParam{operatorQuery, {"createIfNotExists", "boolean", "add the items that are missing"}},
			body:    []itemRequest{}, handler: s.batchItems},
		{method: http.MethodPost, path: nsPath + "/items/batch-delete", access: accessModify,
			summary: "Delete a list of items (only their keys count): all of them or none",
			query:   []queryParam{operatorQuery},
			body:    []itemRequest{}, handler: s.batchItems},

		{method: http.MethodPost, path: nsPath + "/releases", access: accessRelease,
			summary: "Publish the namespace (releaseTitle ≤ 64, releaseComment ≤ 256 characters; releasedBy or ?operator= a console user): " +
				"for default, a release rolled out node by node behind the health gate to every node of the file's component whose file changes " +
				"(quorum kept, leader last; the first unhealthy node gets its previous file back and stops the rollout); for a node's cluster, a flush of that node. " +
				"Answers once the release is recorded and its rollout started; a release with no change is recorded and restarts nothing. " +
				"400 while a rollout holds one of the nodes",
			query: []queryParam{operatorQuery},
			body:  releaseRequest{}, resp: ReleaseDTO{}, handler: s.publish},
		{method: http.MethodGet, path: nsPath + "/releases/latest", access: accessRead,
			summary: "The newest release of the namespace in the cluster that did not fail; 200 with an empty body when there is none",
			resp:    ReleaseDTO{}, handler: s.latestRelease},
		{method: http.MethodGet, path: "/apps/:appId/envs/:env/clusters/:clusterName/namespaces/:namespaceName/releases/histories", access: accessRead,
			summary: "The namespace's releases in the cluster, newest first, as Apollo's release history: operation 0 a release, 1 a rollback; " +
				"isReleaseAbandoned true for a failed one; operationContext gives state (pending, applying, applied, failed), reason, number and each node's state",
			query: []queryParam{{"page", "integer", "page number from 0 (default 0)"}, {"size", "integer", "page size, 1-500 (default 10)"}},
			resp:  []ReleaseHistoryDTO{}, handler: s.releaseHistory},
		{method: http.MethodGet, path: "/envs/:env/releases/comparison", access: accessChecked,
			summary: "What changes from one release to another: ADDED, MODIFIED, DELETED keys (0 stands for no release)",
			query:   []queryParam{{"baseReleaseId", "integer", "the release compared from"}, {"toCompareReleaseId", "integer", "the release compared to"}},
			resp:    ReleaseDiffDTO{}, handler: s.compareReleases},
		{method: http.MethodGet, path: "/envs/:env/releases/:releaseId", access: accessChecked,
			summary: "One release by id (a read grant on its namespace)",
			resp:    ReleaseDTO{}, handler: s.getRelease},
		{method: http.MethodPut, path: "/envs/:env/releases/:releaseId/rollback", access: accessChecked,
			summary: "Roll back (a release grant on the release's namespace): a new release with the content of the release before releaseId " +
				"(of the same cluster), or of toReleaseId, rolled out like a publish; the namespace's items go back to it too. " +
				"A toReleaseId of another namespace or cluster is a 400",
			query:   []queryParam{operatorQuery, {"toReleaseId", "integer", "the release to go back to (default: the one before releaseId)"}},
			handler: s.rollback},

		{method: http.MethodGet, path: "/envs/:env/instances/by-release", access: accessChecked,
			summary: "The nodes (Apollo's instances) that run a release (a read grant on its namespace): those whose copy of the file " +
				"was last applied from it, paged; an instance is a node: id the node's id, appId the ADMQ cluster, clusterName the node's name, ip its managerIp, dataCenter its server's area (orgId)",
			query: []queryParam{{"releaseId", "integer", "the release"}, pageQuery, instanceSizeQuery},
			resp:  InstancePageDTO{}, handler: s.instancesByRelease},
		{method: http.MethodGet, path: "/envs/:env/instances/by-namespace", access: accessRead, scopeInQuery: true,
			summary: "The nodes holding the namespace's file in the cluster (every node of its component for default, the node for a node's cluster), " +
				"paged, each with the release it runs (configs is empty when none is known: never released, or an apply cut short)",
			query: append(scopeQuery(), queryParam{"instanceAppId", "string", "only instances of this app (an ADMQ cluster's nodes are of that cluster)"},
				pageQuery, instanceSizeQuery),
			resp: InstancePageDTO{}, handler: s.instancesByNamespace},
		{method: http.MethodGet, path: "/envs/:env/instances/by-namespace-and-releases-not-in", access: accessRead, scopeInQuery: true,
			summary: "The nodes holding the namespace's file in the cluster that are not known to run any of the releases: " +
				"those on another release, and those whose release is not known (configs empty)",
			query: append(scopeQuery(), queryParam{"releaseIds", "string", "release ids, separated by commas"}),
			resp:  []InstanceDTO{}, handler: s.instancesNotIn},

		{method: http.MethodGet, path: nsPath + "/branches", access: accessRead,
			summary: "The namespace's gray-release branch: never one (200, empty body); gray release is not supported, see POST",
			handler: s.getBranch},
	}
	for _, b := range []struct{ method, path string }{
		{http.MethodPost, "/branches"},
		{http.MethodDelete, "/branches/:branchName"},
		{http.MethodGet, "/branches/:branchName/rules"},
		{http.MethodPut, "/branches/:branchName/rules"},
		{http.MethodGet, "/branches/:branchName/items"},
		{http.MethodPost, "/branches/:branchName/releases"},
		{http.MethodPost, "/branches/:branchName/gray-del-releases"},
		{http.MethodPost, "/branches/:branchName/merge"},
	} {
		routes = append(routes, route{method: b.method, path: nsPath + b.path, access: accessRead,
			summary: "Refused (400): " + grayRefusal, handler: s.refuseBranch})
	}
	return routes
}
