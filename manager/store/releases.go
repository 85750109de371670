package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/config"
	"github.com/admq/admq-manager/manager/paging"
)

var releaseErrors = []error{config.ErrReleaseNotFound, config.ErrFileNotFound, config.ErrItemNotFound, config.ErrNodeNotFound}

func releaseErr(what string, err error) error { return domainErr(what, err, releaseErrors) }

// ClusterTopology returns the cluster's name and every node.
func (db *DB) ClusterTopology(ctx context.Context, clusterID ids.ID) (config.Topology, error) {
	t := config.Topology{ClusterID: clusterID}
	err := db.r.QueryRowContext(ctx, `SELECT name FROM clusters WHERE id = ?`, int64(clusterID)).Scan(&t.Cluster)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("%w: cluster %s", config.ErrNodeNotFound, clusterID)
	}
	if err != nil {
		return t, fmt.Errorf("store: cluster topology: %w", err)
	}
	t.Members, err = queryAll(ctx, db, "cluster topology", scanMember,
		`SELECT id, package_id, component, ordinal, node_dir, program_dir, data_dir, manager_ip, data_ip, server_port
		FROM cluster_nodes WHERE cluster_id = ?`+nodeOrder, int64(clusterID))
	return t, err
}

// releaseItem is a layer item as a release keeps it.
type releaseItem struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Comment   string `json:"comment,omitempty"`
	Effective bool   `json:"effective"`
}

// releaseNodeItem is a node's item as a release keeps it.
type releaseNodeItem struct {
	Key          string `json:"key"`
	Value        string `json:"value"`
	Comment      string `json:"comment,omitempty"`
	Effective    bool   `json:"effective"`
	Layer        bool   `json:"layer,omitempty"`
	ValueSet     bool   `json:"valueSet,omitempty"`
	EffectiveSet bool   `json:"effectiveSet,omitempty"`
}

