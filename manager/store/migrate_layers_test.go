package store

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

// oldSchemaDB makes a database file with the schema before config layers
// (migrations 1-9) and the rows the old code wrote: a cluster of three
// coordinators whose zoo.cfg items agree but for maxClientCnxns (node 3
// differs), tickTime (off on node 2), and a key only node 1 has; and a
// myid raw file whose manifest target is {dataDir}/myid.
func oldSchemaDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "admq.db")
	db, err := sql.Open("sqlite", path+"?"+writerParams)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, _ := fs.Sub(migrations, "migrations")
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	manifest := `{"name":"zookeeper","version":"3.8.4","mqType":1,"components":{"coordinator":{"start":["x"],` +
		`"configFiles":[{"name":"zoo.cfg","path":"conf/zoo.cfg"},{"name":"myid","path":"conf/myid","format":"raw","target":"{dataDir}/myid"}],` +
		`"serverPort":2181,"health":{"tcp":"{managerIp}:{serverPort}"}}}}`
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO areas (id, code, name) VALUES (1, 'default', 'default')`)
	exec(`INSERT INTO packages (id, name, version, arch, ext, file_name, sha256, size, manifest) VALUES
		(5, 'zookeeper', '3.8.4', 'x86', 'tar.gz', 'zookeeper-V3.8.4-x86.tar.gz', ?, 10, ?)`,
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", manifest)
	exec(`INSERT INTO clusters (id, name) VALUES (10, 'c1')`)
	keys := []struct {
		key    string
		values [3]string
		on     [3]bool
	}{
		{"tickTime", [3]string{"2000", "2000", "2000"}, [3]bool{true, false, true}},
		{"dataDir", [3]string{"{dataDir}", "{dataDir}", "{dataDir}"}, [3]bool{true, true, true}},
		{"maxClientCnxns", [3]string{"60", "60", "100"}, [3]bool{true, true, true}},
		{"{zkEnsemble}", [3]string{"", "", ""}, [3]bool{true, true, true}},
	}
	itemID := 1000
	for i := 1; i <= 3; i++ {
		exec(`INSERT INTO servers (id, area_id, manager_ip) VALUES (?, 1, ?)`, 100+i, "10.0.0."+string(rune('0'+i)))
		exec(`INSERT INTO cluster_nodes (id, cluster_id, server_id, package_id, component, component_type, manager_ip,
			program_dir, data_dir, node_dir, server_port, ordinal) VALUES (?, 10, ?, 5, 'coordinator', 1, ?, ?, ?, ?, 2181, ?)`,
			200+i, 100+i, "10.0.0."+string(rune('0'+i)), "/opt/c"+string(rune('0'+i)), "/data/c"+string(rune('0'+i)),
			"coordinator-"+string(rune('0'+i)), i)
		exec(`INSERT INTO node_config_files (id, node_id, name, path, format) VALUES (?, ?, 'zoo.cfg', 'conf/zoo.cfg', 'properties')`, 300+i, 200+i)
		exec(`INSERT INTO node_config_files (id, node_id, name, path, format) VALUES (?, ?, 'myid', 'conf/myid', 'raw')`, 310+i, 200+i)
		for _, k := range keys {
			itemID++
			exec(`INSERT INTO node_config_items (id, file_id, key, value, comment, effective) VALUES (?, ?, ?, ?, 'c', ?)`,
				itemID, 300+i, k.key, k.values[i-1], k.on[i-1])
		}
		if i == 1 {
			exec(`INSERT INTO node_config_items (id, file_id, key, value, comment, effective) VALUES (999, 301, 'snapCount', '5', 'mine', 1)`)
		}
		itemID++
		exec(`INSERT INTO node_config_items (id, file_id, key, value, effective) VALUES (?, ?, 'content', '{myid}', 1)`, itemID, 310+i)
	}
	return path
}

// TestMigrateConfigLayers opens a database made by the old schema: the
// per-node items become the cluster layer where every node agrees and
// overrides where they differ, keeping their ids, and the files get their
// targets.
func TestMigrateConfigLayers(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, oldSchemaDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	files, err := db.Files(ctx, 10)
	if err != nil || len(files) != 2 || files[0].Name != "zoo.cfg" || files[1].Name != "myid" ||
		files[0].Target != "conf/zoo.cfg" || files[1].Target != "{dataDir}/myid" || files[0].PackageID != 5 {
		t.Fatalf("layers %+v %v", files, err)
	}
	layer, _ := db.AllItems(ctx, files[0].ID)
	want := map[string]config.Item{
		"tickTime": {Value: "2000", Effective: true}, "dataDir": {Value: "{dataDir}", Effective: true},
		"maxClientCnxns": {Value: "60", Effective: true}, "{zkEnsemble}": {Value: "", Effective: true},
	}
	if len(layer) != len(want) || layer[0].Key != "tickTime" || layer[3].Key != "{zkEnsemble}" {
		t.Fatalf("layer %+v", layer)
	}
	for _, it := range layer {
		if w := want[it.Key]; it.Value != w.Value || it.Effective != w.Effective || it.Comment != "c" {
			t.Errorf("layer item %+v, want %+v", it, w)
		}
		// Items older than authorship (migration 14) have no author.
		if it.CreatedBy != "" || it.UpdatedBy != "" {
			t.Errorf("layer item %s written before authors: created by %q, updated by %q", it.Key, it.CreatedBy, it.UpdatedBy)
		}
	}
	for i := 1; i <= 3; i++ {
		nfs, _ := db.NodeFiles(ctx, ids.ID(200+i))
		if len(nfs) != 2 || nfs[0].ID != ids.ID(300+i) || nfs[0].FileID != files[0].ID || nfs[0].Target != "conf/zoo.cfg" ||
			nfs[1].Target != "/data/c"+string(rune('0'+i))+"/myid" {
			t.Fatalf("node %d files %+v", i, nfs)
		}
		items, _ := db.AllNodeItems(ctx, nfs[0].ID)
		byKey := map[string]config.NodeItem{}
		for _, it := range items {
			byKey[it.Key] = it
			if it.ID < 1000 && it.Key != "snapCount" {
				t.Errorf("node %d item %s lost its id: %d", i, it.Key, it.ID)
			}
			if it.CreatedBy != "" || it.UpdatedBy != "" {
				t.Errorf("node %d item %s written before authors: created by %q, updated by %q", i, it.Key, it.CreatedBy, it.UpdatedBy)
			}
		}
		tick, max := byKey["tickTime"], byKey["maxClientCnxns"]
		switch i {
		case 1:
			if snap := byKey["snapCount"]; snap.ID != 999 || !snap.ItemID.IsZero() || snap.Value != "5" || snap.Comment != "mine" || len(items) != 5 {
				t.Errorf("node 1's own key %+v (%d items)", snap, len(items))
			}
			if tick.Source() != config.SourceCluster || max.Source() != config.SourceCluster {
				t.Errorf("node 1 agrees with the layer: %+v %+v", tick, max)
			}
		case 2:
			if tick.Effective || !tick.EffectiveSet || tick.ValueSet || max.Source() != config.SourceCluster || len(items) != 4 {
				t.Errorf("node 2 has tickTime off: %+v", tick)
			}
		case 3:
			if max.Value != "100" || !max.ValueSet || max.EffectiveSet || tick.Source() != config.SourceCluster {
				t.Errorf("node 3 has maxClientCnxns 100: %+v", max)
			}
		}
	}
	// The seed's per-node listing still pages the node's items.
	if page, total, err := db.NodeItems(ctx, 301, paging.Page{Num: 1, Size: 10}); err != nil || total != 5 || page[0].ID != 1004 || page[4].ID != 999 {
		t.Fatalf("page %+v %d %v", page, total, err)
	}
}
