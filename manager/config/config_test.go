package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	at "github.com/admq/admq-manager/internal/archive/archivetest"
	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/invalid"
	"github.com/admq/admq-manager/internal/properties"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/cluster/clustertest"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
	"github.com/admq/admq-manager/manager/store"
)

type fixture struct {
	db       *store.DB
	pkgs     *pkg.Service
	clusters *cluster.Service
	svc      *config.Service
	zk       pkg.Package
	env      *clustertest.Env
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := clustertest.New(t, 3)
	f := &fixture{db: e.DB, pkgs: e.Packages, clusters: e.Clusters, svc: e.Configs, env: e}
	f.zk = f.upload(t, "zookeeper-V3.8.4-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", clustertest.ZooKeeperManifest("3.8.4")),
		at.File("conf/zoo.cfg", clustertest.ZooCfg),
		at.File("conf/myid.tpl", "{myid}\n"),
		at.File("bin/zkServer.sh", "#!/bin/sh\n"),
	))
	e.AddServers(t, 4, true)
	return f
}

func (f *fixture) upload(t *testing.T, name string, data []byte) pkg.Package {
	t.Helper()
	return f.env.Upload(t, name, data)
}

// ensemble creates a cluster of coordinators on ips.
func (f *fixture) ensemble(t *testing.T, name string, ips ...string) (cluster.Cluster, []cluster.Node) {
	t.Helper()
	c, nodes, err := f.clusters.Create(t.Context(), cluster.NewCluster{Name: name, PackageID: f.zk.ID, Coordinators: clustertest.Specs(ips...)})
	if err != nil {
		t.Fatal(err)
	}
	return c, nodes
}

