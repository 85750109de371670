package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/test/workloads"
)

// configItems makes a cluster with one broker node, on the first agent's
// server, from a package whose config file has n properties (imported as
// the cluster layer's items), and hammers the list of that node's items
// (GET /cluster/node/config, page size -page-size).
func (t *loadTest) configItems(ctx context.Context, dir string, n int) error {
	var props strings.Builder
	for i := range n {
		fmt.Fprintf(&props, "load.item.%05d=value-%05d\n", i, i)
	}
	m := manifest.Manifest{
		ManifestVersion: 1, Name: "admq-loadcfg", Version: "1.0", MqType: 3,
		Description: "a broker with a config file of many items, for test/load",
		Components: map[string]manifest.Component{"broker": {
			Start:       []string{"/bin/sleep", "infinity"},
			ServerPort:  9092,
			Health:      manifest.Health{TCP: "{dataIp}:{serverPort}"},
			ConfigFiles: []manifest.ConfigFile{{Name: "server.properties", Path: "conf/server.properties"}},
		}},
	}
	pkgPath, err := workloads.BuildFile(dir, "admq-loadcfg-V1.0-x86.tar.gz", m,
		workloads.Entry{Name: "conf/server.properties", Data: []byte(props.String())})
	if err != nil {
		return err
	}
	pkgID, err := t.api.upload(ctx, pkgPath)
	if err != nil {
		return err
	}
	ip := t.fleet.agents[len(t.fleet.agents)-1].ip
	var cl struct {
		Nodes []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	err = t.api.call(ctx, http.MethodPost, "/admq/cluster", map[string]any{
		"name": "load-config-items", "packageId": pkgID,
		"zkList": []any{}, "storageList": []any{},
		"brokerList": []map[string]any{{"managerIp": ip, "programDir": "/opt/admq-load", "dataDir": "/var/lib/admq-load"}},
	}, &cl)
	if err != nil {
		return err
	}
	if len(cl.Nodes) != 1 {
		return fmt.Errorf("cluster for the config items: %d nodes, want 1", len(cl.Nodes))
	}
	var files []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := t.api.call(ctx, http.MethodGet, "/cluster/node/config/file?nodeId="+url.QueryEscape(cl.Nodes[0].ID), nil, &files); err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("node %s has %d config files, want 1", cl.Nodes[0].ID, len(files))
	}
	q := url.Values{"configFileId": {files[0].ID}, "pageNum": {"1"}, "pageSize": {strconv.Itoa(t.opt.pageSize)}}
	var page struct {
		Total int `json:"total"`
	}
	if err := t.api.call(ctx, http.MethodGet, "/cluster/node/config?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if page.Total != n {
		return fmt.Errorf("node config file lists %d items, want %d", page.Total, n)
	}
	t.log.Info("config items throughput", "items", n, "clients", t.opt.apiClients, "for", t.opt.apiDuration)
	label := fmt.Sprintf("API GET /cluster/node/config, %d items, pageSize=%d", n, t.opt.pageSize)
	return t.timedHammer(ctx, label, "cpu-config-items", t.opt.apiDuration, "/cluster/node/config?"+q.Encode())
}

// upload sends the package file at path (POST /package) and returns its id.
func (a *apiClient) upload(ctx context.Context, path string) (string, error) {
	body, contentType, err := workloads.UploadBody(path)
	if err != nil {
		return "", err
	}
	defer body.Close()
	var pkg struct {
		ID string `json:"id"`
	}
	if err := a.do(ctx, http.MethodPost, "/package", body, contentType, &pkg); err != nil {
		return "", fmt.Errorf("upload %s: %w", filepath.Base(path), err)
	}
	return pkg.ID, nil
}
