package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/admq/admq-manager/internal/ids"
	"github.com/admq/admq-manager/manager/cluster"
	"github.com/admq/admq-manager/manager/fleet"
	"github.com/admq/admq-manager/manager/paging"
	"github.com/admq/admq-manager/manager/pkg"
)

var _ cluster.Store = (*DB)(nil)

// ServerByManagerIP returns the server whose manager IP is ip, or
// fleet.ErrServerNotFound.
func (db *DB) ServerByManagerIP(ctx context.Context, ip string) (cluster.ServerRef, error) {
	return getOne(ctx, db, fleet.ErrServerNotFound, "get server by manager ip", func(sc scanner) (cluster.ServerRef, error) {
		var (
			s  cluster.ServerRef
			id int64
		)
		err := sc.Scan(&id, &s.ManagerIP, &s.DataIP, &s.AgentStateDir)
		s.ID = ids.ID(id)
		return s, err
	}, `SELECT id, manager_ip, data_ip, COALESCE(json_extract(NULLIF(facts, ''), '$.stateDir'), '') FROM servers WHERE manager_ip = ?`, ip)
}

// clusterErrors are the domain errors the cluster writes return as they are.
var clusterErrors = []error{
	cluster.ErrClusterExists, cluster.ErrClusterNotFound, fleet.ErrServerNotFound, pkg.ErrPackageNotFound, cluster.ErrServerRepeated,
}

func clusterErr(what string, err error) error { return domainErr(what, err, clusterErrors) }

// domainErr returns err as it is when it is one of known, which callers
// branch on, and wrapped as the store's own failure to do what otherwise.
func domainErr(what string, err error, known []error) error {
	if err == nil {
		return nil
	}
	for _, e := range known {
		if errors.Is(err, e) {
			return err
		}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// CreateCluster inserts c with its nodes, their config files and items and
// their ordinals, in one transaction. A taken name is
// cluster.ErrClusterExists.
func (db *DB) CreateCluster(ctx context.Context, c *cluster.Cluster, nodes []cluster.NewNode, newID func() ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO clusters (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			int64(c.ID), c.Name, c.Description, millis(c.CreatedAt), millis(c.UpdatedAt))
		if isUnique(err, "clusters.name") {
			return fmt.Errorf("%w: %s", cluster.ErrClusterExists, c.Name)
		}
		if err != nil {
			return err
		}
		return insertNodes(ctx, tx, nodes, c.CreatedAt, newID)
	})
	return clusterErr("create cluster", err)
}

// AddNodes inserts nodes, their files, items and ordinals into the cluster
// in one transaction and sets the cluster's update time.
func (db *DB) AddNodes(ctx context.Context, clusterID ids.ID, nodes []cluster.NewNode, now time.Time, newID func() ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE clusters SET updated_at = ? WHERE id = ?`, millis(now), int64(clusterID))
		if err == nil {
			err = mustAffect(res, cluster.ErrClusterNotFound)
		}
		if err != nil {
			return err
		}
		return insertNodes(ctx, tx, nodes, now, newID)
	})
	return clusterErr("add cluster nodes", err)
}

func insertNodes(ctx context.Context, tx *sql.Tx, nodes []cluster.NewNode, now time.Time, newID func() ids.ID) error {
	nodeStmt, err := tx.PrepareContext(ctx, `INSERT INTO cluster_nodes (
			id, cluster_id, server_id, package_id, component, component_type, manager_ip, data_ip,
			program_dir, data_dir, node_dir, server_port, ordinal, deploy_state, run_state,
			created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer nodeStmt.Close()

	for _, nn := range nodes {
		n := nn.Node
		var serverOK, packageOK bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM servers WHERE id = ?), EXISTS (SELECT 1 FROM packages WHERE id = ?)`,
			int64(n.ServerID), int64(n.PackageID)).Scan(&serverOK, &packageOK); err != nil {
			return err
		}
		switch {
		case !serverOK:
			return fmt.Errorf("%w: server %s (%s) was deleted meanwhile", fleet.ErrServerNotFound, n.ServerID, n.ManagerIP)
		case !packageOK:
			return fmt.Errorf("%w: package %s was deleted meanwhile", pkg.ErrPackageNotFound, n.PackageID)
		}
		_, err := nodeStmt.ExecContext(ctx, int64(n.ID), int64(n.ClusterID), int64(n.ServerID), int64(n.PackageID), n.Component,
			n.ComponentType, n.ManagerIP, n.DataIP, n.ProgramDir, n.DataDir, n.NodeDir, n.ServerPort, n.Ordinal,
			n.DeployState, n.RunState, millis(n.CreatedAt), millis(n.UpdatedAt))
		switch {
		case isUnique(err, "cluster_nodes.cluster_id"):
			return fmt.Errorf("%w: %s already has a %s node in the cluster, or its ordinal %d is taken", cluster.ErrServerRepeated, n.ManagerIP, n.Component, n.Ordinal)
		case isForeignKey(err):
			return fmt.Errorf("%w: cluster %s", cluster.ErrClusterNotFound, n.ClusterID)
		case err != nil:
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cluster_ordinals (cluster_id, component, server_id, ordinal) VALUES (?, ?, ?, ?)
			ON CONFLICT (cluster_id, component, server_id) DO NOTHING`,
			int64(n.ClusterID), n.Component, int64(n.ServerID), n.Ordinal); err != nil {
			if isUnique(err, "cluster_ordinals.cluster_id") {
				return fmt.Errorf("%w: ordinal %d of %s is taken in the cluster", cluster.ErrServerRepeated, n.Ordinal, n.Component)
			}
			return err
		}
		if err := insertNodeConfig(ctx, tx, n.ClusterID, n.ID, n.Component, n.DataDir, n.PackageID, nn.Config, nn.By, now, newID); err != nil {
			return err
		}
	}
	return nil
}

