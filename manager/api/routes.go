package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/admq/admq-manager/manager/auth"
)

// route is one console endpoint: how it is served and how it is documented.
type route struct {
	method, path string
	role         auth.Role // empty: no login needed
	summary      string
	query        []queryParam
	body         any // request body type, nil for none
	data         any // type of the envelope's data on success
	handler      echo.HandlerFunc
	// multipart: the body is multipart/form-data with a binary "file"
	// field, streamed by the handler, which limits its size itself.
	multipart bool
}

type queryParam struct {
	name, kind, desc string
}

var pageQuery = []queryParam{
	{"pageNum", "integer", "page number, from 1 (default 1)"},
	{"pageSize", "integer", "page size, 1-500 (default 10)"},
}

var idQuery = []queryParam{{"id", "string", "id of the record (may be sent in the JSON body instead)"}}

// flushSummary documents the seed's flush.
const flushSummary = "Flush a node's config file (seed 2.3.0.9): the node's effective file is rendered and stored as a numbered release " +
	"(who, when, title/comment, items, text), written on the node atomically (the previous version kept), the node restarted and its health checked by its agent; " +
	"a node not healthy in time gets its previous file back and is restarted again, and the release is marked failed with the reason and the last log lines. " +
	"Answers with the outcome once the node is settled (and the job, visible under /job): applied, unchanged (the node had the file: nothing done, no job), " +
	"restored, failed or interrupted. An offline agent is code 1253 with nothing recorded; a node another job holds 1410; a file that is not nodeId's, " +
	"or a node not of clusterId, code 2"

