package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

var _ config.Store = (*DB)(nil)

// configErrors are the domain errors the config writes return as they are.
var configErrors = []error{config.ErrFileNotFound, config.ErrItemNotFound, config.ErrItemExists, config.ErrNodeNotFound}

func configErr(what string, err error) error { return domainErr(what, err, configErrors) }

// NodeTopology returns the node's cluster: its name and every node.
func (db *DB) NodeTopology(ctx context.Context, nodeID ids.ID) (config.Topology, error) {
	var (
		t    config.Topology
		cid  int64
		name string
	)
	err := db.r.QueryRowContext(ctx, `SELECT c.id, c.name FROM cluster_nodes n JOIN clusters c ON c.id = n.cluster_id WHERE n.id = ?`,
		int64(nodeID)).Scan(&cid, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: %s", config.ErrNodeNotFound, nodeID)
	}
	if err != nil {
		return t, fmt.Errorf("store: node topology: %w", err)
	}
	t.ClusterID, t.Cluster = ids.ID(cid), name
	t.Members, err = queryAll(ctx, db, "node topology", scanMember,
		`SELECT id, package_id, component, ordinal, node_dir, program_dir, data_dir, manager_ip, data_ip, server_port
		FROM cluster_nodes WHERE cluster_id = ?`+nodeOrder, cid)
	return t, err
}

func scanMember(sc scanner) (config.Member, error) {
	var (
		m       config.Member
		id, pid int64
	)
	err := sc.Scan(&id, &pid, &m.Component, &m.Ordinal, &m.NodeDir, &m.ProgramDir, &m.DataDir, &m.ManagerIP, &m.DataIP, &m.ServerPort)
	m.ID, m.PackageID = ids.ID(id), ids.ID(pid)
	return m, err
}

const layerCols = `id, cluster_id, component, name, path, format, target, COALESCE(package_id, 0), created_at, updated_at`

func scanLayer(sc scanner) (config.File, error) {
	var (
		f                 config.File
		id, cid, pid      int64
		created, updated2 sql.NullInt64
	)
	if err := sc.Scan(&id, &cid, &f.Component, &f.Name, &f.Path, &f.Format, &f.Target, &pid, &created, &updated2); err != nil {
		return config.File{}, err
	}
	f.ID, f.ClusterID, f.PackageID = ids.ID(id), ids.ID(cid), ids.ID(pid)
	f.CreatedAt, f.UpdatedAt = fromMillis(created), fromMillis(updated2)
	return f, nil
}

// Files returns the cluster's layer files, by component then name.
func (db *DB) Files(ctx context.Context, clusterID ids.ID) ([]config.File, error) {
	return queryAll(ctx, db, "list config files", scanLayer,
		`SELECT `+layerCols+` FROM config_files WHERE cluster_id = ? ORDER BY component, id`, int64(clusterID))
}

// File returns the layer file with id, or config.ErrFileNotFound.
func (db *DB) File(ctx context.Context, id ids.ID) (config.File, error) {
	return getOne(ctx, db, config.ErrFileNotFound, "get config file", scanLayer,
		`SELECT `+layerCols+` FROM config_files WHERE id = ?`, int64(id))
}

const layerItemCols = `id, file_id, key, value, comment, effective, created_at, updated_at, created_by, updated_by`

func scanLayerItem(sc scanner) (config.Item, error) {
	var (
		it               config.Item
		id, fid          int64
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&id, &fid, &it.Key, &it.Value, &it.Comment, &it.Effective, &created, &updated, &it.CreatedBy, &it.UpdatedBy); err != nil {
		return config.Item{}, err
	}
	it.ID, it.FileID = ids.ID(id), ids.ID(fid)
	it.CreatedAt, it.UpdatedAt = fromMillis(created), fromMillis(updated)
	return it, nil
}

// Items returns one page of the layer's items, newest first, and the total.
func (db *DB) Items(ctx context.Context, fileID ids.ID, p paging.Page) ([]config.Item, int, error) {
	return listPage(ctx, db, "list config items", `SELECT COUNT(*) FROM config_items WHERE file_id = ?`,
		`SELECT `+layerItemCols+` FROM config_items WHERE file_id = ? ORDER BY id DESC`, []any{int64(fileID)}, p, scanLayerItem)
}