// Ordinals returns the ordinals ever given for component in the cluster,
// by server.
func (db *DB) Ordinals(ctx context.Context, clusterID ids.ID, component string) (map[ids.ID]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT server_id, ordinal FROM cluster_ordinals WHERE cluster_id = ? AND component = ?`,
		int64(clusterID), component)
	if err != nil {
		return nil, fmt.Errorf("store: cluster ordinals: %w", err)
	}
	defer rows.Close()
	out := map[ids.ID]int{}
	for rows.Next() {
		var sid int64
		var o int
		if err := rows.Scan(&sid, &o); err != nil {
			return nil, fmt.Errorf("store: cluster ordinals: %w", err)
		}
		out[ids.ID(sid)] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: cluster ordinals: %w", err)
	}
	return out, nil
}

const clusterCols = `c.id, c.name, c.description, c.created_at, c.updated_at,
	(SELECT COUNT(*) FROM cluster_nodes n WHERE n.cluster_id = c.id),
	COALESCE((SELECT group_concat(component, ',') FROM (SELECT DISTINCT component FROM cluster_nodes n WHERE n.cluster_id = c.id ORDER BY component)), '')`

func scanCluster(sc scanner) (cluster.Cluster, error) {
	var (
		c                cluster.Cluster
		id               int64
		created, updated sql.NullInt64
		components       string
	)
	if err := sc.Scan(&id, &c.Name, &c.Description, &created, &updated, &c.NodeCount, &components); err != nil {
		return cluster.Cluster{}, err
	}
	c.ID = ids.ID(id)
	c.CreatedAt, c.UpdatedAt = fromMillis(created), fromMillis(updated)
	c.Components = []string{}
	if components != "" {
		c.Components = strings.Split(components, ",")
		slices.Sort(c.Components)
	}
	return c, nil
}

// Cluster returns the cluster with id, or cluster.ErrClusterNotFound.
func (db *DB) Cluster(ctx context.Context, id ids.ID) (cluster.Cluster, error) {
	return getOne(ctx, db, cluster.ErrClusterNotFound, "get cluster", scanCluster,
		`SELECT `+clusterCols+` FROM clusters c WHERE c.id = ?`, int64(id))
}

// ClusterByName returns the cluster named name, or cluster.ErrClusterNotFound.
func (db *DB) ClusterByName(ctx context.Context, name string) (cluster.Cluster, error) {
	return getOne(ctx, db, cluster.ErrClusterNotFound, "get cluster by name", scanCluster,
		`SELECT `+clusterCols+` FROM clusters c WHERE c.name = ?`, name)
}

// Clusters returns one page of clusters, newest first, and the total.
func (db *DB) Clusters(ctx context.Context, p paging.Page) ([]cluster.Cluster, int, error) {
	return listPage(ctx, db, "list clusters", `SELECT COUNT(*) FROM clusters`,
		`SELECT `+clusterCols+` FROM clusters c ORDER BY c.id DESC`, nil, p, scanCluster)
}

// ClusterCounts returns how many clusters, nodes and config items exist.
func (db *DB) ClusterCounts(ctx context.Context) (clusters, nodes, items int, err error) {
	err = db.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM clusters), (SELECT COUNT(*) FROM cluster_nodes),
		(SELECT COUNT(*) FROM node_config_items)`).Scan(&clusters, &nodes, &items)
	if err != nil {
		err = fmt.Errorf("store: count clusters: %w", err)
	}
	return
}

