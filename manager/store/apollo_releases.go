package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/admq/admq-manager/internal/ids"
)

// RecordReleaseCluster notes that a release was made through the Open API
// for the Apollo cluster clusterName (a node's name).
func (db *DB) RecordReleaseCluster(ctx context.Context, releaseID ids.ID, clusterName string) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO apollo_release_clusters (release_id, cluster_name) VALUES (?, ?)
		ON CONFLICT (release_id) DO UPDATE SET cluster_name = excluded.cluster_name`, int64(releaseID), clusterName)
	if err != nil {
		return fmt.Errorf("store: record release cluster: %w", err)
	}
	return nil
}

// ReleaseClusters returns the Apollo clusters recorded for the releases,
// by release; releases with none are left out.
func (db *DB) ReleaseClusters(ctx context.Context, releaseIDs []ids.ID) (map[ids.ID]string, error) {
	out := map[ids.ID]string{}
	if len(releaseIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(releaseIDs))
	for i, id := range releaseIDs {
		args[i] = int64(id)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT release_id, cluster_name FROM apollo_release_clusters
		WHERE release_id IN (?`+strings.Repeat(", ?", len(args)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: release clusters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   int64
			name string
		)
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("store: release clusters: %w", err)
		}
		out[ids.ID(id)] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: release clusters: %w", err)
	}
	return out, nil
}
