package api

import (
	"strings"
	"testing"
)

type layerItem struct {
	ID, ConfigKey, ConfigValue, Describes, Source, ClusterItemID string
	Effective                                                    int
}

// TestClusterLayerAPI: the cluster layer's routes edit every node's file
// at once, the node routes make exceptions, and bad input names the
// console's fields.
func TestClusterLayerAPI(t *testing.T) {
	h, op, zk, _ := newClusterHarness(t)
	viewer := h.userToken("viewer")
	r := h.call("POST", "/admq/cluster", op, map[string]any{"name": "c1", "packageId": zk, "zkList": zkList("10.1.0.1", "10.1.0.2", "10.1.0.3")})
	want(t, r, 200, 0)
	cl := decodeData[clusterItem](t, r)

	r = h.call("GET", "/cluster/config/file?clusterId="+cl.ID, viewer, nil)
	want(t, r, 200, 0)
	layers := decodeData[[]struct{ ID, ClusterID, Component, Name, Format, Target string }](t, r)
	if len(layers) != 1 || layers[0].Name != "zoo.cfg" || layers[0].Component != "coordinator" || layers[0].Target != "conf/zoo.cfg" {
		t.Fatalf("layers %+v", layers)
	}
	want(t, h.call("GET", "/cluster/config/file?clusterId=77", viewer, nil), 404, codeClusterNotExist)
	layer := layers[0].ID

	// The node files of each node, and an item lister.
	nodeFile := make([]string, 3)
	for i, n := range cl.Nodes {
		r := h.call("GET", "/cluster/node/config/file?nodeId="+n.ID, viewer, nil)
		files := decodeData[[]struct{ ID, ClusterFileID, Target string }](t, r)
		if len(files) != 1 || files[0].ClusterFileID != layer {
			t.Fatalf("node files %+v", files)
		}
		nodeFile[i] = files[0].ID
	}
	nodeItems := func(i int) map[string]layerItem {
		t.Helper()
		r := h.call("GET", "/cluster/node/config?pageSize=100&configFileId="+nodeFile[i], viewer, nil)
		want(t, r, 200, 0)
		out := map[string]layerItem{}
		for _, it := range decodeData[page[layerItem]](t, r).List {
			out[it.ConfigKey] = it
		}
		return out
	}

	// One key added to the layer reaches every node.
	r = h.call("POST", "/cluster/config", op, map[string]any{"configFileId": layer, "configKey": "maxClientCnxns", "configValue": "60", "describes": "per client"})
	want(t, r, 200, 0)
	added := decodeData[layerItem](t, r)
	for i := range nodeFile {
		if it := nodeItems(i)["maxClientCnxns"]; it.ConfigValue != "60" || it.Source != "cluster" || it.ClusterItemID != added.ID || it.Describes != "per client" {
			t.Fatalf("node %d: %+v", i, it)
		}
	}
	want(t, h.call("POST", "/cluster/config", viewer, map[string]any{"configFileId": layer, "configKey": "x", "configValue": "1"}), 403, codePermissionDeny)
	want(t, h.call("POST", "/cluster/config", op, map[string]any{"configFileId": layer, "configKey": "maxClientCnxns", "configValue": "1"}), 409, codeConfigItemExist)

	// Node 2 overrides it; a layer edit reaches the others only.
	over := nodeItems(1)["maxClientCnxns"]
	r = h.call("PUT", "/cluster/node/config", op, map[string]any{"id": over.ID, "configValue": "7"})
	want(t, r, 200, 0)
	if it := decodeData[layerItem](t, r); it.Source != "node" || it.ConfigValue != "7" {
		t.Fatalf("override %+v", it)
	}
	want(t, h.call("PUT", "/cluster/config", op, map[string]any{"id": added.ID, "configValue": "100"}), 200, 0)
	if a, b := nodeItems(0)["maxClientCnxns"], nodeItems(1)["maxClientCnxns"]; a.ConfigValue != "100" || b.ConfigValue != "7" {
		t.Fatalf("after the layer edit: %+v %+v", a, b)
	}
	// Reset: node 2 follows the layer again.
	want(t, h.call("DELETE", "/cluster/node/config", op, map[string]any{"id": over.ID}), 200, 0)
	if b := nodeItems(1)["maxClientCnxns"]; b.ConfigValue != "100" || b.Source != "cluster" {
		t.Fatalf("after reset: %+v", b)
	}
	// Off in the layer, on for node 3.
	want(t, h.call("PUT", "/cluster/config/status", op, map[string]any{"id": added.ID, "effective": 0}), 200, 0)
	want(t, h.call("PUT", "/cluster/node/config/status", op, map[string]any{"id": nodeItems(2)["maxClientCnxns"].ID, "effective": 1}), 200, 0)
	if a, c := nodeItems(0)["maxClientCnxns"], nodeItems(2)["maxClientCnxns"]; a.Effective != 0 || c.Effective != 1 || c.Source != "node" {
		t.Fatalf("on/off: %+v %+v", a, c)
	}
	want(t, h.call("PUT", "/cluster/config/status/batch", op, map[string]any{"ids": []string{added.ID, "42"}, "effective": 1}), 404, codeConfigItemNotExist)

	// fileMap: one call gives two nodes a key of their own.
	r = h.call("POST", "/cluster/node/config", op, map[string]any{"fileMap": map[string]string{nodeFile[1]: "zoo.cfg"},
		"configFileId": nodeFile[0], "cid": cl.ID, "configKey": "snapCount", "configValue": "1000"})
	want(t, r, 200, 0)
	if a, b, c := nodeItems(0)["snapCount"], nodeItems(1)["snapCount"], nodeItems(2)["snapCount"]; a.Source != "node" || b.ConfigValue != "1000" || c.ID != "" {
		t.Fatalf("fileMap: %+v %+v %+v", a, b, c)
	}

	// Bad input names the console's fields, and changes nothing.
	for _, tc := range []struct {
		name, route, method string
		body                map[string]any
		field               string
	}{
		{"key with a line break", "/cluster/config", "POST", map[string]any{"configFileId": layer, "configKey": "a\nb", "configValue": "1"}, "configKey"},
		{"key too long", "/cluster/node/config", "POST", map[string]any{"configFileId": nodeFile[0], "configKey": strings.Repeat("k", 129), "configValue": "1"}, "configKey"},
		{"value too long", "/cluster/config", "POST", map[string]any{"configFileId": layer, "configKey": "k", "configValue": strings.Repeat("v", 20001)}, "configValue"},
		{"bad template", "/cluster/config", "PUT", map[string]any{"id": added.ID, "configValue": "{nosuch}"}, "configValue"},
		{"describes too long", "/cluster/config", "PUT", map[string]any{"id": added.ID, "describes": strings.Repeat("d", 257)}, "describes"},
		{"no ids", "/cluster/config/status/batch", "PUT", map[string]any{"ids": []string{}, "effective": 1}, "ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(tc.method, tc.route, op, tc.body)
			want(t, r, 400, codeParamInvalid)
			if !strings.Contains(string(r.Data), `"field":"`+tc.field+`"`) {
				t.Fatalf("data %s does not name %s", r.Data, tc.field)
			}
		})
	}
	if it := nodeItems(0)["maxClientCnxns"]; it.ConfigValue != "100" {
		t.Fatalf("a refused edit changed the value: %+v", it)
	}

	// Deleting from the layer: gone everywhere.
	want(t, h.call("DELETE", "/cluster/config", op, map[string]any{"id": added.ID}), 200, 0)
	want(t, h.call("DELETE", "/cluster/config?id="+added.ID, op, nil), 404, codeConfigItemNotExist)
	for i := range nodeFile {
		if _, ok := nodeItems(i)["maxClientCnxns"]; ok {
			t.Fatalf("node %d still has the deleted key", i)
		}
	}
	r = h.call("GET", "/cluster/config?configFileId="+layer, viewer, nil)
	want(t, r, 200, 0)
	if p := decodeData[page[layerItem]](t, r); p.Total != 3 {
		t.Fatalf("layer items %+v", p)
	}
}
