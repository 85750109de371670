package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/pressly/goose/v3"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/internal/manifest"
	"github.com/admq/admq-manager/manager/config"
)

// migrationNode is the id generator node of ids that migrations make; a
// manager's own --node-id should not be 1023.
const migrationNode = 1023

// goMigrations are the migrations written in Go, beside the SQL ones.
func goMigrations() []*goose.Migration {
	return []*goose.Migration{
		goose.NewGoMigration(10, &goose.GoFunc{RunTx: migrateConfigLayers}, nil),
	}
}

// layersSchema is the schema of config layers (config.File, config.Item)
// and of node items that mirror them (config.NodeItem): a node item with a
// layer_item_id takes the layer item's value and effective unless its own
// are set (not NULL); one without is a key of the node's own.
const layersSchema = `
CREATE TABLE config_files (
    id         INTEGER PRIMARY KEY,
    cluster_id INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    component  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    format     TEXT    NOT NULL CHECK (format IN ('properties', 'raw')),
    target     TEXT    NOT NULL,
    package_id INTEGER,
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE (cluster_id, component, name)
);

CREATE TABLE config_items (
    id         INTEGER PRIMARY KEY,
    file_id    INTEGER NOT NULL REFERENCES config_files (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL DEFAULT '',
    comment    TEXT    NOT NULL DEFAULT '',
    effective  INTEGER NOT NULL DEFAULT 1 CHECK (effective IN (0, 1)),
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE (file_id, key)
);

ALTER TABLE node_config_files ADD COLUMN layer_id INTEGER REFERENCES config_files (id) ON DELETE CASCADE;
ALTER TABLE node_config_files ADD COLUMN target TEXT NOT NULL DEFAULT '';
CREATE INDEX node_config_files_layer_id ON node_config_files (layer_id);

CREATE TABLE node_config_items_layered (
    id            INTEGER PRIMARY KEY,
    file_id       INTEGER NOT NULL REFERENCES node_config_files (id) ON DELETE CASCADE,
    layer_item_id INTEGER REFERENCES config_items (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    value         TEXT,
    comment       TEXT    NOT NULL DEFAULT '',
    effective     INTEGER CHECK (effective IN (0, 1)),
    created_at    INTEGER,
    updated_at    INTEGER,
    UNIQUE (file_id, key),
    CHECK (layer_item_id IS NOT NULL OR (value IS NOT NULL AND effective IS NOT NULL))
);
`

// oldNodeFile is a node's config file as the schema before layers kept it.
type oldNodeFile struct {
	id, nodeID, clusterID, packageID int64
	component, name, path, format    string
	dataDir, manifest                string
	ordinal                          int
	created, updated                 sql.NullInt64
	items                            []oldItem
}

type oldItem struct {
	id               int64
	key, value       string
	comment          string
	effective        bool
	created, updated sql.NullInt64
}