// zooCfgOf returns the node's zoo.cfg file and its rendering.
func (f *fixture) zooCfgOf(t *testing.T, n cluster.Node) (config.NodeFile, string) {
	t.Helper()
	files, err := f.svc.NodeFiles(t.Context(), n.ID)
	if err != nil || len(files) != 2 || files[0].Name != "zoo.cfg" {
		t.Fatalf("files of %s: %+v %v", n.NodeDir, files, err)
	}
	nc, err := f.svc.Render(t.Context(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	return files[0], string(nc.Files[0].Content)
}

func TestImportAndRender(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	wantEntries, _ := properties.Parse([]byte(clustertest.ZooCfg))

	layers, err := f.svc.Files(ctx, c.ID)
	if err != nil || len(layers) != 2 || layers[0].Name != "zoo.cfg" || layers[1].Target != "{dataDir}/myid" || layers[0].Target != "conf/zoo.cfg" {
		t.Fatalf("layers %+v %v", layers, err)
	}
	layer, _ := f.svc.AllItems(ctx, layers[0].ID)
	if len(layer) != len(wantEntries) {
		t.Fatalf("%d layer items, want %d", len(layer), len(wantEntries))
	}
	for j, e := range wantEntries {
		wantValue := e.Value
		if e.Key == "log.pattern" {
			wantValue = "%d{{ISO8601}} %m" // a literal brace, escaped at import
		}
		if it := layer[j]; it.Key != e.Key || it.Value != wantValue || it.Comment != e.Comment || !it.Effective {
			t.Errorf("item %d: %+v, want %+v", j, it, e)
		}
	}
	var rendered []string
	for i, n := range nodes {
		nf, out := f.zooCfgOf(t, n)
		if nf.FileID != layers[0].ID || nf.Target != "conf/zoo.cfg" {
			t.Errorf("node file %+v", nf)
		}
		items, err := f.svc.AllNodeItems(ctx, nf.ID)
		if err != nil || len(items) != len(layer) {
			t.Fatalf("node items %d %v", len(items), err)
		}
		for j, it := range items {
			if it.ItemID != layer[j].ID || it.Value != layer[j].Value || it.Source() != config.SourceCluster || it.ID == layer[j].ID {
				t.Errorf("node item %d: %+v mirrors %+v", j, it, layer[j])
			}
		}
		page, total, err := f.svc.NodeItems(ctx, nf.ID, paging.Page{Num: 1, Size: 5})
		if err != nil || total != len(layer) || len(page) != 5 || page[0].Key != "{zkEnsemble}" {
			t.Fatalf("page %+v total %d %v", page, total, err)
		}
		rendered = append(rendered, out)
		for _, want := range []string{
			"# The number of milliseconds of each tick\ntickTime=2000\n",
			fmt.Sprintf("dataDir=/data/admq/c1/coordinator-%d/zookeeper\n", i+1),
			"log.pattern=%d{ISO8601} %m\n",
			"# the ensemble\nserver.1=192.168.0.1:2888:3888\nserver.2=192.168.0.2:2888:3888\nserver.3=192.168.0.3:2888:3888\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("node %d zoo.cfg lacks %q:\n%s", i, want, out)
			}
		}
		nc, _ := f.svc.Render(ctx, n.ID)
		if myid := nc.Files[1]; myid.Path != n.DataDir+"/myid" || string(myid.Content) != fmt.Sprintf("%d\n", i+1) {
			t.Errorf("myid %s %q", myid.Path, myid.Content)
		}
		if nc.Vars["myid"] != fmt.Sprint(i+1) || nc.Node.ID != n.ID {
			t.Errorf("vars %v", nc.Vars)
		}
	}
	// Everything but dataDir is the same on every node.
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "dataDir=") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(rendered[0]) != strip(rendered[1]) || strip(rendered[1]) != strip(rendered[2]) {
		t.Errorf("zoo.cfg differs between nodes beyond dataDir")
	}

	// Unknown variables are refused at the edit, named at render time.
	if _, err := f.svc.AddItem(ctx, layers[0].ID, config.NewItem{Key: "extra", Value: "{nosuch}"}); !isField(err, "value") {
		t.Fatalf("unknown variable: %v", err)
	}
	entries := []config.Entry{{Key: "tickTime", Value: "1", Effective: false}, {Key: "bad", Value: "{nosuch} {other}", Effective: true}}
	if _, err := config.RenderFile("zoo.cfg", config.FormatProperties, entries, config.Vars{}); !errors.Is(err, config.ErrRender) || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("render unknown: %v", err)
	}
	entries[1].Effective = false
	if out, err := config.RenderFile("zoo.cfg", config.FormatProperties, entries, config.Vars{}); err != nil || len(out) != 0 {
		t.Fatalf("disabled items rendered: %q %v", out, err)
	}
}

func isField(err error, field string) bool {
	e, ok := invalid.As(err)
	return ok && e.Field == field
}