// AllItems returns every item of the layer, in file order.
func (db *DB) AllItems(ctx context.Context, fileID ids.ID) ([]config.Item, error) {
	return queryAll(ctx, db, "list config items", scanLayerItem,
		`SELECT `+layerItemCols+` FROM config_items WHERE file_id = ? ORDER BY id`, int64(fileID))
}

// Item returns the layer item with id, or config.ErrItemNotFound.
func (db *DB) Item(ctx context.Context, id ids.ID) (config.Item, error) {
	return getOne(ctx, db, config.ErrItemNotFound, "get config item", scanLayerItem,
		`SELECT `+layerItemCols+` FROM config_items WHERE id = ?`, int64(id))
}

// CreateItem inserts a layer item and mirrors it in every node file of
// the layer.
func (db *DB) CreateItem(ctx context.Context, it config.Item, newID func() ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO config_items (id, file_id, key, value, comment, effective, created_at, updated_at,
			created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(it.ID), int64(it.FileID), it.Key, it.Value, it.Comment,
			it.Effective, millis(it.CreatedAt), millis(it.UpdatedAt), it.CreatedBy, it.UpdatedBy)
		switch {
		case isUnique(err, "config_items.file_id"):
			return fmt.Errorf("%w: %s", config.ErrItemExists, it.Key)
		case isForeignKey(err):
			return fmt.Errorf("%w: %s", config.ErrFileNotFound, it.FileID)
		case err != nil:
			return err
		}
		return mirrorItem(ctx, tx, it, newID)
	})
	return configErr("create config item", err)
}

// mirrorItem gives every node file of the item's layer a node item for
// it: a new one, or the node's own key of that name, which becomes an
// override (dropped where it equals the layer). Either is the item's
// author's doing.
func mirrorItem(ctx context.Context, tx *sql.Tx, it config.Item, newID func() ids.ID) error {
	if _, err := tx.ExecContext(ctx, `UPDATE node_config_items SET layer_item_id = ?,
			value = CASE WHEN value = ? THEN NULL ELSE value END,
			effective = CASE WHEN effective = ? THEN NULL ELSE effective END,
			comment = '', updated_at = ?, updated_by = ?
		WHERE key = ? AND layer_item_id IS NULL AND file_id IN (SELECT id FROM node_config_files WHERE layer_id = ?)`,
		int64(it.ID), it.Value, it.Effective, millis(it.UpdatedAt), it.UpdatedBy, it.Key, int64(it.FileID)); err != nil {
		return err
	}
	files, err := txIDs(ctx, tx, `SELECT id FROM node_config_files WHERE layer_id = ? AND id NOT IN
		(SELECT file_id FROM node_config_items WHERE layer_item_id = ?) ORDER BY id`, int64(it.FileID), int64(it.ID))
	if err != nil {
		return err
	}
	for _, f := range files {
		if _, err := tx.ExecContext(ctx, `INSERT INTO node_config_items (id, file_id, layer_item_id, key, created_at, updated_at,
			created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, int64(newID()), f, int64(it.ID), it.Key, millis(it.CreatedAt),
			millis(it.UpdatedAt), it.CreatedBy, it.UpdatedBy); err != nil {
			return err
		}
	}
	return nil
}

// txIDs reads one column of ids.
func txIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// UpdateItem sets a layer item's value and comment.
func (db *DB) UpdateItem(ctx context.Context, id ids.ID, value, comment, by string, now time.Time) (config.Item, error) {
	var it config.Item
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE config_items SET value = ?, comment = ?, updated_at = ?, updated_by = ? WHERE id = ?`,
			value, comment, millis(now), by, int64(id))
		if err == nil {
			err = mustAffect(res, config.ErrItemNotFound)
		}
		if err != nil {
			return err
		}
		it, err = scanLayerItem(tx.QueryRowContext(ctx, `SELECT `+layerItemCols+` FROM config_items WHERE id = ?`, int64(id)))
		return err
	})
	if err != nil {
		return config.Item{}, configErr("update config item", err)
	}
	return it, nil
}

