package testenv

import (
	"net/http"
	"net/url"
	"testing"
)

// ConfigFile is a node's config file (GET /cluster/node/config/file) or
// a cluster layer (GET /cluster/config/file).
type ConfigFile struct {
	ID            string `json:"id"`
	NodeID        string `json:"nodeId"`
	ClusterFileID string `json:"clusterFileId"`
	Component     string `json:"component"`
	Name          string `json:"name"`
	Format        string `json:"format"`
	Target        string `json:"target"`
}

// ConfigItem is an item of a node's file or a layer.
type ConfigItem struct {
	ID            string `json:"id"`
	ConfigKey     string `json:"configKey"`
	ConfigValue   string `json:"configValue"`
	Effective     int    `json:"effective"`
	Describes     string `json:"describes"`
	CreateTime    string `json:"createTime"`
	UpdateTime    string `json:"updateTime"`
	CreateUser    string `json:"createUser"`
	UpdateUser    string `json:"updateUser"`
	Source        string `json:"source"`
	ClusterItemID string `json:"clusterItemId"`
}

// LayerFile returns the cluster's layer of file name for component.
func (c *Client) LayerFile(t testing.TB, clusterID, component, name string) ConfigFile {
	t.Helper()
	var files []ConfigFile
	c.OK(t, http.MethodGet, "/cluster/config/file?clusterId="+url.QueryEscape(clusterID), nil, &files)
	for _, f := range files {
		if f.Component == component && f.Name == name {
			return f
		}
	}
	t.Fatalf("cluster %s has no %s file %s: %+v", clusterID, component, name, files)
	return ConfigFile{}
}

// NodeFile returns the node's config file named name.
func (c *Client) NodeFile(t testing.TB, nodeID, name string) ConfigFile {
	t.Helper()
	var files []ConfigFile
	c.OK(t, http.MethodGet, "/cluster/node/config/file?nodeId="+url.QueryEscape(nodeID), nil, &files)
	for _, f := range files {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("node %s has no file %s: %+v", nodeID, name, files)
	return ConfigFile{}
}

// Items lists every item of a node file (route /cluster/node/config) or a
// layer (/cluster/config), by key.
func (c *Client) Items(t testing.TB, route, fileID string) map[string]ConfigItem {
	t.Helper()
	var page struct {
		List []ConfigItem `json:"list"`
	}
	c.OK(t, http.MethodGet, route+"?configFileId="+url.QueryEscape(fileID)+"&"+listAll, nil, &page)
	out := map[string]ConfigItem{}
	for _, it := range page.List {
		out[it.ConfigKey] = it
	}
	return out
}

// SetLayerValue sets key's value in the cluster layer of file fileID,
// adding the key when the layer lacks it.
func (c *Client) SetLayerValue(t testing.TB, fileID, key, value string) {
	t.Helper()
	if it, ok := c.Items(t, "/cluster/config", fileID)[key]; ok {
		c.OK(t, http.MethodPut, "/cluster/config", map[string]any{"id": it.ID, "configValue": value}, nil)
		return
	}
	c.OK(t, http.MethodPost, "/cluster/config", map[string]any{"configFileId": fileID, "configKey": key, "configValue": value}, nil)
}

// FlushResult is the answer of POST /cluster/node/config/flush.
type FlushResult struct {
	Outcome       string `json:"outcome"`
	Detail        string `json:"detail"`
	JobID         string `json:"jobId"`
	ReleaseID     string `json:"releaseId"`
	ReleaseNumber int    `json:"releaseNumber"`
	PidBefore     int    `json:"pidBefore"`
	PidAfter      int    `json:"pidAfter"`
	Healthy       *bool  `json:"healthy"`
	DurationMs    int64  `json:"durationMs"`
}

// Flush flushes a node's config file, which must be accepted.
func (c *Client) Flush(t testing.TB, clusterID, nodeID, nodeFileID string) FlushResult {
	t.Helper()
	var r FlushResult
	c.OK(t, http.MethodPost, "/cluster/node/config/flush", map[string]any{"configFileId": nodeFileID, "clusterId": clusterID, "nodeId": nodeID}, &r)
	return r
}

// Rollout is the answer of the rollout routes.
type Rollout struct {
	Outcome       string   `json:"outcome"`
	JobID         string   `json:"jobId"`
	ReleaseID     string   `json:"releaseId"`
	ReleaseNumber int      `json:"releaseNumber"`
	NodeIDs       []string `json:"nodeIds"`
}

// Rollout starts POST route (/cluster/config/flush, /cluster/config/rollback,
// /cluster/restart) with body, which must be accepted.
func (c *Client) Rollout(t testing.TB, route string, body map[string]any) Rollout {
	t.Helper()
	var r Rollout
	c.OK(t, http.MethodPost, route, body, &r)
	return r
}

// ReleaseNode is one node of a release.
type ReleaseNode struct {
	NodeID  string `json:"nodeId"`
	NodeDir string `json:"nodeDir"`
	Path    string `json:"path"`
	State   string `json:"state"`
	Detail  string `json:"detail"`
	Content string `json:"content"`
}

// Release is GET /cluster/config/release/detail.
type Release struct {
	ID     string        `json:"id"`
	Number int           `json:"number"`
	Kind   string        `json:"kind"`
	State  string        `json:"state"`
	Reason string        `json:"reason"`
	Nodes  []ReleaseNode `json:"nodes"`
}

// Release returns a release with its nodes.
func (c *Client) Release(t testing.TB, id string) Release {
	t.Helper()
	var r Release
	c.OK(t, http.MethodGet, "/cluster/config/release/detail?id="+url.QueryEscape(id), nil, &r)
	return r
}

// Releases lists a layer file's releases, newest first.
func (c *Client) Releases(t testing.TB, fileID string) []Release {
	t.Helper()
	var page struct {
		List []Release `json:"list"`
	}
	c.OK(t, http.MethodGet, "/cluster/config/release?configFileId="+url.QueryEscape(fileID)+"&"+listAll, nil, &page)
	return page.List
}