const nodeCols = `id, cluster_id, server_id, package_id, component, component_type, manager_ip, data_ip,
	program_dir, data_dir, node_dir, server_port, ordinal, deploy_state, run_state,
	created_at, updated_at`

const nodeOrder = ` ORDER BY CASE component_type WHEN 0 THEN 9 ELSE component_type END, component, ordinal, id`

func scanNode(sc scanner) (cluster.Node, error) {
	var (
		n                 cluster.Node
		id, cid, sid, pid int64
		created, updated  sql.NullInt64
	)
	err := sc.Scan(&id, &cid, &sid, &pid, &n.Component, &n.ComponentType, &n.ManagerIP, &n.DataIP,
		&n.ProgramDir, &n.DataDir, &n.NodeDir, &n.ServerPort, &n.Ordinal, &n.DeployState, &n.RunState,
		&created, &updated)
	if err != nil {
		return cluster.Node{}, err
	}
	n.ID, n.ClusterID, n.ServerID, n.PackageID = ids.ID(id), ids.ID(cid), ids.ID(sid), ids.ID(pid)
	n.CreatedAt, n.UpdatedAt = fromMillis(created), fromMillis(updated)
	return n, nil
}

// Nodes returns one page of the cluster's nodes and the total.
func (db *DB) Nodes(ctx context.Context, clusterID ids.ID, p paging.Page) ([]cluster.Node, int, error) {
	return listPage(ctx, db, "list cluster nodes", `SELECT COUNT(*) FROM cluster_nodes WHERE cluster_id = ?`,
		`SELECT `+nodeCols+` FROM cluster_nodes WHERE cluster_id = ?`+nodeOrder, []any{int64(clusterID)}, p, scanNode)
}

// AllNodes returns every node of the cluster.
func (db *DB) AllNodes(ctx context.Context, clusterID ids.ID) ([]cluster.Node, error) {
	return queryAll(ctx, db, "list cluster nodes", scanNode,
		`SELECT `+nodeCols+` FROM cluster_nodes WHERE cluster_id = ?`+nodeOrder, int64(clusterID))
}

// NodesOnServers returns every node, of any cluster, on those servers.
func (db *DB) NodesOnServers(ctx context.Context, serverIDs []ids.ID) ([]cluster.Node, error) {
	if len(serverIDs) == 0 {
		return nil, nil
	}
	// One text for any number of servers: queryAll keeps it prepared.
	return queryAll(ctx, db, "list nodes on servers", scanNode,
		`SELECT `+nodeCols+` FROM cluster_nodes WHERE server_id IN (SELECT value FROM json_each(?)) ORDER BY id`, idsJSON(serverIDs))
}

// ClusterNamesOnServers returns, by server, the sorted names of the
// clusters with nodes on it.
func (db *DB) ClusterNamesOnServers(ctx context.Context, serverIDs []ids.ID) (map[ids.ID][]string, error) {
	out := map[ids.ID][]string{}
	if len(serverIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(serverIDs))
	for i, id := range serverIDs {
		args[i] = int64(id)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT n.server_id, c.name FROM cluster_nodes n JOIN clusters c ON c.id = n.cluster_id
		WHERE n.server_id IN (?`+strings.Repeat(", ?", len(args)-1)+`) ORDER BY n.server_id, c.name`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: cluster names on servers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			sid  int64
			name string
		)
		if err := rows.Scan(&sid, &name); err != nil {
			return nil, fmt.Errorf("store: cluster names on servers: %w", err)
		}
		out[ids.ID(sid)] = append(out[ids.ID(sid)], name)
	}
	return out, rows.Err()
}

// Node returns the node with id, or cluster.ErrNodeNotFound.
func (db *DB) Node(ctx context.Context, id ids.ID) (cluster.Node, error) {
	return getOne(ctx, db, cluster.ErrNodeNotFound, "get cluster node", scanNode,
		`SELECT `+nodeCols+` FROM cluster_nodes WHERE id = ?`, int64(id))
}

// DeleteCluster removes the cluster; its nodes, their files and items, and
// its ordinals go with it (ON DELETE CASCADE).
func (db *DB) DeleteCluster(ctx context.Context, id ids.ID) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM clusters WHERE id = ?`, int64(id))
		if err != nil {
			return err
		}
		return mustAffect(res, cluster.ErrClusterNotFound)
	})
	return clusterErr("delete cluster", err)
}

// queryAll reads every row query selects. The query is kept prepared
// (db.query), so its text must not vary with the arguments: a list of ids
// goes in as one JSON array (idsJSON, json_each).
func queryAll[T any](ctx context.Context, db *DB, what string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}
