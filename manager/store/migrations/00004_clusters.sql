-- ADMQ clusters (cluster.Cluster), their nodes (cluster.Node), each node's
-- config files and their items. Deleting a cluster removes everything below
-- it; a server or package that a node uses cannot be deleted.

-- +goose Up
CREATE TABLE clusters (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER,
    updated_at  INTEGER
);

CREATE TABLE cluster_nodes (
    id                      INTEGER PRIMARY KEY,
    cluster_id              INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    server_id               INTEGER NOT NULL REFERENCES servers (id) ON DELETE RESTRICT,
    package_id              INTEGER NOT NULL REFERENCES packages (id) ON DELETE RESTRICT,
    component               TEXT    NOT NULL,
    component_type          INTEGER NOT NULL DEFAULT 0,
    manager_ip              TEXT    NOT NULL,
    data_ip                 TEXT    NOT NULL DEFAULT '',
    program_dir             TEXT    NOT NULL,
    data_dir                TEXT    NOT NULL,
    node_dir                TEXT    NOT NULL,
    server_port             INTEGER NOT NULL CHECK (server_port BETWEEN 1 AND 65535),
    ordinal                 INTEGER NOT NULL CHECK (ordinal >= 1),
    deploy_state            TEXT    NOT NULL DEFAULT 'undeployed'
                            CHECK (deploy_state IN ('undeployed', 'deploying', 'deployed', 'failed')),
    run_state               TEXT    NOT NULL DEFAULT 'unknown'
                            CHECK (run_state IN ('unknown', 'running', 'stopped', 'failed')),
    sync_node_config_status INTEGER NOT NULL DEFAULT 0,
    created_at              INTEGER,
    updated_at              INTEGER,
    UNIQUE (cluster_id, component, server_id),
    UNIQUE (cluster_id, component, ordinal)
);
-- The foreign key checks of DeleteServer and DeletePackage, and the
-- placement checks by server.
CREATE INDEX cluster_nodes_server_id ON cluster_nodes (server_id);
CREATE INDEX cluster_nodes_package_id ON cluster_nodes (package_id);

-- Every ordinal ever given in a cluster, so that a server gets its own back
-- and no other server gets it. server_id is deliberately not a foreign key:
-- the record outlives the node and may outlive the server.
CREATE TABLE cluster_ordinals (
    cluster_id INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    component  TEXT    NOT NULL,
    server_id  INTEGER NOT NULL,
    ordinal    INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, component, server_id),
    UNIQUE (cluster_id, component, ordinal)
);

CREATE TABLE node_config_files (
    id         INTEGER PRIMARY KEY,
    node_id    INTEGER NOT NULL REFERENCES cluster_nodes (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    format     TEXT    NOT NULL CHECK (format IN ('properties', 'raw')),
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE (node_id, name)
);

CREATE TABLE node_config_items (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES node_config_files (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL DEFAULT '',
    comment     TEXT    NOT NULL DEFAULT '',
    effective   INTEGER NOT NULL DEFAULT 1 CHECK (effective IN (0, 1)),
    created_at  INTEGER,
    updated_at  INTEGER,
    UNIQUE (file_id, key)
);

-- +goose Down
DROP TABLE node_config_items;
DROP TABLE node_config_files;
DROP TABLE cluster_ordinals;
DROP TABLE cluster_nodes;
DROP TABLE clusters;