// routeTable lists every console route; New serves exactly these and the
// OpenAPI document describes exactly these.
func (a *API) routeTable() []route {
	return []route{
		{method: http.MethodPost, path: "/login", summary: "Log in; returns a bearer token",
			body: loginRequest{}, data: loginView{}, handler: a.login},
		{method: http.MethodGet, path: "/health", summary: "Liveness of the manager",
			data: healthView{}, handler: a.health},
		{method: http.MethodGet, path: "/openapi.json", summary: "This document",
			handler: a.openAPI},

		{method: http.MethodGet, path: "/user/info", role: auth.RoleViewer, summary: "The logged-in user",
			data: userView{}, handler: a.userInfo},
		{method: http.MethodPut, path: "/user/password", role: auth.RoleViewer, summary: "Change the logged-in user's password",
			body: passwordRequest{}, handler: a.changePassword},
		{method: http.MethodPost, path: "/user", role: auth.RoleAdmin, summary: "Create a user",
			body: userRequest{}, data: userView{}, handler: a.createUser},
		{method: http.MethodGet, path: "/user", role: auth.RoleAdmin, summary: "List users",
			query: pageQuery, data: pageView[userView]{}, handler: a.listUsers},
		{method: http.MethodDelete, path: "/user", role: auth.RoleAdmin, summary: "Delete a user",
			query: idQuery, body: idRequest{}, handler: a.deleteUser},

		{method: http.MethodPost, path: "/area", role: auth.RoleOperator, summary: "Add an availability area (seed 2.2.0.1)",
			body: areaRequest{}, data: areaView{}, handler: a.createArea},
		{method: http.MethodGet, path: "/area", role: auth.RoleViewer, summary: "List availability areas (seed 2.2.0.2)",
			query: pageQuery, data: pageView[areaView]{}, handler: a.listAreas},
		{method: http.MethodDelete, path: "/area", role: auth.RoleOperator, summary: "Delete an availability area (seed 2.2.0.3)",
			query: idQuery, body: idRequest{}, handler: a.deleteArea},

		{method: http.MethodPost, path: "/server", role: auth.RoleOperator, summary: "Add a server (seed 2.2.0.4). With password or privateKey the manager installs the agent over SSH " +
			"(host key trusted on first use; programDir and dataDir default to /opt/admq and /var/lib/admq) and answers once it is online, " +
			"or with code 1253/15/1251/1250/1264 having undone its work; credentials are forgotten afterwards unless keepPassword is true. " +
			"With async true it answers at once with the pending server and jobId, the job (type server_bootstrap) that installs the agent: " +
			"follow it with /job/detail or /job/events through its steps connect, detect, upload, install and online; a failed job removed the server " +
			"and keeps the code and data this call would have answered (code, errorData) and the step that failed. What is refused before SSH " +
			"(2, 1250, 1251 for a registered managerIp, 1264) is refused at once either way, with no job. " +
			"Without credentials the server waits for an agent installed by hand with a join token (async is then refused)",
			body: serverRequest{}, data: serverJobView{}, handler: a.createServer},
		{method: http.MethodGet, path: "/server", role: auth.RoleViewer, summary: "List servers with agent status and facts (seed 2.2.0.5)",
			query: append([]queryParam{
				{"id", "string", "only this server"},
				{"areaId", "string", "only servers of this area"},
				{"agentStatus", "string", "only servers whose agent is online, offline or pending"},
				{"hostname", "string", "only servers whose hostname (as their agent reports it) starts with this, case-sensitive"},
			}, pageQuery...),
			data: pageView[serverView]{}, handler: a.listServers},
		{method: http.MethodDelete, path: "/server", role: auth.RoleOperator, summary: "Delete a server, revoke its agent's certificate and close its session (seed 2.2.0.6). " +
			"Refused (code 1266) while a cluster node is on it; node removals queued for its agent (/cluster/cleanup) are dropped, and those nodes stay on the host",
			query: idQuery, body: idRequest{}, handler: a.deleteServer},
		{method: http.MethodGet, path: "/server/ping", role: auth.RoleViewer, summary: "Round trip to a server's agent through the tunnel",
			query: []queryParam{{"id", "string", "server id"}}, data: pingView{}, handler: a.pingServer},
		{method: http.MethodGet, path: "/server/metrics", role: auth.RoleViewer, summary: "The latest host metrics of servers whose agent has reported since the manager started, by managerIp: " +
			"CPU, load, memory and disk (every filesystem once per device); up is false once the reports stopped (the JSON view of /metrics/fleet)",
			query: append([]queryParam{{"serverIds", "string", "only these servers: ids separated by commas, at most 500"}}, pageQuery...),
			data:  pageView[serverMetricsView]{}, handler: a.listServerMetrics},
		{method: http.MethodGet, path: "/server/metrics/summary", role: auth.RoleViewer, summary: "The fleet's host metrics summed up over the servers that are up: mean CPU, memory and disk usage, " +
			"and how many servers fall in each tenth of usage (histograms of 10 buckets, 0-10 % first)",
			data: fleetSummaryView{}, handler: a.fleetSummary},
		{method: http.MethodDelete, path: "/server/hostkey", role: auth.RoleOperator, summary: "Forget the SSH host key recorded on first use for managerIp:sshPort (after the host was reinstalled), so the next bootstrap records the new one",
			query: []queryParam{
				{"managerIp", "string", "the server's address (may be sent in the JSON body instead)"},
				{"sshPort", "integer", "its SSH port (default 22)"},
			}, body: hostKeyRequest{}, handler: a.forgetHostKey},

		{method: http.MethodPost, path: "/agent/token", role: auth.RoleAdmin, summary: "Create a join token for agents",
			body: tokenRequest{}, data: createdTokenView{}, handler: a.createToken},
		{method: http.MethodGet, path: "/agent/token", role: auth.RoleAdmin, summary: "List join tokens (secrets are never shown again)",
			query: pageQuery, data: pageView[tokenView]{}, handler: a.listTokens},
		{method: http.MethodDelete, path: "/agent/token", role: auth.RoleAdmin, summary: "Revoke a join token",
			query: []queryParam{{"id", "string", "token id (the part before the dot)"}}, body: tokenIDRequest{}, handler: a.revokeToken},

		{method: http.MethodPost, path: "/consumer", role: auth.RoleAdmin, summary: "Register a third-party app of the Apollo-compatible Open API (seed 004, 2.1). " +
			"data.token is its token, shown this once (only its hash is kept): send it as it is in the Authorization header of /openapi/v1 calls. " +
			"ttlSeconds 0 or absent: the token never expires. An unrevoked app with the same appId is code 1291",
			body: consumerRequest{}, data: createdConsumerView{}, handler: a.createConsumer},
		{method: http.MethodGet, path: "/consumer", role: auth.RoleAdmin, summary: "List third-party apps, newest first (tokens are never shown again)",
			query: pageQuery, data: pageView[consumerView]{}, handler: a.listConsumers},
		{method: http.MethodDelete, path: "/consumer", role: auth.RoleAdmin, summary: "Revoke a third-party app: its token stops working at once (code 1290 when it does not exist)",
			query: idQuery, body: idRequest{}, handler: a.revokeConsumer},
		{method: http.MethodPost, path: "/consumer/grant", role: auth.RoleAdmin, summary: "Grant a third-party app part of an ADMQ cluster (seed 004, 2.2): appId is the cluster's name; " +
			"namespaceName (a config file) and clusterName (default, or a node's name) omitted mean all of them. " +
			"modify allows editing items, release allows publishing and rolling back; reads need any grant. " +
			"Codes 1290 (no such app), 1294 (app revoked), 1293 (a grant on this scope exists), 1001 (no such ADMQ cluster), 2 (no such cluster or namespace in it)",
			body: grantRequest{}, data: grantView{}, handler: a.createGrant},
		{method: http.MethodGet, path: "/consumer/grant", role: auth.RoleAdmin, summary: "List a third-party app's grants, oldest first",
			query: []queryParam{{"consumerId", "string", "the third-party app's id"}}, data: []grantView{}, handler: a.listGrants},
		{method: http.MethodDelete, path: "/consumer/grant", role: auth.RoleAdmin, summary: "Remove a grant; it stops applying at once (code 1292 when it does not exist)",
			query: idQuery, body: idRequest{}, handler: a.deleteGrant},

		{method: http.MethodGet, path: "/audit", role: auth.RoleAdmin, summary: "The audit log of every change, newest first, filtered by user, method, path and time",
			query: append(auditQuery, pageQuery...), data: pageView[auditView]{}, handler: a.listAudit},

		{method: http.MethodPost, path: "/package", role: auth.RoleOperator, summary: "Upload a package named name-Vversion-arch.ext (.tar.gz, .tgz or .tar) with admq-package.json at its root, as multipart field \"file\"",
			multipart: true, data: packageView{}, handler: a.uploadPackage},
		{method: http.MethodGet, path: "/package", role: auth.RoleViewer, summary: "List packages, newest first (seed 2.2.0.7)",
			query: pageQuery, data: pageView[packageView]{}, handler: a.listPackages},
		{method: http.MethodPut, path: "/package/status", role: auth.RoleOperator, summary: "Enable (effective 1) or disable (effective 0) a package",
			body: packageStatusRequest{}, data: packageView{}, handler: a.setPackageStatus},
		{method: http.MethodDelete, path: "/package", role: auth.RoleOperator, summary: "Delete a package and its file",
			query: idQuery, body: idRequest{}, handler: a.deletePackage},

		{method: http.MethodPost, path: "/admq/cluster", role: auth.RoleOperator, summary: "Create a cluster (seed 2.3.0.1): nodes from zkList (coordinator), storageList (storage) and brokerList (broker), " +
			"each {managerIp of a registered server, programDir, dataDir, serverPort?}; dirs may use {cluster} (the name) and {nodeDir} (\"<component>-<ordinal>\", e.g. coordinator-1). " +
			"packageId provides every component, or packages gives one per component. Each node's config files are imported from its package as config items. " +
			"All or nothing; codes 1000, 1262, 1250, 1207, 1401 (component not in package), 1402 (server twice), 1403 (package disabled)",
			body: clusterRequest{}, data: clusterView{}, handler: a.createCluster},
		{method: http.MethodPost, path: "/admq/cluster/node", role: auth.RoleOperator, summary: "Add nodes of one component (coordinator, storage, broker or another the package provides) to a cluster, " +
			"from a package of its own; same rules as creating a cluster. Ordinals (a coordinator's myid) continue after the highest ever given",
			body: addNodesRequest{}, data: []nodeView{}, handler: a.addClusterNodes},
		{method: http.MethodGet, path: "/admq/cluster", role: auth.RoleViewer, summary: "List clusters, newest first, with their node count and components",
			query: pageQuery, data: pageView[clusterView]{}, handler: a.listClusters},
		{method: http.MethodGet, path: "/cluster/node", role: auth.RoleViewer, summary: "List a cluster's nodes with their config files (seed 2.3.0.4), by component then ordinal. " +
			"runStatus, pid, startTime, restarts and lastExit are what the nodes' agents report now (runStatus unknown and pid 0 when the agent is offline or does not answer within 2 s)",
			query: append([]queryParam{{"clusterId", "string", "the cluster"}}, pageQuery...),
			data:  pageView[nodeView]{}, handler: a.listClusterNodes},
		{method: http.MethodGet, path: "/cluster/node/config/file", role: auth.RoleViewer, summary: "List a node's config files: " +
			"each overlays the cluster layer clusterFileId (see /cluster/config/file) and is written at target on the node",
			query: []queryParam{{"nodeId", "string", "the node"}}, data: []configFileView{}, handler: a.listNodeConfigFiles},
		{method: http.MethodGet, path: "/cluster/node/config", role: auth.RoleViewer, summary: "List a node's config file's effective items, newest first (seed 2.3.0.5): " +
			"the cluster layer overlaid key by key with the node's overrides; source says \"cluster\" (the layer's item as it is, clusterItemId) " +
			"or \"node\" (the node overrides its value or on/off, or the key is the node's own)",
			query: append([]queryParam{{"configFileId", "string", "the node's config file"}}, pageQuery...),
			data:  pageView[configItemView]{}, handler: a.listConfigItems},
		{method: http.MethodPost, path: "/cluster/node/config", role: auth.RoleOperator, summary: "Add a key of their own to nodes' config files (seed 2.3.0.6): " +
			"configFileId and every file id of fileMap (the names are not used) get it, all or none; it takes effect at the next flush. " +
			"A key a file has (from its cluster layer or its own) is code 1005; cid, when given, must be every file's cluster. " +
			"Keys: at most 128 characters, no control characters; values at most 20000 characters, a template that may use the manifest's {variables} " +
			"({{ and }} are literal braces); describes at most 256. A properties value is written escaped as java.util.Properties reads it. " +
			"Bad input is code 2 naming the field. Answers with the item of configFileId's file",
			body: configItemRequest{}, data: configItemView{}, handler: a.addConfigItem},
		{method: http.MethodPut, path: "/cluster/node/config", role: auth.RoleOperator, summary: "Change a node's item: configValue overrides the cluster layer's value " +
			"for this node (the layer's value itself drops the override); describes changes only a key of the node's own. Code 1004 when it does not exist, 2 for a bad value",
			body: configItemUpdate{}, data: configItemView{}, handler: a.updateNodeConfigItem},
		{method: http.MethodDelete, path: "/cluster/node/config", role: auth.RoleOperator, summary: "Reset a node's item: an item of the cluster layer loses the node's overrides " +
			"(it follows the layer again); a key of the node's own is deleted. Code 1004 when it does not exist",
			query: idQuery, body: idRequest{}, handler: a.resetNodeConfigItem},
		{method: http.MethodPut, path: "/cluster/node/config/status", role: auth.RoleOperator, summary: "Enable (effective 1) or disable (effective 0) a node's item for that node (seed 2.3.0.7); " +
			"the cluster layer's own on/off drops the override",
			body: itemStatusRequest{}, handler: a.setConfigItemStatus},
		{method: http.MethodPut, path: "/cluster/node/config/status/batch", role: auth.RoleOperator, summary: "Enable or disable nodes' items at once (seed 2.3.0.8): all of them, or none if one does not exist (code 1004)",
			body: itemsStatusRequest{}, handler: a.setConfigItemsStatus},

		{method: http.MethodGet, path: "/cluster/config/file", role: auth.RoleViewer, summary: "List a cluster's config files as cluster layers: one per component and file name, " +
			"imported from the package with the cluster's first node of the component; every node of the component overlays it",
			query: []queryParam{{"clusterId", "string", "the cluster"}}, data: []clusterFileView{}, handler: a.listClusterConfigFiles},
		{method: http.MethodGet, path: "/cluster/config", role: auth.RoleViewer, summary: "List the items of a cluster layer, newest first",
			query: append([]queryParam{{"configFileId", "string", "the cluster layer's file"}}, pageQuery...),
			data:  pageView[configItemView]{}, handler: a.listClusterConfigItems},
		{method: http.MethodPost, path: "/cluster/config", role: auth.RoleOperator, summary: "Add a key to a cluster layer: every node of the layer gets it " +
			"(a node that had the key of its own keeps its value as an override). Same rules as /cluster/node/config; code 1005 when the layer has the key",
			body: clusterItemRequest{}, data: configItemView{}, handler: a.addClusterConfigItem},
		{method: http.MethodPut, path: "/cluster/config", role: auth.RoleOperator, summary: "Change a cluster layer's item: value and/or describes, for every node that does not override it",
			body: configItemUpdate{}, data: configItemView{}, handler: a.updateClusterConfigItem},
		{method: http.MethodDelete, path: "/cluster/config", role: auth.RoleOperator, summary: "Delete a cluster layer's item: nodes that override its value keep the key as their own, " +
			"the others lose it. A raw file's content cannot be deleted (code 2)",
			query: idQuery, body: idRequest{}, handler: a.deleteClusterConfigItem},
		{method: http.MethodPut, path: "/cluster/config/status", role: auth.RoleOperator, summary: "Enable (effective 1) or disable (effective 0) a cluster layer's item for every node that does not override it",
			body: itemStatusRequest{}, handler: a.setClusterItemStatus},
		{method: http.MethodPut, path: "/cluster/config/status/batch", role: auth.RoleOperator, summary: "Enable or disable cluster layer items at once: all of them, or none if one does not exist (code 1004)",
			body: itemsStatusRequest{}, handler: a.setClusterItemsStatus},
		{method: http.MethodPost, path: "/cluster/node/config/flush", role: auth.RoleOperator, summary: flushSummary,
			body: flushRequest{}, data: flushView{}, handler: a.flushNodeConfig},
		{method: http.MethodPut, path: "/cluster/node/config/flush", role: auth.RoleOperator, summary: flushSummary + " (PUT, as the seed's example sends it)",
			body: flushRequest{}, data: flushView{}, handler: a.flushNodeConfig},
		{method: http.MethodPost, path: "/cluster/config/flush", role: auth.RoleOperator, summary: "Roll a config file's draft out over the nodes of its component " +
			"(all, or nodeIds) as a job: one release of the nodes whose file changes, applied batchSize nodes at a time (default 1; allAtOnce: every node in one batch, " +
			"the nodes of a batch in parallel), each node written atomically, restarted and health-checked by its agent, and given its previous file back when unhealthy; " +
			"the next batch waits for the one before. It stops at the first failure (or past failureBudget) and the nodes not reached are left alone. " +
			"A component that keeps a quorum (coordinators) never has more than f of its 2f+1 nodes down, counting nodes down already, and its leader " +
			"(the manifest's role probe) goes last. Answers at once: outcome started with the job and release, or unchanged when no node's file would change (no job). " +
			"Codes: 1253 an agent offline, 1410 a node held by another job, 1411 the quorum would be lost, 1001/1002/1003 unknown ids, 2 bad input; nothing is recorded then",
			body: rolloutRequest{}, data: rolloutView{}, handler: a.rolloutConfig},
		{method: http.MethodPost, path: "/cluster/config/rollback", role: auth.RoleOperator, summary: "Roll a config file back to an earlier release: a new release " +
			"with that release's content (and the draft set back to its items), rolled out like /cluster/config/flush over that release's nodes still in the cluster " +
			"(or nodeIds). A release of another file is code 1413; an unknown one 1412",
			body: rollbackRequest{}, data: rolloutView{}, handler: a.rollbackConfig},
		{method: http.MethodPost, path: "/cluster/restart", role: auth.RoleOperator, summary: "Restart the nodes of a component (or nodeIds) batch by batch, " +
			"each health-checked by its agent before the next batch, with the same batches, failure budget and quorum rule as /cluster/config/flush; no config changes",
			body: restartRequest{}, data: rolloutView{}, handler: a.restartNodes},
		{method: http.MethodGet, path: "/cluster/config/release", role: auth.RoleViewer, summary: "List a config file's releases, newest first: every flush, rollout, rollback " +
			"and deployment that changed it, numbered from 1; with nodeId only those that include that node",
			query: append([]queryParam{{"configFileId", "string", "the cluster layer's file"}, {"nodeId", "string", "only releases that include this node"}}, pageQuery...),
			data:  pageView[releaseView]{}, handler: a.listReleases},
		{method: http.MethodGet, path: "/cluster/config/release/detail", role: auth.RoleViewer, summary: "A release: the cluster layer's items as they were and, per node, " +
			"its items, the rendered file, and how applying it went",
			query: []queryParam{{"id", "string", "release id"}}, data: releaseDetailView{}, handler: a.releaseDetail},
		{method: http.MethodGet, path: "/cluster/config/release/diff", role: auth.RoleViewer, summary: "How two releases of a file differ: the cluster layer's keys added, " +
			"changed and removed, and per node its keys and a unified line diff of its rendered file. Releases of two files are code 1413",
			query: []queryParam{{"from", "string", "release id"}, {"to", "string", "release id"}, {"nodeId", "string", "only this node"}},
			data:  diffView{}, handler: a.diffReleases},
		{method: http.MethodDelete, path: "/cluster", role: auth.RoleOperator, summary: "Delete a cluster with its nodes and their config (seed 2.3.0.11). " +
			"First every node whose agent is online is stopped and forgotten by its agent, and its programDir and dataDir are removed when the agent created them for the node " +
			"(its install marker); a dir that existed before, a system dir, a dir directly under / or one holding a mount point or another program's data is kept, " +
			"and listed in the node's notCleaned entry (keptDirs, reason). Nodes whose agent is offline, or whose removal failed, are listed in notCleaned, and the records are deleted anyway. " +
			"For a node whose agent is offline (or went away during the removal) the removal is queued, with queued true and reason \"agent offline: cleaned when it reconnects\": " +
			"the same removal is sent when the agent reconnects (a failed one is retried while the agent is online, after 1, 2, 4 … minutes, at most an hour), see /cluster/cleanup. " +
			"Other nodes in notCleaned (queued false) stay on their host. A cluster with a node being deployed is code 1407",
			query: idQuery, body: idRequest{}, data: deleteClusterView{}, handler: a.deleteCluster},
		{method: http.MethodGet, path: "/cluster/cleanup", role: auth.RoleViewer, summary: "List the queued removals of deleted clusters' nodes whose agent was offline, oldest first: " +
			"each is sent when its server's agent reconnects and deleted once the agent has stopped the node and removed its dirs; attempts and lastError tell of failed tries. " +
			"A deleted server's queued removals are dropped",
			query: append([]queryParam{{"serverId", "string", "only this server's"}}, pageQuery...),
			data:  pageView[cleanupView]{}, handler: a.listCleanups},

		{method: http.MethodPost, path: "/admq/cluster/deploy", role: auth.RoleOperator, summary: "Deploy every node of a cluster (seed 2.3.0.3) as a job: " +
			"coordinators, then storage, then brokers, then other components, each tier healthy before the next; per node transfer, configure, start, health. " +
			"Answers at once with the pending job; follow it with /job/detail or /job/events. Code 1406 when the cluster has no node, " +
			"1407 (nothing stored) when a node's agent is offline or a node is deploying",
			body: deployClusterRequest{}, data: jobView{}, handler: a.deployCluster},
		{method: http.MethodPost, path: "/admq/cluster/node/deploy", role: auth.RoleOperator, summary: "Deploy one node (seed 2.3.0.2) as a job, like /admq/cluster/deploy. " +
			"Code 1406 when the node does not exist, 1407 when its agent is offline or it is deploying; clusterId, when given, must be the node's cluster",
			body: deployNodeRequest{}, data: jobView{}, handler: a.deployClusterNode},
		{method: http.MethodGet, path: "/job", role: auth.RoleViewer, summary: "List jobs, newest first: deployments, config rollouts and SSH bootstraps (type server_bootstrap, with serverId instead of clusterId)",
			query: append([]queryParam{{"clusterId", "string", "only this cluster's jobs"}}, pageQuery...),
			data:  pageView[jobView]{}, handler: a.listJobs},
		{method: http.MethodGet, path: "/job/detail", role: auth.RoleViewer, summary: "A deployment job with its steps, by node (code 1408 when it does not exist)",
			query: []queryParam{{"id", "string", "job id"}}, data: jobDetailView{}, handler: a.jobDetail},
		{method: http.MethodGet, path: "/job/events", role: auth.RoleViewer, summary: "A deployment job's progress as text/event-stream: first a \"job\" event and one \"step\" event per step, " +
			"then a \"step\" or \"job\" event per change, and \"done\" with the final job, after which the stream closes. " +
			"A manager shutting down closes the stream without \"done\": follow the job again once it is back. " +
			"Errors before the stream starts are envelopes",
			query: []queryParam{{"id", "string", "job id"}}, data: stepView{}, handler: a.jobEvents},
		{method: http.MethodPost, path: "/admq/cmd", role: auth.RoleOperator, summary: "Start, stop or restart a node now through its agent (seed 2.3.0.10); returns the node's new state. " +
			"An offline agent is code 1253 and nothing is queued; an unknown node 1002; a node never installed on its server 1409; a node the agent is busy with 1407; a bad cmd 2",
			body: cmdRequest{}, data: nodeStateView{}, handler: a.nodeCommand},
		{method: http.MethodGet, path: "/cluster/node/log", role: auth.RoleViewer, summary: "The end of a node's log, from its agent (code 1253 when the agent is offline, 1409 when the node was never installed on its server)",
			query: []queryParam{{"id", "string", "node id"}, {"maxBytes", "integer", "bytes from the end, 1-1048576 (default 65536)"}},
			data:  nodeLogView{}, handler: a.nodeLog},

		{method: http.MethodPost, path: "/fleet/operation", role: auth.RoleOperator, summary: "Run one operation on many servers or nodes at once, as one call: " +
			"kind ping or facts on servers (serverIds, areaId or all), command (start|stop|restart) or log_lines (lines in the last MiB of each node's log) on nodes " +
			"(nodeIds, or clusterId with an optional component). At most concurrency targets (default 64, 1-1024) are worked on at once, each within timeoutMs " +
			"(default 10000); targets whose agent is offline are answered at once without a call. Answers at once with the running operation; " +
			"follow it with /fleet/operation/events or /fleet/operation/detail. Operations are kept in memory for an hour (the last 100); an unknown server is 1262, node 1002",
			body: fleetOpRequest{}, data: fleetOpView{}, handler: a.startFleetOp},
		{method: http.MethodGet, path: "/fleet/operation", role: auth.RoleViewer, summary: "List the fleet operations kept, newest first",
			query: pageQuery, data: pageView[fleetOpView]{}, handler: a.listFleetOps},
		{method: http.MethodGet, path: "/fleet/operation/detail", role: auth.RoleViewer, summary: "A fleet operation's summary (total, done, ok, failed, offline) and its results, paged, " +
			"in the order they arrived (code 1420 when it is not kept)",
			query: append([]queryParam{{"id", "string", "operation id"}, {"status", "string", "only results with this status: ok, failed or offline"}}, pageQuery...),
			data:  fleetOpDetailView{}, handler: a.fleetOpDetail},
		{method: http.MethodGet, path: "/fleet/operation/events", role: auth.RoleViewer, summary: "A fleet operation as text/event-stream: an \"operation\" event, " +
			"a \"result\" event per target as it arrives (those already in first), and \"done\" with the final summary, after which the stream closes",
			query: []queryParam{{"id", "string", "operation id"}}, data: fleetOpResultView{}, handler: a.fleetOpEvents},
	}
}
