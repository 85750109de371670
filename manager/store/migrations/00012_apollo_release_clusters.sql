-- The Apollo cluster of each release made through the Open API for one
-- node's cluster (a flush of that node's file). Releases not listed here
-- belong to the default cluster, but for the console's flushes of one node.

-- +goose Up
CREATE TABLE apollo_release_clusters (
    release_id   INTEGER PRIMARY KEY REFERENCES config_releases (id) ON DELETE CASCADE,
    cluster_name TEXT    NOT NULL
);

-- +goose Down
DROP TABLE apollo_release_clusters;