// DeleteItem removes a layer item; nodes that override its value keep the
// key as their own, changed by by.
func (db *DB) DeleteItem(ctx context.Context, id ids.ID, by string, now time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE node_config_items SET
				effective = COALESCE(effective, (SELECT effective FROM config_items WHERE id = ?)),
				comment = (SELECT comment FROM config_items WHERE id = ?),
				layer_item_id = NULL, updated_at = ?, updated_by = ?
			WHERE layer_item_id = ? AND value IS NOT NULL`, int64(id), int64(id), millis(now), by, int64(id)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM config_items WHERE id = ?`, int64(id))
		if err != nil {
			return err
		}
		return mustAffect(res, config.ErrItemNotFound)
	})
	return configErr("delete config item", err)
}

// SetItemsEffective sets effective on all the layer items, or none.
func (db *DB) SetItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string, now time.Time) error {
	return db.setEach(ctx, "set config items effective", itemIDs,
		`UPDATE config_items SET effective = ?1, updated_at = ?2, updated_by = ?4 WHERE id = ?3`, effective, by, now)
}

// setEach runs query (?1 effective, ?2 now, ?3 id, ?4 by) for each id in
// one transaction: all or, when one id does not exist, none.
func (db *DB) setEach(ctx context.Context, what string, itemIDs []ids.ID, query string, effective bool, by string, now time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range itemIDs {
			res, err := stmt.ExecContext(ctx, effective, millis(now), int64(id), by)
			if err == nil {
				err = mustAffect(res, config.ErrItemNotFound)
			}
			if errors.Is(err, config.ErrItemNotFound) {
				return fmt.Errorf("%w: %s", err, id)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return configErr(what, err)
}

const nodeFileCols = `id, node_id, COALESCE(layer_id, 0), name, path, format, target, created_at, updated_at, items_version`

func scanNodeFile(sc scanner) (config.NodeFile, error) {
	var (
		f                config.NodeFile
		id, nid, lid     int64
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&id, &nid, &lid, &f.Name, &f.Path, &f.Format, &f.Target, &created, &updated, &f.ItemsVersion); err != nil {
		return config.NodeFile{}, err
	}
	f.ID, f.NodeID, f.FileID = ids.ID(id), ids.ID(nid), ids.ID(lid)
	f.CreatedAt, f.UpdatedAt = fromMillis(created), fromMillis(updated)
	return f, nil
}

// NodeFiles returns the node's files, in manifest order.
func (db *DB) NodeFiles(ctx context.Context, nodeID ids.ID) ([]config.NodeFile, error) {
	return queryAll(ctx, db, "list node config files", scanNodeFile,
		`SELECT `+nodeFileCols+` FROM node_config_files WHERE node_id = ? ORDER BY id`, int64(nodeID))
}

// NodeFile returns the node file with id, or config.ErrFileNotFound.
func (db *DB) NodeFile(ctx context.Context, id ids.ID) (config.NodeFile, error) {
	return getOne(ctx, db, config.ErrFileNotFound, "get node config file", scanNodeFile,
		`SELECT `+nodeFileCols+` FROM node_config_files WHERE id = ?`, int64(id))
}

// nodeItemSelect reads node items with what they take from their layer.
const nodeItemSelect = `SELECT n.id, n.file_id, COALESCE(n.layer_item_id, 0), n.key,
		COALESCE(n.value, l.value, ''),
		CASE WHEN n.layer_item_id IS NULL THEN n.comment ELSE COALESCE(l.comment, '') END,
		COALESCE(n.effective, l.effective, 0), n.value IS NOT NULL, n.effective IS NOT NULL,
		n.created_at, MAX(COALESCE(n.updated_at, 0), COALESCE(l.updated_at, 0)), n.created_by,
		CASE WHEN COALESCE(l.updated_at, 0) > COALESCE(n.updated_at, 0) THEN l.updated_by ELSE n.updated_by END
	FROM node_config_items n LEFT JOIN config_items l ON l.id = n.layer_item_id`

// nodeItemFileOrder is a node file's order: its layer's keys in file
// order, then its own keys.
const nodeItemFileOrder = ` ORDER BY n.layer_item_id IS NULL, COALESCE(n.layer_item_id, n.id)`

func scanNodeItem(sc scanner) (config.NodeItem, error) {
	var (
		it               config.NodeItem
		id, fid, lid     int64
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&id, &fid, &lid, &it.Key, &it.Value, &it.Comment, &it.Effective, &it.ValueSet, &it.EffectiveSet,
		&created, &updated, &it.CreatedBy, &it.UpdatedBy); err != nil {
		return config.NodeItem{}, err
	}
	it.ID, it.NodeFileID, it.ItemID = ids.ID(id), ids.ID(fid), ids.ID(lid)
	it.CreatedAt, it.UpdatedAt = fromMillis(created), fromMillis(updated)
	if it.UpdatedAt.IsZero() || (updated.Valid && updated.Int64 == 0) {
		it.UpdatedAt = it.CreatedAt
	}
	return it, nil
}

// NodeItems returns one page of a node file's items, newest first.
func (db *DB) NodeItems(ctx context.Context, nodeFileID ids.ID, p paging.Page) ([]config.NodeItem, int, error) {
	// The page's ids come from the node_config_items_file_id index, so
	// that a page far down skips index entries, not joined rows.
	return listPage(ctx, db, "list node config items", `SELECT COUNT(*) FROM node_config_items WHERE file_id = ?`,
		nodeItemSelect+` WHERE n.id IN (SELECT id FROM node_config_items WHERE file_id = ? ORDER BY id DESC LIMIT ? OFFSET ?)
		ORDER BY n.id DESC`, []any{int64(nodeFileID)}, p, scanNodeItem)
}

// AllNodeItems returns every item of the node file in file order.
func (db *DB) AllNodeItems(ctx context.Context, nodeFileID ids.ID) ([]config.NodeItem, error) {
	return queryAll(ctx, db, "list node config items", scanNodeItem,
		nodeItemSelect+` WHERE n.file_id = ?`+nodeItemFileOrder, int64(nodeFileID))
}

// NodeItem returns the node item with id, or config.ErrItemNotFound.
func (db *DB) NodeItem(ctx context.Context, id ids.ID) (config.NodeItem, error) {
	return getOne(ctx, db, config.ErrItemNotFound, "get node config item", scanNodeItem,
		nodeItemSelect+` WHERE n.id = ?`, int64(id))
}

// CreateNodeItems inserts keys of the nodes' own, all or none.
func (db *DB) CreateNodeItems(ctx context.Context, items []config.NodeItem) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, it := range items {
			_, err := tx.ExecContext(ctx, `INSERT INTO node_config_items (id, file_id, key, value, comment, effective, created_at, updated_at,
				created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(it.ID), int64(it.NodeFileID), it.Key, it.Value,
				it.Comment, it.Effective, millis(it.CreatedAt), millis(it.UpdatedAt), it.CreatedBy, it.UpdatedBy)
			switch {
			case isUnique(err, "node_config_items.file_id"):
				return fmt.Errorf("%w: %s (file %s)", config.ErrItemExists, it.Key, it.NodeFileID)
			case isForeignKey(err):
				return fmt.Errorf("%w: %s", config.ErrFileNotFound, it.NodeFileID)
			case err != nil:
				return err
			}
		}
		return nil
	})
	return configErr("create node config items", err)
}

// SetNodeItem overrides a node item's value and, for a key of the node's
// own, its comment.
func (db *DB) SetNodeItem(ctx context.Context, id ids.ID, value, comment *string, by string, now time.Time) (config.NodeItem, error) {
	var v, c sql.NullString
	if value != nil {
		v = sql.NullString{String: *value, Valid: true}
	}
	if comment != nil {
		c = sql.NullString{String: *comment, Valid: true}
	}
	var it config.NodeItem
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE node_config_items SET
				value = CASE
					WHEN ?1 IS NULL THEN value
					WHEN layer_item_id IS NOT NULL AND ?1 = (SELECT value FROM config_items WHERE id = layer_item_id) THEN NULL
					ELSE ?1 END,
				comment = CASE WHEN ?2 IS NULL OR layer_item_id IS NOT NULL THEN comment ELSE ?2 END,
				updated_at = ?3, updated_by = ?5
			WHERE id = ?4`, v, c, millis(now), int64(id), by)
		if err == nil {
			err = mustAffect(res, config.ErrItemNotFound)
		}
		if err != nil {
			return err
		}
		it, err = scanNodeItem(tx.QueryRowContext(ctx, nodeItemSelect+` WHERE n.id = ?`, int64(id)))
		return err
	})
	if err != nil {
		return config.NodeItem{}, configErr("set node config item", err)
	}
	return it, nil
}

