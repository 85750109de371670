-- Releases of config files (config.Release): numbered per cluster layer,
-- with the layer's items as they were (JSON), and per node
-- (config.ReleaseNode) the node's items (JSON), the rendered file and how
-- applying it went. A release goes with its layer; a release's node names
-- its node without a foreign key so that the history outlives a removed
-- node. Each node file records what the manager knows is on the node.

-- +goose Up
CREATE TABLE config_releases (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES config_files (id) ON DELETE CASCADE,
    number      INTEGER NOT NULL CHECK (number >= 1),
    kind        TEXT    NOT NULL CHECK (kind IN ('deploy', 'flush', 'rollout', 'rollback')),
    title       TEXT    NOT NULL DEFAULT '',
    comment     TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER,
    job_id      INTEGER,
    rollback_of INTEGER,
    state       TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applying', 'applied', 'failed')),
    reason      TEXT    NOT NULL DEFAULT '',
    finished_at INTEGER,
    items       TEXT    NOT NULL DEFAULT '[]',
    UNIQUE (file_id, number)
);
CREATE INDEX config_releases_state ON config_releases (state);

CREATE TABLE config_release_nodes (
    release_id   INTEGER NOT NULL REFERENCES config_releases (id) ON DELETE CASCADE,
    node_id      INTEGER NOT NULL,
    node_file_id INTEGER NOT NULL,
    node_dir     TEXT    NOT NULL DEFAULT '',
    position     INTEGER NOT NULL,
    path         TEXT    NOT NULL,
    items        TEXT    NOT NULL DEFAULT '[]',
    content      BLOB    NOT NULL,
    sha256       TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN
                 ('pending', 'applying', 'applied', 'unchanged', 'restored', 'failed', 'interrupted', 'cancelled')),
    detail       TEXT    NOT NULL DEFAULT '',
    updated_at   INTEGER,
    finished_at  INTEGER,
    PRIMARY KEY (release_id, node_id)
);
CREATE INDEX config_release_nodes_node ON config_release_nodes (node_id, state);

ALTER TABLE node_config_files ADD COLUMN applied_release_id INTEGER;
ALTER TABLE node_config_files ADD COLUMN applied_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE node_config_files ADD COLUMN applied_unknown INTEGER NOT NULL DEFAULT 0 CHECK (applied_unknown IN (0, 1));
ALTER TABLE node_config_files ADD COLUMN applied_at INTEGER;

-- A rollout's step of a node: the release it applies, the pids before and
-- after, whether the node was healthy, how long it took.
ALTER TABLE job_steps ADD COLUMN release_id INTEGER;
ALTER TABLE job_steps ADD COLUMN pid_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_steps ADD COLUMN pid_after INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_steps ADD COLUMN healthy INTEGER;
ALTER TABLE job_steps ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;

-- The unfinished job that holds a node: no other job may touch it.
ALTER TABLE cluster_nodes ADD COLUMN held_by INTEGER;

-- +goose Down
ALTER TABLE cluster_nodes DROP COLUMN held_by;
ALTER TABLE job_steps DROP COLUMN duration_ms;
ALTER TABLE job_steps DROP COLUMN healthy;
ALTER TABLE job_steps DROP COLUMN pid_after;
ALTER TABLE job_steps DROP COLUMN pid_before;
ALTER TABLE job_steps DROP COLUMN release_id;
ALTER TABLE node_config_files DROP COLUMN applied_at;
ALTER TABLE node_config_files DROP COLUMN applied_unknown;
ALTER TABLE node_config_files DROP COLUMN applied_sha256;
ALTER TABLE node_config_files DROP COLUMN applied_release_id;
DROP TABLE config_release_nodes;
DROP TABLE config_releases;