// migrateConfigLayers moves per-node config into layers: the files of one
// cluster, component and name become one layer; a key every node has
// becomes a layer item with the value (and on/off) most nodes have, the
// nodes that differ keeping theirs as overrides; a key only some nodes
// have stays theirs. Node items keep their ids; each node file gets the
// target its manifest names, resolved for the node.
func migrateConfigLayers(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, layersSchema); err != nil {
		return fmt.Errorf("config layers schema: %w", err)
	}
	files, err := loadOldFiles(ctx, tx)
	if err != nil {
		return err
	}
	gen, err := ids.NewGenerator(migrationNode)
	if err != nil {
		return err
	}
	type groupKey struct {
		cluster         int64
		component, name string
	}
	groups := map[groupKey][]*oldNodeFile{}
	var order []groupKey
	for i := range files {
		f := &files[i]
		k := groupKey{f.clusterID, f.component, f.name}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	manifests := map[int64]manifest.Manifest{}
	for _, k := range order {
		group := groups[k]
		slices.SortFunc(group, func(a, b *oldNodeFile) int { return cmp.Or(cmp.Compare(a.ordinal, b.ordinal), cmp.Compare(a.id, b.id)) })
		first := group[0]
		m, ok := manifests[first.packageID]
		if !ok {
			// Stored manifests were validated on upload; a damaged one
			// leaves the files at their package path.
			_ = json.Unmarshal([]byte(first.manifest), &m)
			manifests[first.packageID] = m
		}
		target := first.path
		for _, cf := range m.Components[first.component].ConfigFiles {
			if cf.Name == first.name && cf.Target != "" {
				target = cf.Target
			}
		}
		layerID := gen.Next()
		if _, err := tx.ExecContext(ctx, `INSERT INTO config_files (id, cluster_id, component, name, path, format, target, package_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(layerID), first.clusterID, first.component, first.name, first.path, first.format,
			target, first.packageID, first.created, first.updated); err != nil {
			return fmt.Errorf("config layer %s: %w", first.name, err)
		}
		// Keys every node has, in the first node's order, make the layer.
		count := map[string]int{}
		for _, f := range group {
			for _, it := range f.items {
				count[it.key]++
			}
		}
		layerItems := map[string]int64{}
		layerOf := map[string]oldItem{}
		for _, it := range first.items {
			if count[it.key] != len(group) {
				continue
			}
			layer := majority(group, it.key)
			id := int64(gen.Next())
			if _, err := tx.ExecContext(ctx, `INSERT INTO config_items (id, file_id, key, value, comment, effective, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, int64(layerID), layer.key, layer.value, layer.comment, layer.effective,
				layer.created, layer.updated); err != nil {
				return fmt.Errorf("config layer %s item %s: %w", first.name, it.key, err)
			}
			layerItems[it.key], layerOf[it.key] = id, layer
		}
		for _, f := range group {
			resolved, err := config.ResolveTarget(target, f.dataDir)
			if err != nil {
				resolved = f.path
			}
			if _, err := tx.ExecContext(ctx, `UPDATE node_config_files SET layer_id = ?, target = ? WHERE id = ?`,
				int64(layerID), resolved, f.id); err != nil {
				return err
			}
			for _, it := range f.items {
				var (
					layer     sql.NullInt64
					value     = sql.NullString{String: it.value, Valid: true}
					effective = sql.NullBool{Bool: it.effective, Valid: true}
					comment   = it.comment
				)
				if id, ok := layerItems[it.key]; ok {
					l := layerOf[it.key]
					layer = sql.NullInt64{Int64: id, Valid: true}
					value.Valid = it.value != l.value
					effective.Valid = it.effective != l.effective
					comment = ""
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO node_config_items_layered
					(id, file_id, layer_item_id, key, value, comment, effective, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					it.id, f.id, layer, it.key, value, comment, effective, it.created, it.updated); err != nil {
					return fmt.Errorf("node config item %d: %w", it.id, err)
				}
			}
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE node_config_items;
		ALTER TABLE node_config_items_layered RENAME TO node_config_items;
		CREATE INDEX node_config_items_layer_item_id ON node_config_items (layer_item_id);`)
	return err
}

// majority returns the item for key that most files of the group have
// (value and on/off); ties go to the lowest ordinal.
func majority(group []*oldNodeFile, key string) oldItem {
	type variant struct {
		value     string
		effective bool
	}
	votes := map[variant]int{}
	var first []oldItem
	for _, f := range group {
		for _, it := range f.items {
			if it.key == key {
				votes[variant{it.value, it.effective}]++
				first = append(first, it)
			}
		}
	}
	best := first[0]
	for _, it := range first {
		if votes[variant{it.value, it.effective}] > votes[variant{best.value, best.effective}] {
			best = it
		}
	}
	return best
}

func loadOldFiles(ctx context.Context, tx *sql.Tx) ([]oldNodeFile, error) {
	rows, err := tx.QueryContext(ctx, `SELECT f.id, f.node_id, n.cluster_id, n.package_id, n.component, f.name, f.path, f.format,
			n.data_dir, COALESCE(p.manifest, '{}'), n.ordinal, f.created_at, f.updated_at
		FROM node_config_files f JOIN cluster_nodes n ON n.id = f.node_id LEFT JOIN packages p ON p.id = n.package_id
		ORDER BY f.id`)
	if err != nil {
		return nil, fmt.Errorf("read node config files: %w", err)
	}
	var files []oldNodeFile
	for rows.Next() {
		var f oldNodeFile
		if err := rows.Scan(&f.id, &f.nodeID, &f.clusterID, &f.packageID, &f.component, &f.name, &f.path, &f.format,
			&f.dataDir, &f.manifest, &f.ordinal, &f.created, &f.updated); err != nil {
			rows.Close()
			return nil, err
		}
		files = append(files, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	at := map[int64]int{}
	for i, f := range files {
		at[f.id] = i
	}
	rows, err = tx.QueryContext(ctx, `SELECT id, file_id, key, value, comment, effective, created_at, updated_at FROM node_config_items ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read node config items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			it     oldItem
			fileID int64
		)
		if err := rows.Scan(&it.id, &fileID, &it.key, &it.value, &it.comment, &it.effective, &it.created, &it.updated); err != nil {
			return nil, err
		}
		if i, ok := at[fileID]; ok {
			files[i].items = append(files[i].items, it)
		}
	}
	return files, rows.Err()
}