// ResetNodeItem drops a mirroring item's overrides, or deletes a key of
// the node's own.
func (db *DB) ResetNodeItem(ctx context.Context, id ids.ID, by string, now time.Time) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM node_config_items WHERE id = ? AND layer_item_id IS NULL`, int64(id))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		res, err = tx.ExecContext(ctx, `UPDATE node_config_items SET value = NULL, effective = NULL, updated_at = ?, updated_by = ?
			WHERE id = ?`, millis(now), by, int64(id))
		if err != nil {
			return err
		}
		return mustAffect(res, config.ErrItemNotFound)
	})
	return configErr("reset node config item", err)
}

// SetNodeItemsEffective switches node items on or off, all or none; an
// override equal to the layer is dropped.
func (db *DB) SetNodeItemsEffective(ctx context.Context, itemIDs []ids.ID, effective bool, by string, now time.Time) error {
	return db.setEach(ctx, "set node config items effective", itemIDs, `UPDATE node_config_items SET
			effective = CASE
				WHEN layer_item_id IS NOT NULL AND ?1 = (SELECT effective FROM config_items WHERE id = layer_item_id) THEN NULL
				ELSE ?1 END,
			updated_at = ?2, updated_by = ?4
		WHERE id = ?3`, effective, by, now)
}

// insertNodeConfig gives a new node its config files: for each imported
// file, the cluster's layer of it (created from the import when the
// cluster has none yet, its items authored by by), the node's file with
// its target resolved, and a node item mirroring each layer item.
func insertNodeConfig(ctx context.Context, tx *sql.Tx, clusterID, nodeID ids.ID, component, dataDir string, packageID ids.ID,
	imported []config.Imported, by string, now time.Time, newID func() ids.ID) error {
	for _, im := range imported {
		var layerID int64
		var target string
		err := tx.QueryRowContext(ctx, `SELECT id, target FROM config_files WHERE cluster_id = ? AND component = ? AND name = ?`,
			int64(clusterID), component, im.File.Name).Scan(&layerID, &target)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			layerID, target = int64(newID()), im.File.Target
			if _, err := tx.ExecContext(ctx, `INSERT INTO config_files (id, cluster_id, component, name, path, format, target, package_id, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, layerID, int64(clusterID), component, im.File.Name, im.File.Path, im.File.Format,
				target, int64(packageID), millis(now), millis(now)); err != nil {
				return err
			}
			for _, e := range im.Entries {
				if _, err := tx.ExecContext(ctx, `INSERT INTO config_items (id, file_id, key, value, comment, effective, created_at, updated_at,
					created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(newID()), layerID, e.Key, e.Value, e.Comment, e.Effective,
					millis(now), millis(now), by, by); err != nil {
					return err
				}
			}
		case err != nil:
			return err
		}
		resolved, err := config.ResolveTarget(target, dataDir)
		if err != nil {
			return err
		}
		fileID := int64(newID())
		if _, err := tx.ExecContext(ctx, `INSERT INTO node_config_files (id, node_id, layer_id, name, path, format, target, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, fileID, int64(nodeID), layerID, im.File.Name, im.File.Path, im.File.Format, resolved,
			millis(now), millis(now)); err != nil {
			return err
		}
		items, err := txIDs(ctx, tx, `SELECT id FROM config_items WHERE file_id = ? ORDER BY id`, layerID)
		if err != nil {
			return err
		}
		for _, itemID := range items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO node_config_items (id, file_id, layer_item_id, key, created_at, updated_at,
				created_by, updated_by) SELECT ?, ?, id, key, ?, ?, created_by, updated_by FROM config_items WHERE id = ?`,
				int64(newID()), fileID, millis(now), millis(now), itemID); err != nil {
				return err
			}
		}
	}
	return nil
}