// TestLayers: one edit of the cluster layer reaches every node, an
// override makes an exception of one node, and each node's item says
// where it comes from.
func TestLayers(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, nodes := f.ensemble(t, "c1", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	layers, _ := f.svc.Files(ctx, c.ID)
	zoo := layers[0]
	itemOf := func(key string) config.Item {
		t.Helper()
		items, _ := f.svc.AllItems(ctx, zoo.ID)
		for _, it := range items {
			if it.Key == key {
				return it
			}
		}
		t.Fatalf("no layer item %s", key)
		return config.Item{}
	}
	nodeItem := func(n cluster.Node, key string) config.NodeItem {
		t.Helper()
		nf, _ := f.zooCfgOf(t, n)
		items, _ := f.svc.AllNodeItems(ctx, nf.ID)
		for _, it := range items {
			if it.Key == key {
				return it
			}
		}
		return config.NodeItem{}
	}
	contains := func(n cluster.Node, line string) bool {
		_, out := f.zooCfgOf(t, n)
		return strings.Contains(out, line+"\n")
	}
	value := func(s string) *string { return &s }

	// The layer: one edit, every node.
	if _, err := f.svc.UpdateItem(ctx, itemOf("maxClientCnxns").ID, config.Change{Value: value("100")}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !contains(n, "maxClientCnxns=100") || nodeItem(n, "maxClientCnxns").Source() != config.SourceCluster {
			t.Fatalf("%s did not get the layer's edit", n.NodeDir)
		}
	}
	// An override on node 2.
	over := nodeItem(nodes[1], "maxClientCnxns")
	it, err := f.svc.UpdateNodeItem(ctx, over.ID, config.Change{Value: value("7")})
	if err != nil || it.Value != "7" || !it.ValueSet || it.Source() != config.SourceNode {
		t.Fatalf("override %+v %v", it, err)
	}
	if _, err := f.svc.UpdateItem(ctx, itemOf("maxClientCnxns").ID, config.Change{Value: value("200")}); err != nil {
		t.Fatal(err)
	}
	if !contains(nodes[0], "maxClientCnxns=200") || !contains(nodes[1], "maxClientCnxns=7") || !contains(nodes[2], "maxClientCnxns=200") {
		t.Fatal("the override did not hold against a layer edit")
	}
	// Disabled on node 3 only.
	if err := f.svc.SetNodeItemsEffective(ctx, []ids.ID{nodeItem(nodes[2], "autopurge.purgeInterval").ID}, false, ""); err != nil {
		t.Fatal(err)
	}
	if contains(nodes[2], "autopurge.purgeInterval=1") || !contains(nodes[0], "autopurge.purgeInterval=1") {
		t.Fatal("switching a key off on one node")
	}
	// The layer's own value drops the override: node 2 follows again.
	if it, err := f.svc.UpdateNodeItem(ctx, over.ID, config.Change{Value: value("200")}); err != nil || it.ValueSet || it.Source() != config.SourceCluster {
		t.Fatalf("override equal to the layer %+v %v", it, err)
	}
	// Reset: node 3 follows the layer's on/off again.
	if err := f.svc.ResetNodeItem(ctx, nodeItem(nodes[2], "autopurge.purgeInterval").ID, ""); err != nil || !contains(nodes[2], "autopurge.purgeInterval=1") {
		t.Fatalf("reset: %v", err)
	}
	// A comment of a cluster key is the layer's to change.
	if _, err := f.svc.UpdateNodeItem(ctx, over.ID, config.Change{Comment: value("mine")}); !isField(err, "comment") {
		t.Fatalf("comment of a mirrored key: %v", err)
	}

	// A key of node 1's own, then the same key in the layer: node 1 keeps
	// its value as an override, the others get the layer's.
	files1, _ := f.svc.NodeFiles(ctx, nodes[0].ID)
	own, err := f.svc.AddNodeItem(ctx, []ids.ID{files1[0].ID}, config.NewItem{Key: "snapCount", Value: "1000", Comment: "node 1 only"})
	if err != nil || len(own) != 1 || own[0].Source() != config.SourceNode {
		t.Fatalf("own key %+v %v", own, err)
	}
	if contains(nodes[1], "snapCount=1000") || !contains(nodes[0], "snapCount=1000") {
		t.Fatal("own key")
	}
	if _, err := f.svc.AddNodeItem(ctx, []ids.ID{files1[0].ID}, config.NewItem{Key: "tickTime", Value: "1"}); !errors.Is(err, config.ErrItemExists) {
		t.Fatalf("a key the file has from its layer: %v", err)
	}
	snap, err := f.svc.AddItem(ctx, zoo.ID, config.NewItem{Key: "snapCount", Value: "5000"})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(nodes[0], "snapCount=1000") || !contains(nodes[1], "snapCount=5000") || !contains(nodes[2], "snapCount=5000") {
		t.Fatal("a layer key over a node's own")
	}
	if it := nodeItem(nodes[0], "snapCount"); it.ID != own[0].ID || it.ItemID != snap.ID || !it.ValueSet {
		t.Fatalf("node 1's own key did not become an override: %+v", it)
	}
	if _, err := f.svc.AddItem(ctx, zoo.ID, config.NewItem{Key: "snapCount", Value: "1"}); !errors.Is(err, config.ErrItemExists) {
		t.Fatalf("a key the layer has: %v", err)
	}
	// Deleting it from the layer: node 1 keeps its value as its own key.
	if err := f.svc.DeleteItem(ctx, snap.ID, ""); err != nil {
		t.Fatal(err)
	}
	if !contains(nodes[0], "snapCount=1000") || contains(nodes[1], "snapCount") {
		t.Fatal("delete from the layer")
	}
	if it := nodeItem(nodes[0], "snapCount"); !it.ItemID.IsZero() || it.Comment != "" {
		t.Fatalf("kept key %+v", it)
	}
	// Deleting a key of the node's own.
	if err := f.svc.ResetNodeItem(ctx, nodeItem(nodes[0], "snapCount").ID, ""); err != nil || contains(nodes[0], "snapCount=1000") {
		t.Fatalf("delete own key: %v", err)
	}

	// A node added later mirrors the layer as it is now.
	more, err := f.clusters.AddNodes(ctx, c.ID, cluster.Coordinator, f.zk.ID, clustertest.Specs("10.0.0.4"), "")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(more[0], "maxClientCnxns=200") || !contains(more[0], "server.4=192.168.0.4:2888:3888") {
		t.Fatal("added node")
	}
	if !contains(nodes[0], "server.4=192.168.0.4:2888:3888") {
		t.Fatal("the ensemble variable did not grow on the others")
	}

	// All or none.
	if err := f.svc.SetItemsEffective(ctx, []ids.ID{itemOf("tickTime").ID, 42}, false, ""); !errors.Is(err, config.ErrItemNotFound) {
		t.Fatalf("unknown id in a batch: %v", err)
	}
	if !itemOf("tickTime").Effective {
		t.Fatal("a failed batch changed an item")
	}
	if err := f.svc.SetNodeItemsEffective(ctx, []ids.ID{nodeItem(nodes[0], "tickTime").ID, 42}, false, ""); !errors.Is(err, config.ErrItemNotFound) {
		t.Fatalf("unknown id in a node batch: %v", err)
	}
	if _, err := f.svc.AddNodeItem(ctx, []ids.ID{files1[0].ID, 999}, config.NewItem{Key: "x", Value: "1"}); !errors.Is(err, config.ErrFileNotFound) {
		t.Fatalf("unknown file in fileMap: %v", err)
	}
	if it := nodeItem(nodes[0], "x"); !it.ID.IsZero() {
		t.Fatal("a failed add left a key behind")
	}
	// A raw file's content cannot be deleted, nor keys added to it.
	myid := layers[1]
	items, _ := f.svc.AllItems(ctx, myid.ID)
	if err := f.svc.DeleteItem(ctx, items[0].ID, ""); !isField(err, "item") {
		t.Fatalf("delete raw content: %v", err)
	}
	if _, err := f.svc.AddItem(ctx, myid.ID, config.NewItem{Key: "k", Value: "v"}); !isField(err, "key") {
		t.Fatalf("add to raw: %v", err)
	}
}

// TestItemValidation: what a properties file cannot hold is refused,
// naming the field in config's terms, and changes nothing.
func TestItemValidation(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, _ := f.ensemble(t, "c1", "10.0.0.1")
	layers, _ := f.svc.Files(ctx, c.ID)
	before, _ := f.svc.AllItems(ctx, layers[0].ID)
	for _, tc := range []struct {
		name  string
		item  config.NewItem
		field string
	}{
		{"empty key", config.NewItem{Key: " ", Value: "v"}, "key"},
		{"key of 129 characters", config.NewItem{Key: strings.Repeat("k", 129), Value: "v"}, "key"},
		{"key with a newline", config.NewItem{Key: "a\nb", Value: "v"}, "key"},
		{"key with a NUL", config.NewItem{Key: "a\x00b", Value: "v"}, "key"},
		{"key not UTF-8", config.NewItem{Key: "a\xffb", Value: "v"}, "key"},
		{"a variable line", config.NewItem{Key: "{zkServers}", Value: ""}, "key"},
		{"value of 20001 characters", config.NewItem{Key: "k", Value: strings.Repeat("v", 20001)}, "value"},
		{"value not UTF-8", config.NewItem{Key: "k", Value: "\xff"}, "value"},
		{"value with a stray brace", config.NewItem{Key: "k", Value: "a}b"}, "value"},
		{"comment of 257 characters", config.NewItem{Key: "k", Value: "v", Comment: strings.Repeat("c", 257)}, "comment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.svc.AddItem(ctx, layers[0].ID, tc.item); !isField(err, tc.field) {
				t.Fatalf("got %v, want a bad %s", err, tc.field)
			}
		})
	}
	// At the limits, and with every character a properties file escapes.
	for _, n := range []config.NewItem{
		{Key: strings.Repeat("k", 128), Value: strings.Repeat("v", 20000), Comment: strings.Repeat("c", 256)},
		{Key: "a=b:c#d!e f\\g", Value: "line1\nline2 = : # ! \\ ü 日本 😀 {{braces}} \t"},
	} {
		if _, err := f.svc.AddItem(ctx, layers[0].ID, n); err != nil {
			t.Fatalf("%q: %v", truncate(n.Key, 20), err)
		}
	}
	after, _ := f.svc.AllItems(ctx, layers[0].ID)
	if len(after) != len(before)+2 {
		t.Fatalf("%d items, want %d", len(after), len(before)+2)
	}
	// The rendered file reads back, with Java's rules, as what was set.
	n, _ := f.clusters.AllNodes(ctx, c.ID)
	nc, err := f.svc.Render(ctx, n[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := properties.Parse(nc.Files[0].Content)
	got := map[string]string{}
	for _, e := range entries {
		got[e.Key] = e.Value
	}
	if got["a=b:c#d!e f\\g"] != "line1\nline2 = : # ! \\ ü 日本 😀 {braces} \t" || got[strings.Repeat("k", 128)] != strings.Repeat("v", 20000) {
		t.Fatalf("rendered file reads back %q", got["a=b:c#d!e f\\g"])
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestPeersRoutesRendered: "{peers}" in a package's raw file survives the
// brace escaping of import, and renders as every broker's route.
func TestPeersRoutesRendered(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const conf = "listen: {dataIp}:{serverPort}\ncluster {\n  name: {cluster}\n  routes: [{peers}]\n}\n"
	nats := f.upload(t, "natsr-V2.10.0-x86.tar.gz", at.TarGz(t,
		at.File("admq-package.json", `{"name": "natsr", "version": "2.10.0", "mqType": 3, "components": {"broker": {
  "start": ["{programDir}/nats-server", "-c", "{programDir}/nats.conf"],
  "configFiles": [{"name": "nats.conf", "path": "nats.conf", "format": "raw"}],
  "serverPort": 4222, "peer": "nats-route://{dataIp}:6222",
  "health": {"tcp": "{dataIp}:{serverPort}"}}}}`),
		at.File("nats-server", "bin"),
		at.File("nats.conf", conf),
	))
	_, brokers, err := f.clusters.Create(ctx, cluster.NewCluster{Name: "r1", PackageID: nats.ID, Brokers: clustertest.Specs("10.0.0.1", "10.0.0.2", "10.0.0.3")})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range brokers {
		files, err := f.svc.NodeFiles(ctx, b.ID)
		if err != nil || len(files) != 1 {
			t.Fatalf("files %+v %v", files, err)
		}
		items, _ := f.svc.AllNodeItems(ctx, files[0].ID)
		if len(items) != 1 || !strings.Contains(items[0].Value, "routes: [{peers}]\n") || !strings.Contains(items[0].Value, "cluster {{\n") {
			t.Fatalf("imported %+v", items)
		}
		nc, err := f.svc.Render(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("listen: 192.168.0.%d:4222\ncluster {\n  name: r1\n"+
			"  routes: [nats-route://192.168.0.1:6222, nats-route://192.168.0.2:6222, nats-route://192.168.0.3:6222]\n}\n", b.Ordinal)
		if string(nc.Files[0].Content) != want || nc.Files[0].Path != "nats.conf" {
			t.Fatalf("%s nats.conf at %s:\n%s\nwant\n%s", b.NodeDir, nc.Files[0].Path, nc.Files[0].Content, want)
		}
	}
}