func encodeItems(items []config.Item) string {
	out := make([]releaseItem, len(items))
	for i, it := range items {
		out[i] = releaseItem{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func decodeItems(s string) ([]config.Item, error) {
	var in []releaseItem
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	out := make([]config.Item, len(in))
	for i, it := range in {
		out[i] = config.Item{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective}
	}
	return out, nil
}

func encodeNodeItems(items []config.NodeItem) string {
	out := make([]releaseNodeItem, len(items))
	for i, it := range items {
		out[i] = releaseNodeItem{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective,
			Layer: !it.ItemID.IsZero(), ValueSet: it.ValueSet, EffectiveSet: it.EffectiveSet}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// decodeNodeItems reads a release's node items; a mirrored one gets a
// non-zero ItemID (1) so that Source says "cluster" unless overridden.
func decodeNodeItems(s string) ([]config.NodeItem, error) {
	var in []releaseNodeItem
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, err
	}
	out := make([]config.NodeItem, len(in))
	for i, it := range in {
		out[i] = config.NodeItem{Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective,
			ValueSet: it.ValueSet, EffectiveSet: it.EffectiveSet}
		if it.Layer {
			out[i].ItemID = 1
		}
	}
	return out, nil
}

// CreateRelease stores the release with its nodes, numbered after the
// file's last one, and with restoreDraft sets the draft to its items.
func (db *DB) CreateRelease(ctx context.Context, r *config.Release, nodes []config.ReleaseNode, restoreDraft bool, newID func() ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM config_releases WHERE file_id = ?`,
			int64(r.FileID)).Scan(&r.Number); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO config_releases (id, file_id, number, kind, title, comment, created_by, created_at,
				job_id, rollback_of, state, items) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(r.ID), int64(r.FileID), r.Number, r.Kind, r.Title, r.Comment, r.CreatedBy, millis(r.CreatedAt),
			nullID(r.JobID), nullID(r.RollbackOf), string(r.State), encodeItems(r.Items))
		if isForeignKey(err) {
			return fmt.Errorf("%w: %s", config.ErrFileNotFound, r.FileID)
		}
		if err != nil {
			return err
		}
		for i, n := range nodes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO config_release_nodes (release_id, node_id, node_file_id, node_dir, position,
					path, items, content, sha256, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				int64(r.ID), int64(n.NodeID), int64(n.NodeFileID), n.NodeDir, i, n.Path, encodeNodeItems(n.Items), n.Content,
				n.SHA256, string(n.State), millis(n.UpdatedAt)); err != nil {
				return err
			}
		}
		if !restoreDraft {
			return nil
		}
		if err := restoreLayer(ctx, tx, r.FileID, r.Items, r.CreatedBy, r.CreatedAt, newID); err != nil {
			return fmt.Errorf("restore the draft of release %d: %w", r.Number, err)
		}
		for _, n := range nodes {
			if err := restoreNode(ctx, tx, n.NodeFileID, n.Items, r.CreatedBy, r.CreatedAt, newID); err != nil {
				return fmt.Errorf("restore the draft of %s: %w", n.NodeDir, err)
			}
		}
		return nil
	})
	return releaseErr("create config release", err)
}

// restoreLayer sets a layer's items to items, by key, as by: kept keys
// keep their ids, missing ones are added (and mirrored), others deleted (a
// node that overrides a deleted key's value keeps it as its own).
func restoreLayer(ctx context.Context, tx *sql.Tx, fileID ids.ID, items []config.Item, by string, now time.Time, newID func() ids.ID) error {
	current := map[string]int64{}
	rows, err := tx.QueryContext(ctx, `SELECT key, id FROM config_items WHERE file_id = ?`, int64(fileID))
	if err != nil {
		return err
	}
	for rows.Next() {
		var k string
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			rows.Close()
			return err
		}
		current[k] = id
	}
	rows.Close()
	want := map[string]bool{}
	for _, it := range items {
		want[it.Key] = true
		if id, ok := current[it.Key]; ok {
			if _, err := tx.ExecContext(ctx, `UPDATE config_items SET value = ?, comment = ?, effective = ?, updated_at = ?, updated_by = ?
				WHERE id = ? AND (value != ? OR comment != ? OR effective != ?)`, it.Value, it.Comment, it.Effective, millis(now), by, id,
				it.Value, it.Comment, it.Effective); err != nil {
				return err
			}
			continue
		}
		n := config.Item{ID: newID(), FileID: fileID, Key: it.Key, Value: it.Value, Comment: it.Comment, Effective: it.Effective,
			CreatedAt: now, UpdatedAt: now, CreatedBy: by, UpdatedBy: by}
		if _, err := tx.ExecContext(ctx, `INSERT INTO config_items (id, file_id, key, value, comment, effective, created_at, updated_at,
			created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(n.ID), int64(fileID), n.Key, n.Value, n.Comment, n.Effective,
			millis(now), millis(now), by, by); err != nil {
			return err
		}
		if err := mirrorItem(ctx, tx, n, newID); err != nil {
			return err
		}
	}
	for k, id := range current {
		if want[k] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE node_config_items SET
				effective = COALESCE(effective, (SELECT effective FROM config_items WHERE id = ?1)),
				comment = (SELECT comment FROM config_items WHERE id = ?1), layer_item_id = NULL, updated_at = ?2, updated_by = ?3
			WHERE layer_item_id = ?1 AND value IS NOT NULL`, id, millis(now), by); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM config_items WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}

// restoreNode sets a node file's overrides and own keys to items, as by;
// a key it leaves as it was keeps its last change.
func restoreNode(ctx context.Context, tx *sql.Tx, nodeFileID ids.ID, items []config.NodeItem, by string, now time.Time, newID func() ids.ID) error {
	type row struct {
		id    int64
		layer bool
	}
	current := map[string]row{}
	rows, err := tx.QueryContext(ctx, `SELECT key, id, layer_item_id IS NOT NULL FROM node_config_items WHERE file_id = ?`, int64(nodeFileID))
	if err != nil {
		return err
	}
	for rows.Next() {
		var k string
		var r row
		if err := rows.Scan(&k, &r.id, &r.layer); err != nil {
			rows.Close()
			return err
		}
		current[k] = r
	}
	rows.Close()
	want := map[string]bool{}
	for _, it := range items {
		want[it.Key] = true
		var v sql.NullString
		var e sql.NullBool
		if it.ValueSet || it.ItemID.IsZero() {
			v = sql.NullString{String: it.Value, Valid: true}
		}
		if it.EffectiveSet || it.ItemID.IsZero() {
			e = sql.NullBool{Bool: it.Effective, Valid: true}
		}
		cur, ok := current[it.Key]
		switch {
		case ok && cur.layer:
			// The layer has the key: the node's overrides, if any.
			_, err = tx.ExecContext(ctx, `UPDATE node_config_items SET value = ?1, effective = ?2, updated_at = ?3, updated_by = ?4
				WHERE id = ?5 AND (value IS NOT ?1 OR effective IS NOT ?2)`, v, e, millis(now), by, cur.id)
		case ok:
			_, err = tx.ExecContext(ctx, `UPDATE node_config_items SET value = ?1, effective = ?2, comment = ?3, updated_at = ?4, updated_by = ?5
				WHERE id = ?6 AND (value IS NOT ?1 OR effective IS NOT ?2 OR comment IS NOT ?3)`, it.Value, it.Effective, it.Comment, millis(now), by, cur.id)
		case it.ItemID.IsZero():
			_, err = tx.ExecContext(ctx, `INSERT INTO node_config_items (id, file_id, key, value, comment, effective, created_at, updated_at,
				created_by, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(newID()), int64(nodeFileID), it.Key, it.Value, it.Comment,
				it.Effective, millis(now), millis(now), by, by)
		}
		if err != nil {
			return err
		}
	}
	for k, cur := range current {
		if !want[k] && !cur.layer {
			if _, err := tx.ExecContext(ctx, `DELETE FROM node_config_items WHERE id = ?`, cur.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteRelease removes a release none of whose nodes began.
func (db *DB) DeleteRelease(ctx context.Context, id ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var begun int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM config_release_nodes WHERE release_id = ? AND state != 'pending'`,
			int64(id)).Scan(&begun); err != nil {
			return err
		}
		if begun > 0 {
			return fmt.Errorf("release %s has begun on %d nodes", id, begun)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM config_releases WHERE id = ?`, int64(id))
		if err != nil {
			return err
		}
		return mustAffect(res, config.ErrReleaseNotFound)
	})
	return releaseErr("delete config release", err)
}

const releaseCols = `r.id, r.file_id, f.cluster_id, f.component, f.name, r.number, r.kind, r.title, r.comment, r.created_by, r.created_at,
	COALESCE(r.job_id, 0), COALESCE(r.rollback_of, 0), r.state, r.reason, r.finished_at, r.items`

const releaseFrom = ` FROM config_releases r JOIN config_files f ON f.id = r.file_id`

func scanRelease(sc scanner) (config.Release, error) {
	var (
		r                       config.Release
		id, fid, cid, job, back int64
		state, items            string
		created, finished       sql.NullInt64
	)
	if err := sc.Scan(&id, &fid, &cid, &r.Component, &r.FileName, &r.Number, &r.Kind, &r.Title, &r.Comment, &r.CreatedBy, &created,
		&job, &back, &state, &r.Reason, &finished, &items); err != nil {
		return config.Release{}, err
	}
	r.ID, r.FileID, r.ClusterID, r.JobID, r.RollbackOf = ids.ID(id), ids.ID(fid), ids.ID(cid), ids.ID(job), ids.ID(back)
	r.State, r.CreatedAt, r.FinishedAt = config.ReleaseState(state), fromMillis(created), fromMillis(finished)
	var err error
	r.Items, err = decodeItems(items)
	return r, err
}

// Release returns the release with id.
func (db *DB) Release(ctx context.Context, id ids.ID) (config.Release, error) {
	return getOne(ctx, db, config.ErrReleaseNotFound, "get config release", scanRelease,
		`SELECT `+releaseCols+releaseFrom+` WHERE r.id = ?`, int64(id))
}

// Releases returns one page of the file's releases, newest first.
func (db *DB) Releases(ctx context.Context, fileID, nodeID ids.ID, p paging.Page) ([]config.Release, int, error) {
	where, args := ` WHERE r.file_id = ?`, []any{int64(fileID)}
	if !nodeID.IsZero() {
		where += ` AND r.id IN (SELECT release_id FROM config_release_nodes WHERE node_id = ?)`
		args = append(args, int64(nodeID))
	}
	return listPage(ctx, db, "list config releases", `SELECT COUNT(*)`+releaseFrom+where,
		`SELECT `+releaseCols+releaseFrom+where+` ORDER BY r.number DESC`, args, p, scanRelease)
}

const releaseNodeCols = `release_id, node_id, node_file_id, node_dir, path, items, content, sha256, state, detail, updated_at, finished_at`

func scanReleaseNode(sc scanner) (config.ReleaseNode, error) {
	var (
		n                 config.ReleaseNode
		rid, nid, fid     int64
		items, state      string
		updated, finished sql.NullInt64
	)
	if err := sc.Scan(&rid, &nid, &fid, &n.NodeDir, &n.Path, &items, &n.Content, &n.SHA256, &state, &n.Detail, &updated, &finished); err != nil {
		return config.ReleaseNode{}, err
	}
	n.ReleaseID, n.NodeID, n.NodeFileID = ids.ID(rid), ids.ID(nid), ids.ID(fid)
	n.State, n.UpdatedAt, n.FinishedAt = config.NodeState(state), fromMillis(updated), fromMillis(finished)
	var err error
	n.Items, err = decodeNodeItems(items)
	return n, err
}

// ReleaseNodes returns the release's nodes in the order they were given.
func (db *DB) ReleaseNodes(ctx context.Context, id ids.ID) ([]config.ReleaseNode, error) {
	return queryAll(ctx, db, "list config release nodes", scanReleaseNode,
		`SELECT `+releaseNodeCols+` FROM config_release_nodes WHERE release_id = ? ORDER BY position`, int64(id))
}

// SetReleaseNode moves a release's node to out.State, records what its
// node file now holds, and settles the release's state.
func (db *DB) SetReleaseNode(ctx context.Context, releaseID, nodeID ids.ID, out config.Outcome) (config.Release, error) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		var (
			from, sha string
			fileID    int64
		)
		err := tx.QueryRowContext(ctx, `SELECT state, sha256, node_file_id FROM config_release_nodes WHERE release_id = ? AND node_id = ?`,
			int64(releaseID), int64(nodeID)).Scan(&from, &sha, &fileID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: release %s has no node %s", config.ErrReleaseNotFound, releaseID, nodeID)
		}
		if err != nil {
			return err
		}
		if !config.CanMove(config.NodeState(from), out.State) {
			return fmt.Errorf("release %s node %s: %s cannot become %s", releaseID, nodeID, from, out.State)
		}
		var finished sql.NullInt64
		if out.State.Settled() {
			finished = millis(out.At)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE config_release_nodes SET state = ?, detail = CASE WHEN ? = '' THEN detail ELSE ? END,
				updated_at = ?, finished_at = ? WHERE release_id = ? AND node_id = ?`,
			string(out.State), out.Detail, out.Detail, millis(out.At), finished, int64(releaseID), int64(nodeID)); err != nil {
			return err
		}
		switch out.State {
		case config.NodeApplied, config.NodeUnchanged:
			_, err = tx.ExecContext(ctx, `UPDATE node_config_files SET applied_release_id = ?, applied_sha256 = ?, applied_unknown = 0,
				applied_at = ? WHERE id = ?`, int64(releaseID), sha, millis(out.At), fileID)
		case config.NodeInterrupted:
			_, err = tx.ExecContext(ctx, `UPDATE node_config_files SET applied_unknown = 1, applied_at = ? WHERE id = ?`, millis(out.At), fileID)
		case config.NodeRestored, config.NodeFailed:
			// The node has what it had before: known again after an
			// interrupted apply turned out so.
			_, err = tx.ExecContext(ctx, `UPDATE node_config_files SET applied_unknown = 0 WHERE id = ?`, fileID)
		}
		if err != nil {
			return err
		}
		return settleRelease(ctx, tx, releaseID, "", out.At)
	})
	if err != nil {
		return config.Release{}, releaseErr("set config release node", err)
	}
	return db.Release(ctx, releaseID)
}

// settleRelease sets the release's state from its nodes'; reason, when
// given, is the release's.
func settleRelease(ctx context.Context, tx *sql.Tx, id ids.ID, reason string, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT state FROM config_release_nodes WHERE release_id = ? ORDER BY position`, int64(id))
	if err != nil {
		return err
	}
	var states []config.NodeState
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		states = append(states, config.NodeState(s))
	}
	rows.Close()
	state := config.ReleaseStateOf(states)
	var finished sql.NullInt64
	if state == config.ReleaseApplied || state == config.ReleaseFailed {
		finished = millis(now)
	}
	_, err = tx.ExecContext(ctx, `UPDATE config_releases SET state = ?, finished_at = COALESCE(finished_at, ?),
			reason = CASE WHEN ? = '' THEN reason ELSE ? END WHERE id = ?`, string(state), finished, reason, reason, int64(id))
	return err
}

// FinishRelease cancels the release's pending nodes and settles it.
func (db *DB) FinishRelease(ctx context.Context, id ids.ID, reason string, now time.Time) (config.Release, error) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE config_release_nodes SET state = 'cancelled', detail = ?, updated_at = ?, finished_at = ?
			WHERE release_id = ? AND state = 'pending'`, notApplied(reason), millis(now), millis(now), int64(id))
		if err != nil {
			return err
		}
		_ = res
		return settleRelease(ctx, tx, id, reason, now)
	})
	if err != nil {
		return config.Release{}, releaseErr("finish config release", err)
	}
	return db.Release(ctx, id)
}

func notApplied(reason string) string {
	if reason == "" {
		return "not applied"
	}
	return "not applied: " + reason
}

// FailUnfinishedReleases settles the releases a stopped manager left.
func (db *DB) FailUnfinishedReleases(ctx context.Context, reason string, now time.Time) ([]config.Release, error) {
	var list []ids.ID
	err := db.write(ctx, func(tx *sql.Tx) error {
		found, err := txIDs(ctx, tx, `SELECT id FROM config_releases WHERE state IN ('pending', 'applying') ORDER BY id`)
		if err != nil {
			return err
		}
		for _, id := range found {
			list = append(list, ids.ID(id))
			if _, err := tx.ExecContext(ctx, `UPDATE node_config_files SET applied_unknown = 1, applied_at = ? WHERE id IN
				(SELECT node_file_id FROM config_release_nodes WHERE release_id = ? AND state = 'applying')`, millis(now), id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE config_release_nodes SET state = 'interrupted', detail = ?, updated_at = ?, finished_at = ?
				WHERE release_id = ? AND state = 'applying'`, reason, millis(now), millis(now), id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE config_release_nodes SET state = 'cancelled', detail = ?, updated_at = ?, finished_at = ?
				WHERE release_id = ? AND state = 'pending'`, notApplied(reason), millis(now), millis(now), id); err != nil {
				return err
			}
			if err := settleRelease(ctx, tx, ids.ID(id), reason, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: fail unfinished config releases: %w", err)
	}
	out := make([]config.Release, 0, len(list))
	for _, id := range list {
		r, err := db.Release(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// InterruptedNodes returns the release nodes left interrupted on nodes.
func (db *DB) InterruptedNodes(ctx context.Context, nodeIDs []ids.ID) ([]config.ReleaseNode, error) {
	return queryAll(ctx, db, "list interrupted release nodes", scanReleaseNode,
		`SELECT `+releaseNodeCols+` FROM config_release_nodes WHERE state = 'interrupted'
			AND node_id IN (SELECT value FROM json_each(?)) ORDER BY release_id`, idsJSON(nodeIDs))
}

// AppliedFiles returns what the manager knows is on the nodes' files.
func (db *DB) AppliedFiles(ctx context.Context, nodeIDs []ids.ID) (map[ids.ID]config.Applied, error) {
	out := map[ids.ID]config.Applied{}
	if len(nodeIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(nodeIDs))
	for i, id := range nodeIDs {
		args[i] = int64(id)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, COALESCE(applied_release_id, 0), applied_sha256, applied_unknown, applied_at
		FROM node_config_files WHERE (applied_sha256 != '' OR applied_unknown = 1) AND node_id IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: applied config files: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a       config.Applied
			id, rel int64
			at      sql.NullInt64
		)
		if err := rows.Scan(&id, &rel, &a.SHA256, &a.Unknown, &at); err != nil {
			return nil, fmt.Errorf("store: applied config files: %w", err)
		}
		a.NodeFileID, a.ReleaseID, a.At = ids.ID(id), ids.ID(rel), fromMillis(at)
		out[a.NodeFileID] = a
	}
	return out, rows.Err()
}

// RecordApplied notes what node files hold without a release.
func (db *DB) RecordApplied(ctx context.Context, applied []config.Applied) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		for _, a := range applied {
			if _, err := tx.ExecContext(ctx, `UPDATE node_config_files SET applied_sha256 = ?, applied_unknown = 0, applied_at = ? WHERE id = ?`,
				a.SHA256, millis(a.At), int64(a.NodeFileID)); err != nil {
				return err
			}
		}
		return nil
	})
	return releaseErr("record applied config", err)
}
