-- Apollo's namespace lock for the Open API (--namespace-lock): the first
-- operator to edit a namespace (a config file seen from one Apollo
-- cluster: the cluster-wide layer "default" or one node) since its last
-- release holds it; a release clears it. namespace is the qualified name,
-- component.file.

-- +goose Up
CREATE TABLE namespace_locks (
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    cluster_name TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    locked_by    TEXT    NOT NULL,
    locked_at    INTEGER,
    PRIMARY KEY (cluster_id, cluster_name, namespace)
);

-- +goose Down
DROP TABLE namespace_locks;
